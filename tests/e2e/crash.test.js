// Crash consistency and the single-flight refresh under load.
//
// mlauth is killed (SIGKILL: no handler runs, no clean-up) at moments of a refresh and of a
// login; whatever moment it dies, the stored session must still parse and the next
// `mlauth token` must work. A hundred concurrent callers on a stale token cause one refresh.
// And when the provider rotates refresh tokens and its answer is lost on the way back, the
// user is told to log in again, once per attempt, instead of a silent loop.
//
// The moments are events, not delays, so a loaded machine changes nothing: the provider
// holds the request (unprocessed) or its answer (processed, never sent) until the client is
// gone, and the test kills on `held`; or the kill comes the moment the new record's temp
// file appears. One run in three also kills after a random delay, as a sample of moments
// nobody thought of; what that lands on is reported, never asserted.
//
// "Stale" without waiting: the stored record's clock is moved (ageSession), and the
// kernel-keyring cache entry dropped as the kernel does at expiry.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, watch } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run, spawnMlauth, startKeyring, startOP, stopAll, tmpEnv } from './rig.js';
import { JWT, ageSession, forgetCache, tool } from './fixtures.js';
import { startHostile } from '../peers/hostile/server.js';

const issuers = new Set();
const servers = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const i of issuers) forgetCache(i);
  await stopAll();
});

const RUNS = Number(process.env.CRASH_RUNS || 120);
const LANES = 4;

/**
 * One user: a private home, file store or a private Secret Service, logged in at its own
 * provider (so what one lane's provider holds never touches another lane).
 */
async function lane(opOptions, { keyring = false, env: extra = {} } = {}) {
  const op = await startOP({ accessTtl: 3600, interval: 1, ...opOptions });
  const home = tmpEnv();
  const kr = keyring ? await startKeyring(home.env) : null;
  const env = {
    ...home.env, ...(kr ? kr.env : { MLAUTH_STORE: 'file' }), MLAUTH_ISSUER: op.issuer, ...extra,
  };
  issuers.add(op.issuer);
  const l = { env, keyring, op, dir: join(env.XDG_STATE_HOME, 'mlauth') };
  const r = await loginApproved(l);
  assert.equal(r.code, 0, r.stderr);
  return l;
}

const lanes = (n, opOptions, options) => Promise.all(Array.from({ length: n }, () => lane(opOptions, options)));

async function loginApproved(l, args = []) {
  const h = spawnMlauth(['login', '--no-browser', ...args], { env: l.env });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await l.op.approve(m[1]);
  return h.done;
}

/** The stored record as any other tool would read it; null when there is none. */
async function stored(l) {
  if (l.keyring) {
    const r = await tool('secret-tool', ['lookup', 'profile', 'default'], l.env);
    return r.code === 0 && r.out ? JSON.parse(r.out) : null;
  }
  let text;
  try {
    text = readFileSync(join(l.dir, 'default.json'), 'utf8');
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw e;
  }
  return JSON.parse(text); // throws, and fails the test, if a crash left a torn file
}

/** Temp files a writer left in the store directory. */
const leftovers = (l) => (l.keyring ? [] : readdirSync(l.dir).filter((f) => f !== 'default.json' && f !== 'default.lock'));

const sigkill = (h) => { try { h.child.kill('SIGKILL'); } catch { /* gone */ } };

/**
 * Runs `args` and SIGKILLs it at the moment `how` names:
 *   held-before / held-after: while l's provider holds the request of `grant` unprocessed,
 *     or holds its processed answer (the kill always lands: the provider waits for it);
 *   write: the moment a temp file appears in the store directory (may come too late);
 *   random: after a random 0-250 ms of a refresh slowed by 120 ms.
 * onStart(handle) runs once it is started (a login's approval). Resolves with the result.
 */
