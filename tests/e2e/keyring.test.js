// The Secret Service store itself: what mlauth asks of the keyring, and a locked keyring.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import { MLAUTH_BIN, run, startKeyring, stopAll, tmpEnv } from './rig.js';
import { ageSession, login, setup, tool } from './fixtures.js';

after(stopAll);

const NO_KEYCTL = process.env.NO_KEYCTL;

/**
 * dbus-monitor on env's bus (the rig's bus lets anyone eavesdrop), ready once it has become
 * a monitor. stop() resolves what it saw up to then: it sends a signal of its own and waits
 * until the monitor shows it, which the bus delivers after everything sent before it.
 */
async function monitor(env) {
  const p = spawn('dbus-monitor', ['--session'], {
    env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  let seen = () => {};
  p.stdout.on('data', (d) => { out += d; seen(); });
  const shows = (what) => new Promise((resolve, reject) => {
    seen = () => { if (out.includes(what)) resolve(); };
    p.once('close', () => reject(new Error(`dbus-monitor ended before it showed ${what}: ${out}`)));
    seen();
  });
  // Becoming a monitor drops its own name: NameLost is the last thing it says about itself.
  await shows('member=NameLost');
  const mark = out.length;
  return {
    async stop() {
      const sentinel = `org.mlauth.test.done${process.pid}`;
      const s = await tool('dbus-send', ['--session', '--type=signal', '/org/mlauth/test', `${sentinel}.Done`], env);
      assert.equal(s.code, 0, s.err);
      await shows(`interface=${sentinel}; member=Done`);
      const closed = new Promise((resolve) => p.on('close', resolve));
      p.kill('SIGTERM');
      await closed;
      // Up to the sentinel's own connection (its Hello), which came after everything else.
      const trace = out.slice(mark);
      return trace.slice(0, trace.lastIndexOf('\nmethod call', trace.lastIndexOf('member=Hello')) + 1);
    },
  };
}

const calls = (trace, member) =>
  trace.split('\n').filter((l) => l.startsWith('method call') && l.endsWith(`member=${member}`)).length;

test('a refresh: the caller and its detached refresh, one connection and one session each, one write', async () => {
  assert.ok(NO_KEYCTL, 'NO_KEYCTL names the seccomp wrapper (make e2e sets it)');
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const before = (await tool(NO_KEYCTL, [MLAUTH_BIN, 'token'], env)).out;
  // A stale token is refreshed: load, load again under the lock, save.
  await ageSession(env, 200);
  const m = await monitor(env);
  const r = await tool(NO_KEYCTL, [MLAUTH_BIN, 'token'], env);
  const trace = await m.stop();
  assert.equal(r.code, 0, r.err);
  assert.notEqual(r.out, before, 'refreshed');
  // The refresh runs in a detached process (it must outlive a killed caller), which opens
  // its own connection: the caller reads before and under the lock and reads what was saved;
  // the refresh reads under the lock it shares, and writes once.
  assert.equal(calls(trace, 'Hello'), 2, 'one connection to the bus per process');
  assert.equal(calls(trace, 'OpenSession'), 2, 'one session with the keyring per process');
  assert.equal(calls(trace, 'GetSecrets'), 4, 'four reads');
  assert.equal(calls(trace, 'CreateItem'), 1, 'one write');
});

test('a locked keyring fails at once, for reading and for deleting, and keeps the entry', async () => {
  assert.ok(NO_KEYCTL, 'NO_KEYCTL names the seccomp wrapper (make e2e sets it)');
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const bus = ['--session', '--print-reply', '--dest=org.freedesktop.secrets', '/org/freedesktop/secrets'];
  await lockDefault(env);

  // "Locked", said at once: a wait for a prompt would end in a timeout, not this message.
  const t = await tool(NO_KEYCTL, [MLAUTH_BIN, 'token'], env);
  assert.equal(t.code, 6, t.err);
  assert.match(t.err, /^mlauth: cannot read the keyring: the keyring is locked .* -o store=file\n$/);
  assert.equal(t.out, '');
  const s = await run(['status'], { env });
  assert.equal(s.code, 6, s.stderr);
  assert.match(s.stderr, /cannot read the keyring: the keyring is locked/);
  const l = await run(['logout', '--local'], { env });
  assert.equal(l.code, 6, l.stderr);
  assert.match(l.stderr, /cannot delete from the keyring: the keyring is locked/);

  // Still there, locked: listed apart by a search, which needs no unlocking.
  const search = await tool('dbus-send', [...bus, 'org.freedesktop.Secret.Service.SearchItems',
    'dict:string:string:profile,default,xdg:schema,org.mlauth.Token'], env);
  assert.equal(search.code, 0, search.err);
  const [unlocked, locked] = search.out.split(/\n\s*array \[/).slice(1);
  assert.doesNotMatch(unlocked, /object path/);
  assert.match(locked, /object path "\/org\/freedesktop\/secrets\/collection\//);
});

/** Locks env's default collection over D-Bus (locking needs no prompt; unlocking would). */
async function lockDefault(env) {
  const bus = ['--session', '--print-reply', '--dest=org.freedesktop.secrets', '/org/freedesktop/secrets'];
  const alias = await tool('dbus-send', [...bus, 'org.freedesktop.Secret.Service.ReadAlias', 'string:default'], env);
  const collection = /object path "([^"]+)"/.exec(alias.out)?.[1];
  assert.ok(collection && collection !== '/', alias.out + alias.err);
  const lock = await tool('dbus-send', [...bus, 'org.freedesktop.Secret.Service.Lock', `array:objpath:${collection}`], env);
  assert.equal(lock.code, 0, lock.err);
}

test('login with a locked keyring stops before asking for a code, and says what to do', async () => {
  const { op, env } = await setup();
  await lockDefault(env);
  await op.resetCounters();
  const r = await run(['login', '--no-browser'], { env });
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /^mlauth: cannot keep a session in the keyring: the keyring is locked .*unlock it .* -o store=file\n$/);
  assert.doesNotMatch(r.stderr, /shows the code|open this link/, 'no code to approve for nothing');
  const c = await op.counters();
  assert.equal(c.device_authorization, 0, 'no device code was asked for');
  // With the file chosen instead, the same login goes through.
  const f = await login({ ...env, MLAUTH_STORE: 'file' }, op);
  assert.equal(f.code, 0, f.stderr);
});

test('login with a keyring that has no default collection stops before asking for a code', async () => {
  const { op } = await setup({ keyring: false });
  const home = tmpEnv().env;
  const kr = await startKeyring(home, { unlock: false });
  const env = { ...home, ...kr.env, MLAUTH_ISSUER: op.issuer };
  const r = await run(['login', '--no-browser'], { env });
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /^mlauth: cannot keep a session in the keyring: the keyring is locked \(or has no default collection\)/);
  assert.equal((await op.counters()).device_authorization, 0);
});
