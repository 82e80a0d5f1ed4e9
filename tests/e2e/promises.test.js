// What the man page promises that no other suite showed: the lock wait's end, a standard
// output that cannot be written, SIGTERM, store=file without the fallback's warning, a
// refresh answer without a refresh token, status --json logged out; doctor -q, doctor only
// reading, and its API check only with a token that has 30 s left.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MLAUTH_BIN, run, spawnMlauth, startAPI, stopAll } from './rig.js';
import { JWT, ageSession, login, setup, storedRecord, tool } from './fixtures.js';

after(stopAll);

/** A logged-in user with the file store (no keyring needed). */
async function fileUser(opOptions) {
  const s = await setup({ keyring: false, op: opOptions });
  s.env.MLAUTH_STORE = 'file';
  const r = await login(s.env, s.op);
  assert.equal(r.code, 0, r.stderr);
  return s;
}

test('a refresh that cannot get the lock in 60 s exits 1, naming the lock and who to look for', async () => {
  const { env, op } = await fileUser();
  await ageSession(env, -60);
  const dir = join(env.XDG_STATE_HOME, 'mlauth');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lock = join(dir, 'default.lock');
  // A stuck refresh: holds the profile's lock until its stdin closes.
  const holder = spawn('flock', [lock, '-c', 'echo held; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((res, rej) => {
    holder.on('error', rej);
    holder.stdout.on('data', (d) => { if (String(d).includes('held')) res(); });
  });
  try {
    await op.resetCounters();
    const started = Date.now();
    const r = await run(['token'], { env, timeoutMs: 300_000 });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `mlauth: another mlauth holds the lock ${lock} and did not let go within 60 s; `
      + `is one stuck? (see: fuser -v ${lock})\n`);
    assert.ok(Date.now() - started >= 60_000, 'it waited the full minute'); // a floor
    assert.equal((await op.counters()).refresh, 0, 'no refresh without the lock');
  } finally {
    holder.stdin.end();
  }
});

