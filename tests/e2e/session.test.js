// login, token, status, logout against the real provider and a private keyring.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, test } from 'node:test';
import { chmodSync, existsSync, mkdirSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { groupMembers, run, spawnMlauth, startAPI, stopAll } from './rig.js';
import { JWT, ageSession, login, setup, storedRecord } from './fixtures.js';

after(stopAll);

test('login stores the session in the keyring and token prints a JWT the API accepts', async () => {
  const { op, env } = await setup();
  const api = await startAPI({ issuer: op.issuer });
  const r = await login(env, op);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Logged in as Alice Example \(alice@example\.test\) to 127\.0\.0\.1:\d+\/realms\/test\nToken valid until \d\d:\d\d; offline session, renewed by every refresh\.\n$/);
  assert.match(r.stderr, /open this link in a browser/);

  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /\n$/);
  const token = t.stdout.trimEnd();
  assert.match(token, JWT);
  assert.equal(t.stderr, '');

  const rec = await storedRecord(env);
  assert.ok(rec, 'secret-tool lookup profile default finds the session');
  assert.equal(rec.access_token, token);
  assert.equal(rec.issuer, op.issuer);
  assert.equal(rec.client_id, 'MLAAS-CLI-API');
  assert.ok(rec.refresh_token);

  const res = await fetch(`${api.base}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(res.status, 200);
  // Nothing on the way left a token in a file of the private home's state dir.
  assert.deepEqual(readdirSync(env.XDG_STATE_HOME).filter((f) => f !== 'mlauth'), []);
});

test('token --header and --json print exactly one line each', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const plain = (await run(['token'], { env })).stdout.trimEnd();
  const h = await run(['token', '--header'], { env });
  assert.equal(h.stdout, `Authorization: Bearer ${plain}\n`);
  const j = await run(['token', '--json'], { env });
  const o = JSON.parse(j.stdout);
  assert.equal(o.access_token, plain);
  assert.equal(o.token_type, 'Bearer');
  assert.ok(o.expires_in > 3500 && o.expires_in <= 3600, String(o.expires_in));
  assert.ok(Math.abs(o.expires_at - (Date.now() / 1000 + o.expires_in)) < 5);
  assert.equal(j.stdout.split('\n').length, 2);
});

test('status before and after login, without secrets', async () => {
  const { op, env } = await setup();
  let s = await run(['status'], { env });
  assert.equal(s.code, 3);
  assert.match(s.stderr, /not logged in \(profile default\): run mlauth login/);
  assert.equal((await login(env, op)).code, 0);
  s = await run(['status'], { env });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^User: +Alice Example \(alice@example\.test\)\nUsername: +alice$/m);
  assert.match(s.stdout, /^Issuer: +http:\/\/127\.0\.0\.1/m);
  assert.match(s.stdout, /^Access token: valid until \d{4}-\d\d-\d\d \d\d:\d\d \(in (1h 0m|59m \d+s)\)$/m);
  assert.match(s.stdout, /^Store: +secret-service$/m);
  assert.match(s.stdout, /^Refresh: +not needed yet$/m);
  const rec = await storedRecord(env);
  for (const secret of [rec.access_token, rec.refresh_token, rec.id_token].filter(Boolean))
    assert.ok(!s.stdout.includes(secret) && !s.stderr.includes(secret));
  const j = JSON.parse((await run(['status', '--json'], { env })).stdout);
  assert.equal(j.user, 'alice');
  assert.equal(j.logged_in, true);
  assert.equal(j.would_refresh, false);
  assert.ok(!JSON.stringify(j).includes(rec.access_token));
});

test('a stale token is refreshed once and the rotated refresh token kept', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const first = (await run(['token'], { env })).stdout;
  await op.resetCounters();
  const before = await ageSession(env, 200); // under the 300 s min_valid: stale
  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  assert.notEqual(t.stdout, first);
  const c = await op.counters();
  assert.equal(c.refresh, 1);
  assert.equal(c.discovery, 0, 'the token endpoint came from the login, not a new discovery');
  const afterRec = await storedRecord(env);
  assert.equal(afterRec.access_token, t.stdout.trimEnd());
  assert.notEqual(afterRec.refresh_token, before.refresh_token);
  // The kept (rotated) refresh token works: had the used one been kept, the provider's
  // reuse detection would have revoked the session here.
  await ageSession(env, -60);
  const again = await run(['token'], { env });
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await op.counters()).refresh, 2);
  assert.equal((await op.counters()).refresh_errors, 0);
});

test('50 concurrent token calls on a stale token cause exactly one refresh', async () => {
  // An hour-long refreshed token: a late starter, however late, finds it fresh.
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  await ageSession(env, -60);
  await op.resetCounters();
  await op.set({ tokenDelayMs: 300 }); // widen the window in which callers overlap
  const results = await Promise.all(Array.from({ length: 50 }, () => run(['token'], { env, timeoutMs: 60_000 })));
  const c = await op.counters();
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const tokens = new Set(results.map((r) => r.stdout));
  assert.equal(c.refresh, 1, JSON.stringify(c));
  assert.equal(tokens.size, 1, `every caller prints the same token (stderr: ${results.map((r) => r.stderr).join('')})`);
  assert.match([...tokens][0].trimEnd(), JWT);
  assert.equal(c.refresh_errors, 0);
});

test('--no-refresh on a stale token exits 3 without a request', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  await ageSession(env, 200);
  await op.resetCounters();
  const r = await run(['token', '--no-refresh'], { env });
  assert.equal(r.code, 3);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /--no-refresh forbids a refresh/);
  assert.equal((await op.counters()).token, 0);
});

test('a revoked refresh token exits 3 with "run mlauth login"', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  await op.revokeAll();
  await ageSession(env, -60);
  const r = await run(['token'], { env });
  assert.equal(r.code, 3);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /session expired or revoked: run mlauth login/);
});

test('logout revokes at the provider and deletes the stored session', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  assert.equal((await op.state()).active_refresh_tokens, 1);
  const r = await run(['logout'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /revoked at the provider and deleted here/);
  assert.equal((await op.counters()).revocation, 1);
  assert.equal((await op.state()).active_refresh_tokens, 0);
  assert.equal(await storedRecord(env), null);
  assert.equal((await run(['status'], { env })).code, 3);
  const again = await run(['logout'], { env });
  assert.equal(again.code, 0);
  assert.match(again.stderr, /Not logged in/);
});

test('logout --local does not contact the provider', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const r = await run(['logout', '--local'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await op.counters()).revocation, 0);
  assert.equal(await storedRecord(env), null);
});

test('logout with the provider down still deletes locally and says so', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  await op.stop();
  const r = await run(['logout'], { env });
  assert.equal(r.code, 0);
  assert.match(r.stderr, /could not revoke the session at the provider .*deleting it here anyway/);
  assert.equal(await storedRecord(env), null);
});

test('a denied login exits 1 with a clear message and stores nothing', async () => {
  const { op, env } = await setup();
  const r = await login(env, op, { deny: true });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /login denied/);
  assert.equal(await storedRecord(env), null);
});

test('slow_down makes login poll five seconds slower', async () => {
  const { op, env } = await setup();
  await op.set({ slowDown: 1 });
  const started = Date.now();
  const h = spawnMlauth(['-v', 'login', '--no-browser'], { env });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await op.approve(m[1]);
  const r = await h.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /slow down: polling every 6s/);
  // The first poll, 1 s in, answers slow_down; the next waits 6 s more. A floor, which
  // load can only make longer.
  assert.ok(Date.now() - started >= 7000, 'the poll after slow_down waited the longer interval');
  assert.equal((await op.counters()).device_token, 2);
});

test('a device code that expires unapproved ends the login with exit 1', async () => {
  const { env } = await setup({ op: { deviceTtl: 2 } });
  const r = await run(['login', '--no-browser'], { env, timeoutMs: 20_000 });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /code expired before it was approved: run mlauth login again/);
});

test('Ctrl-C during login stops cleanly with exit 130', async () => {
  const { env } = await setup();
  const h = spawnMlauth(['login', '--no-browser'], { env });
  await h.waitFor(/Waiting for approval/, { stream: 'stderr' });
  h.kill('SIGINT');
  const r = await h.done;
  assert.equal(r.code, 130);
  assert.match(r.stderr, /interrupted/);
});

test('without a session bus the session goes to a 0600 file, with one warning, promptly', async () => {
  const { op, env } = await setup({ keyring: false });
  const r = await login(env, op);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.match(/warning:/g).length, 1);
  assert.match(r.stderr, /warning: .*session will be kept in file/);
  const dir = join(env.XDG_STATE_HOME, 'mlauth');
  const file = join(dir, 'default.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  assert.equal(t.timedOut, false, 'no wait for a keyring that is not there');
  assert.match(t.stdout.trimEnd(), JWT);
  const s = await run(['status'], { env });
  assert.match(s.stdout, /^Store: +file .*default\.json$/m);
});

test('a group-readable fallback file is refused', async () => {
  const { op, env } = await setup({ keyring: false });
  assert.equal((await login(env, op)).code, 0);
  const file = join(env.XDG_STATE_HOME, 'mlauth', 'default.json');
  chmodSync(file, 0o640);
  // status always reads the store (token may be served from the kernel cache).
  const r = await run(['status'], { env });
  assert.equal(r.code, 6);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /chmod 600/);
  assert.ok(existsSync(file), 'the file is left for the user to fix, not deleted');
});

test('store=secret-service without a keyring is an error, not a fallback', async () => {
  const { env } = await setup({ keyring: false });
  const r = await run(['-o', 'store=secret-service', 'token'], { env });
  assert.equal(r.code, 6);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'mlauth: store=secret-service: no session bus (DBUS_SESSION_BUS_ADDRESS is not set)\n');
});

test('provider down: a valid token is printed with a warning; an expired one exits 4', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const tok = (await run(['token'], { env })).stdout;
  await op.stop();
  await ageSession(env, 120); // stale (under min_valid), still valid for two minutes
  let r = await run(['token'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, tok);
  assert.match(r.stderr, /^mlauth: warning: could not refresh \(.*\); using the current token, valid for (1m|2m)/);
  await ageSession(env, -60);
  r = await run(['token'], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^mlauth: cannot reach http:\/\/127\.0\.0\.1:\d+/);
});

test('discovery naming another issuer is refused', async () => {
  const { op, env } = await setup();
  await op.set({ discoveryIssuer: 'http://127.0.0.1:1/realms/other' });
  const r = await run(['login', '--no-browser'], { env });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^mlauth: discovery at http:\/\/127\.0\.0\.1:\d+ names issuer http:\/\/127\.0\.0\.1:1\/realms\/other, expected http:\/\/127\.0\.0\.1:\d+\/realms\/test\n$/);
  assert.equal((await op.counters()).device_authorization, 0);
});

test('an http:// issuer on a non-loopback host is refused before any request', async () => {
  const { env } = await setup();
  const r = await run(['login', '--no-browser'], { env: { ...env, MLAUTH_ISSUER: 'http://kc.example.test/realms/x' } });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /invalid issuer .*expected an https:\/\/ URL/);
});

test('login again with a valid session needs --force', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const first = await storedRecord(env);
  const r = await run(['login', '--no-browser'], { env });
  assert.equal(r.code, 0);
  assert.match(r.stderr, /Already logged in/);
  const f = await login(env, op, { args: ['--force'] });
  assert.equal(f.code, 0, f.stderr);
  assert.notEqual((await storedRecord(env)).access_token, first.access_token);
});

test('invalid_scope on offline_access falls back to openid with a note', async () => {
  const { op, env } = await setup();
  await op.set({ scopeRejectOffline: true });
  const r = await login(env, op);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /refused scope 'openid offline_access'; logging in with 'openid'/);
});

/**
 * Holds the profile's lock, as a refresh in flight does, until release(). waiter(h) resolves
 * once h (its process group) has the lock file open, i.e. is in its wait for the lock (an
 * event, read from /proc), or rejects when h ends first.
 */
async function holdLock(env, profile = 'default') {
  const dir = join(env.XDG_STATE_HOME, 'mlauth'); // beside the file store, whatever XDG_RUNTIME_DIR says
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, `${profile}.lock`);
  const p = spawn('flock', [file, '-c', 'echo held; exec cat'],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((res, rej) => {
    p.on('error', rej);
    p.on('close', (code) => rej(new Error(`flock ended (${code}) before it held the lock`)));
    p.stdout.on('data', (d) => { if (String(d).includes('held')) res(); });
  });
  const gone = new Promise((res) => p.on('close', res));
  const opened = (pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === file; } catch { return false; }
      });
    } catch { return false; } // gone meanwhile
  };
  return {
    release: () => { p.stdin.end(); return gone; },
    async waiter(h) {
      let ended = false;
      h.done.then(() => { ended = true; }, () => { ended = true; });
      while (!groupMembers(h.pid).some((m) => opened(m.pid))) {
        if (ended) throw new Error(`ended without waiting for the lock: ${h.stderr}`);
        await new Promise((res) => { setTimeout(res, 10); });
      }
    },
  };
}

test('login and logout wait for a refresh holding the profile lock', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const first = await storedRecord(env);

  let lock = await holdLock(env);
  const h = spawnMlauth(['login', '--no-browser', '--force'], { env });
  try {
    const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
    await op.approve(m[1]);
    await lock.waiter(h);
    // It has its tokens (the new login's refresh token is out, beside the old one) and
    // waits to save them.
    assert.equal((await op.state()).active_refresh_tokens, 2, 'the code was redeemed');
    assert.equal((await storedRecord(env)).access_token, first.access_token,
      'login saved while a refresh held the lock');
  } finally {
    await lock.release();
  }
  const r = await h.done;
  assert.equal(r.code, 0, r.stderr);
  assert.notEqual((await storedRecord(env)).access_token, first.access_token);

  lock = await holdLock(env);
  const out = spawnMlauth(['logout', '--local'], { env });
  try {
    await lock.waiter(out);
    assert.ok(await storedRecord(env), 'logout deleted while a refresh held the lock');
  } finally {
    await lock.release();
  }
  assert.equal((await out.done).code, 0);
  assert.equal(await storedRecord(env), null);
});