async function killAt(l, args, how, { grant = 'refresh_token', onStart = async () => {} } = {}) {
  if (how.startsWith('held-')) {
    await l.op.set({ hold: { grant, when: how.slice(5) }, tokenDelayMs: 0 });
    const { held } = await l.op.counters();
    const h = spawnMlauth(args, { env: l.env });
    await Promise.all([onStart(h), l.op.until('held', held + 1, { unless: h.done })]);
    sigkill(h);
    const r = await h.done;
    await l.op.set({ hold: null });
    assert.equal(r.signal, 'SIGKILL', `killed while the provider held it: ${r.stderr}`);
    return r;
  }
  await l.op.set({ hold: null, tokenDelayMs: how === 'random' ? 120 : 0 });
  const h = spawnMlauth(args, { env: l.env });
  let watcher;
  if (how === 'write') {
    watcher = watch(l.dir, (ev, name) => { if (name && name.startsWith('.default.json.')) sigkill(h); });
  } else {
    setTimeout(() => sigkill(h), Math.floor(Math.random() * 250));
  }
  await onStart(h);
  const r = await h.done;
  watcher?.close();
  return r;
}

/**
 * After a crash: the record parses and is whole (status 0), any temp file left is the user's
 * own 0600 file, and the next `mlauth token` prints a token. Returns what happened.
 */
async function recovers(l, { allowLogin = false } = {}) {
  // A refresh the killed caller started goes on in a detached process holding the profile's
  // lock: look once it has let go.
  execFileSync('flock', [join(l.env.XDG_STATE_HOME, 'mlauth', 'default.lock'), 'true']);
  const rec = await stored(l);
  assert.ok(rec && rec.access_token && rec.refresh_token, 'the record is whole');
  const s = await run(['status'], { env: l.env });
  assert.equal(s.code, 0, `status after a crash: ${s.stderr}`);
  const left = leftovers(l);
  for (const f of left) {
    assert.match(f, /^\.default\.json\.[0-9a-f]{16}\.tmp$/, `unexpected file ${f}`);
    assert.equal(statSync(join(l.dir, f)).mode & 0o777, 0o600, `${f} is private`);
  }
  await l.op.set({ tokenDelayMs: 0 });
  const t = await run(['token'], { env: l.env });
  if (allowLogin && t.code === 3) {
    assert.match(t.stderr, /run mlauth login/);
    const again = await loginApproved(l, ['--force']);
    assert.equal(again.code, 0, again.stderr);
    return { relogin: true, left: left.length };
  }
  assert.equal(t.code, 0, `token after a crash: ${t.stderr}`);
  assert.match(t.stdout.trimEnd(), JWT);
  return { relogin: false, left: left.length };
}