test('a standard output that cannot be written is exit 1, with a message, for the front and the helper', async () => {
  const { env } = await fileUser();
  // token from the front (the file store, a fresh token), status and env from the helper.
  for (const args of [['token'], ['token', '--json'], ['status'], ['env']]) {
    const r = await tool('sh', ['-c', 'exec "$@" >/dev/full', 'sh', MLAUTH_BIN, ...args], env);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.err}`);
    assert.equal(r.err, 'mlauth: cannot write to standard output: No space left on device\n', args.join(' '));
  }
});

test('SIGTERM, like Ctrl-C, stops login and send with exit 130', async () => {
  const { env, op } = await fileUser();
  const h = spawnMlauth(['login', '--force', '--no-browser'], { env });
  await h.waitFor(/Waiting for approval/, { stream: 'stderr' });
  h.kill('SIGTERM');
  let r = await h.done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /^mlauth: login interrupted$/m);

  const api = await startAPI({ issuer: op.issuer });
  await api.script([{ status: 200, delayMs: 600_000, body: { type: 'message', content: [] } }]);
  const s = spawnMlauth(['send', 'x'], { env: { ...env, MLAUTH_API_BASE: api.base } });
  while ((await api.requests()).length === 0) {
    assert.equal(s.child.exitCode, null, `send ended before its request: ${s.stderr}`);
    await new Promise((res) => { setTimeout(res, 20); });
  }
  s.kill('SIGTERM');
  r = await s.done;
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /interrupted/);
});

test('store=file keeps the session in the file without the fallback warning, even beside a keyring', async () => {
  const { env, op } = await setup(); // a Secret Service is there
  for (const how of [{ MLAUTH_STORE: 'file' }, null]) {
    const e = how ? { ...env, ...how } : env;
    const args = how ? [] : ['-o', 'store=file'];
    const h = spawnMlauth([...args, 'login', '--force', '--no-browser'], { env: e });
    const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
    await op.approve(m[1]);
    const r = await h.done;
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /warning/);
    const s = await run([...args, 'status'], { env: e });
    assert.match(s.stdout, /^Store: +file .*default\.json$/m);
  }
  assert.equal(await storedRecord(env), null, 'nothing in the keyring');
});

test('a refresh answer without a refresh token keeps the one the session has', async () => {
  const { env, op } = await fileUser({ rotate: false });
  await op.set({ omitRefreshToken: true });
  const before = await ageSession(env, -60);
  await op.resetCounters();
  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  assert.notEqual(t.stdout.trimEnd(), before.access_token);
  assert.match(t.stdout.trimEnd(), JWT);
  const after1 = await ageSession(env, -60);
  assert.equal(after1.access_token, t.stdout.trimEnd());
  assert.equal(after1.refresh_token, before.refresh_token, 'the refresh token was dropped or replaced');
  // And it still works.
  const again = await run(['token'], { env });
  assert.equal(again.code, 0, again.stderr);
  const c = await op.counters();
  assert.equal(c.refresh, 2);
  assert.equal(c.refresh_errors, 0);
});

test('status --json logged out: only profile and logged_in, exit 3', async () => {
  const { env } = await setup();
  for (const args of [['status', '--json'], ['-p', 'work', 'status', '--json']]) {
    const r = await run(args, { env });
    assert.equal(r.code, 3, r.stderr);
    const profile = args[0] === '-p' ? 'work' : 'default';
    assert.deepEqual(JSON.parse(r.stdout), { profile, logged_in: false });
    assert.equal(r.stdout.split('\n').length, 2, 'one line');
    assert.match(r.stderr, new RegExp(`^mlauth: not logged in \\(profile ${profile}\\)`));
  }
});

// ---- doctor ------------------------------------------------------------------------------

/** A logged-in user with a private keyring and a messages API that takes the tokens. */
async function doctorUser() {
  const s = await setup();
  const api = await startAPI({ issuer: s.op.issuer });
  s.env.MLAUTH_API_BASE = api.base;
  const r = await login(s.env, s.op);
  assert.equal(r.code, 0, r.stderr);
  return { ...s, api };
}

test('doctor -q says nothing when every check is ok, else only the warnings and failures', async () => {
  const { env } = await doctorUser();
  let r = await run(['-q', 'doctor'], { env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, '');
  await ageSession(env, 20); // the API check now warns
  r = await run(['-q', 'doctor'], { env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^warn {2}messages_api +not checked: /);
  assert.match(lines[1], /^ +fix: /);
  assert.deepEqual(lines.slice(2), ['', '15 checks: 14 ok, 1 warning, 0 failures']);
});

for (const [what, left] of [['expired', -60], ['stale', 100]]) {
  test(`doctor never refreshes or changes the store (token ${what})`, async () => {
    const { env, op, api } = await doctorUser();
    await ageSession(env, left);
    const before = await tool('secret-tool', ['lookup', 'profile', 'default'], env);
    await op.resetCounters();
    const r = await run(['doctor'], { env });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^ok {4}session /m);
    const c = await op.counters();
    assert.equal(c.token, 0, `doctor asked the token endpoint: ${JSON.stringify(c)}`);
    assert.equal((await tool('secret-tool', ['lookup', 'profile', 'default'], env)).out, before.out);
    if (left < 30) assert.equal((await api.requests()).length, 0, 'an expired token was sent');
  });
}

test('doctor asks the API only with a token valid for 30 s more', async () => {
  const { env, api } = await doctorUser();
  await ageSession(env, 20);
  let r = await run(['doctor'], { env });
  assert.match(r.stdout, /^warn {2}messages_api +not checked: the stored access token has \(almost\) expired/m);
  assert.equal((await api.requests()).length, 0);
  await ageSession(env, 60);
  r = await run(['doctor'], { env });
  assert.match(r.stdout, /^ok {4}messages_api +\S+ answered HTTP 200 /m);
  assert.equal((await api.requests()).length, 1);
});

test('doctor warns when ANTHROPIC_BASE_URL is not api_base, and not when it is', async () => {
  const { env } = await setup({ keyring: false });
  const other = await run(['doctor'], { env: { ...env, ANTHROPIC_BASE_URL: 'https://elsewhere.example/x' } });
  assert.match(other.stdout, /^warn {2}environment +ANTHROPIC_BASE_URL is https:\/\/elsewhere\.example\/x, not api_base https:\/\/mlaas\.virtuosgames\.com\/proxy\/anthropic/m);
  for (const same of ['https://mlaas.virtuosgames.com/proxy/anthropic', 'https://mlaas.virtuosgames.com/proxy/anthropic/']) {
    const r = await run(['doctor'], { env: { ...env, ANTHROPIC_BASE_URL: same } });
    assert.match(r.stdout, /^ok {4}environment /m, same);
  }
});