/** logout --local leaves no record and no temp file of a killed writer behind. */
async function logsOutClean(l) {
  const r = await run(['logout', '--local'], { env: l.env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(l.dir).filter((f) => f !== 'default.lock'), [], 'nothing with a token in it stays on disk');
}

/** Runs body(lane, i) for i = 0 … runs-1, spread over the lanes: however long it takes. */
async function spread(ls, runs, body) {
  let next = 0;
  await Promise.all(ls.map(async (l) => {
    while (next < runs) await body(l, next++);
  }));
}

/** Counts what each kind of kill did, for the log: { kind: { runs, killed } }. */
function tally() {
  const t = {};
  return {
    add(how, r) {
      t[how] ??= { runs: 0, killed: 0 };
      t[how].runs++;
      if (r.signal === 'SIGKILL') t[how].killed++;
    },
    get: (how) => t[how] ?? { runs: 0, killed: 0 },
    toString: () => JSON.stringify(t),
  };
}

describe('crash consistency', { concurrency: 2 }, () => {
  test(`${RUNS} token refreshes SIGKILLed mid-request, mid-write and at random (file store): always recoverable`, async () => {
    const ls = await lanes(LANES, { rotate: false });
    const kills = tally();
    let maxLeftovers = 0;
    await spread(ls, RUNS, async (l, i) => {
      await ageSession(l.env, -60);
      const how = ['held-before', 'write', 'random'][i % 3];
      kills.add(how, await killAt(l, ['token'], how));
      const { left } = await recovers(l);
      maxLeftovers = Math.max(maxLeftovers, left); // swept once a minute old
    });
    for (const l of ls) assert.equal((await l.op.counters()).refresh_errors, 0, 'no refresh token was ever refused');
    assert.equal(kills.get('held-before').runs, Math.ceil(RUNS / 3));
    process.stderr.write(`# crash/file: ${RUNS} runs, ${kills}, at most ${maxLeftovers} temp files left\n`);
    for (const l of ls) await logsOutClean(l);
  });

  test('token refreshes SIGKILLed with the Secret Service store: always recoverable', async () => {
    const ls = await lanes(2, { rotate: false }, { keyring: true });
    const kills = tally();
    const runs = Math.min(RUNS, 40);
    await spread(ls, runs, async (l, i) => {
      await ageSession(l.env, -60);
      const how = ['held-before', 'random'][i % 2];
      kills.add(how, await killAt(l, ['token'], how));
      await recovers(l);
    });
    for (const l of ls) assert.equal((await l.op.counters()).refresh_errors, 0);
    assert.equal(kills.get('held-before').runs, runs / 2);
    process.stderr.write(`# crash/keyring: ${runs} runs, ${kills}\n`);
  });

  test('with rotation, a caller killed before or after the provider answered loses nothing', async () => {
    // Killed while the provider holds the request unprocessed, or after it rotated the
    // refresh token but before the answer arrived: the refresh runs in a detached process
    // (session_refresh.c) that still waits for the answer when the provider lets it go,
    // and saves it. Before, the new refresh token died with the process.
    const ls = await lanes(2, {}); // rotates, detects reuse
    const runs = Math.min(RUNS, 20);
    const relogins = {};
    const kills = tally();
    await spread(ls, runs, async (l, i) => {
      await ageSession(l.env, -60);
      const how = ['held-before', 'held-after'][i % 2];
      kills.add(how, await killAt(l, ['token'], how));
      if ((await recovers(l, { allowLogin: true })).relogin) relogins[how] = (relogins[how] ?? 0) + 1;
    });
    process.stderr.write(`# crash/rotation: ${runs} runs, ${kills}, new logins needed: ${JSON.stringify(relogins)}\n`);
    assert.equal(relogins['held-before'] ?? 0, 0, 'a refresh the provider never processed cost the session');
    assert.equal(relogins['held-after'] ?? 0, 0, 'a caller killed after the provider rotated cost the session');
  });

  test('login SIGKILLed while it stores the session: the old session or the new, never a torn one', async () => {
    const ls = await lanes(3, {});
    const kills = tally();
    const runs = Math.min(RUNS, 24);
    await spread(ls, runs, async (l, i) => {
      const how = i % 2 ? 'write' : 'held-after';
      const before = await stored(l);
      // Approved as soon as it is shown; the first successful poll is then the answer the
      // provider holds (held-after), or the one whose record is being written (write).
      const approve = async (h) => {
        const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
        await l.op.approve(m[1]);
      };
      kills.add(how, await killAt(l, ['login', '--force', '--no-browser'], how, { grant: 'device_code', onStart: approve }));
      await recovers(l);
      if (how === 'held-after') {
        assert.equal((await stored(l)).refresh_token, before.refresh_token, 'a login killed before it had its tokens keeps the old session');
      }
    });
    process.stderr.write(`# crash/login: ${runs} runs, ${kills}\n`);
    for (const l of ls) await logsOutClean(l);
  });
});

describe('single flight under load', () => {
  test('100 concurrent token calls on a stale token, 5 times: one refresh each, every caller served', async () => {
    const [l] = await lanes(1, {}); // rotation on: reuse would log out
    await l.op.set({ tokenDelayMs: 150 }); // widens the window in which callers overlap
    for (let round = 0; round < 5; round++) {
      const old = await ageSession(l.env, -30);
      await l.op.resetCounters();
      const results = await Promise.all(Array.from({ length: 100 }, () => run(['token'], { env: l.env, timeoutMs: 120_000 })));
      const c = await l.op.counters();
      const failed = results.filter((r) => r.code !== 0);
      assert.equal(failed.length, 0, `round ${round}: ${failed.length} failed: ${failed.map((r) => r.stderr).join('')}`);
      assert.equal(c.refresh, 1, `round ${round}: ${JSON.stringify(c)}`);
      assert.equal(c.refresh_errors, 0);
      const tokens = new Set(results.map((r) => r.stdout));
      assert.equal(tokens.size, 1, `round ${round}: every caller prints the one new token`);
      const token = [...tokens][0].trimEnd();
      assert.match(token, JWT);
      assert.notEqual(token, old.access_token);
      assert.equal((await stored(l)).access_token, token);
    }
  });
});

describe('a refresh answer lost on the way back, with rotation', () => {
  // A forward proxy (http_proxy) between mlauth and the provider passes everything, except
  // that it cuts the connection after the provider answered a refresh: the provider has
  // rotated the refresh token, mlauth never saw the new one.
  async function proxied() {
    const px = await startHostile();
    servers.push(px);
    const l = await lane({}, { env: { http_proxy: px.proxy } }); // rotates, detects reuse
    const { op } = l;
    assert.ok(px.log.some((e) => e.route === 'proxy' && e.grant === 'urn:ietf:params:oauth:grant-type:device_code'),
      'the login went through the proxy');
    return { op, px, l };
  }

  test('token still valid: served with a warning; the next attempt says "run mlauth login" (exit 3)', async () => {
    const { op, px, l } = await proxied();
    const before = await ageSession(l.env, 120); // stale, still valid for two minutes
    px.set({ proxy: { dropRefresh: 1 } });
    await op.resetCounters();
    const first = await run(['token'], { env: l.env });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, `${before.access_token}\n`);
    assert.match(first.stderr, /warning: could not refresh \(cannot reach http:\/\/127\.0\.0\.1:\d+: .*\); using the current token/);
    assert.equal((await op.counters()).refresh, 1);
    assert.equal(px.log.filter((e) => e.dropped).length, 1);

    for (let attempt = 1; attempt <= 3; attempt++) {
      const r = await run(['token'], { env: l.env });
      assert.equal(r.code, 3, `attempt ${attempt}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, attempt === 1 ? /^mlauth: session expired or revoked: run mlauth login\n$/
        : /^mlauth: session expired or revoked \(the provider refused it at .*\): run mlauth login\n$/);
      // One request in all: the refused refresh token is never presented again.
      assert.equal((await op.counters()).refresh, 2);
    }
    assert.ok((await stored(l)).refused_at, 'the record still parses and says the session ended');
    const again = await loginApproved(l);
    assert.equal(again.code, 0, again.stderr);
    const t = await run(['token'], { env: l.env });
    assert.equal(t.code, 0, t.stderr);
  });

  test('token expired: exit 4 for the lost answer, then exit 3 "run mlauth login"', async () => {
    const { op, px, l } = await proxied();
    await ageSession(l.env, -60);
    px.set({ proxy: { dropRefresh: 1 } });
    const first = await run(['token'], { env: l.env });
    assert.equal(first.code, 4, first.stderr);
    assert.match(first.stderr, /^mlauth: cannot reach http:\/\/127\.0\.0\.1:\d+: /);
    const second = await run(['token'], { env: l.env });
    assert.equal(second.code, 3, second.stderr);
    assert.match(second.stderr, /session expired or revoked: run mlauth login/);
    const third = await run(['token'], { env: l.env });
    assert.equal(third.code, 3, third.stderr);
    const c = await op.counters();
    assert.equal(c.refresh, 2, 'the refused refresh token is not presented a third time');
    assert.equal(c.refresh_errors, 1);
  });
});
