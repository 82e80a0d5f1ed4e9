// Crash consistency and the single-flight refresh under load.
//
// mlauth is killed (SIGKILL: no handler runs, no clean-up) at random moments of a refresh
// and of a login; whatever moment it dies, the stored session must still parse and the next
// `mlauth token` must work. A hundred concurrent callers on a stale token cause one refresh.
// And when the provider rotates refresh tokens and its answer is lost on the way back, the
// user is told to log in again, once per attempt, instead of a silent loop.
//
// "Stale" without waiting: the stored record's clock is moved (expires_at, obtained_at) the
// way time would move it, and the kernel-keyring cache entry dropped as the kernel does at
// expiry; the provider slows its token endpoint (tokenDelayMs) to widen the refresh.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync, renameSync, statSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run, spawnMlauth, startKeyring, startOP, stopAll, tmpEnv } from './rig.js';
import { JWT, forgetCache, sleep, tool } from './fixtures.js';
import { startHostile } from '../peers/hostile/server.js';

const issuers = new Set();
const servers = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const i of issuers) forgetCache(i);
  await stopAll();
});

const now = () => Math.floor(Date.now() / 1000);

// Whatever RUNS says, each group stops starting new runs after its time budget.
const RUNS = Number(process.env.CRASH_RUNS || 200);
const LANES = 4;

/** One user: a private home, file store or a private Secret Service, logged in at op. */
async function lane(op, { keyring = false, env: extra = {} } = {}) {
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

/** Rewrites the stored record with its access token expiring in `left` s (negative: expired). */
async function age(l, left) {
  const r = await stored(l);
  r.expires_at = now() + left;
  r.obtained_at = r.expires_at - 3600;
  if (l.keyring) {
    const s = await tool('secret-tool', ['store', '--label', `mlauth: default (${l.op.issuer})`,
      'xdg:schema', 'org.mlauth.Token', 'profile', 'default', 'issuer', l.op.issuer,
      'client_id', 'MLAAS-CLI-API'], l.env, JSON.stringify(r));
    assert.equal(s.code, 0, s.err);
  } else {
    const f = join(l.dir, 'default.json');
    writeFileSync(`${f}.test-tmp`, JSON.stringify(r), { mode: 0o600 });
    renameSync(`${f}.test-tmp`, f);
  }
  forgetCache(l.op.issuer);
  return r;
}

/** Temp files a writer left in the store directory. */
const leftovers = (l) => (l.keyring ? [] : readdirSync(l.dir).filter((f) => f !== 'default.json' && f !== 'default.lock'));

/**
 * Starts `args`, then SIGKILLs it after delayMs, or (trigger: 'write') the moment a temp file
 * appears in the store directory, i.e. while the new record is being written.
 */
async function killDuring(l, args, { delayMs, trigger }) {
  let watcher;
  const h = spawnMlauth(args, { env: l.env });
  const kill = () => { try { h.child.kill('SIGKILL'); } catch { /* gone */ } };
  if (trigger === 'write') {
    watcher = watch(l.dir, (ev, name) => { if (name && name.startsWith('.default.json.')) kill(); });
    setTimeout(kill, 2000); // bounded: a refresh that never writes is killed anyway
  } else {
    setTimeout(kill, delayMs);
  }
  const r = await h.done;
  watcher?.close();
  return r;
}

/**
 * After a crash: the record parses and is whole (status 0), any temp file left is the user's
 * own 0600 file, and the next `mlauth token` prints a token. Returns what happened.
 */
async function recovers(l, { allowLogin = false } = {}) {
  const rec = await stored(l);
  assert.ok(rec && rec.access_token && rec.refresh_token, 'the record is whole');
  const s = await run(['status'], { env: l.env });
  assert.equal(s.code, 0, `status after a crash: ${s.stderr}`);
  const left = leftovers(l);
  for (const f of left) {
    assert.match(f, /^\.default\.json\.[0-9a-f]{16}\.tmp$/, `unexpected file ${f}`);
    assert.equal(statSync(join(l.dir, f)).mode & 0o777, 0o600, `${f} is private`);
  }
  const t = await run(['token'], { env: l.env, timeoutMs: 20_000 });
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

/** Runs body(lane, i) for `runs` iterations spread over the lanes, within budgetMs. */
async function spread(lanes, runs, budgetMs, body) {
  const deadline = Date.now() + budgetMs;
  let next = 0;
  let done = 0;
  await Promise.all(lanes.map(async (l) => {
    while (next < runs && Date.now() < deadline) {
      const i = next++;
      await body(l, i);
      done++;
    }
  }));
  return done;
}

describe('crash consistency', { concurrency: 2 }, () => {
  test(`${RUNS} token refreshes SIGKILLed at random moments (file store): always recoverable`, async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1, rotate: false });
    const lanes = await Promise.all(Array.from({ length: LANES }, () => lane(op)));
    await op.set({ tokenDelayMs: 120 });
    const stats = { killed: 0, finished: 0, writeKills: 0, maxLeftovers: 0 };
    const done = await spread(lanes, RUNS, 45_000, async (l, i) => {
      await age(l, -60);
      // Two in three at a uniformly random moment of the ~170 ms refresh; one in three the
      // moment the new record's temp file appears.
      const trigger = i % 3 === 2 ? 'write' : 'time';
      const r = await killDuring(l, ['token'], { delayMs: Math.floor(Math.random() * 200), trigger });
      if (r.signal === 'SIGKILL') stats.killed++; else stats.finished++;
      if (trigger === 'write') stats.writeKills++;
      const { left } = await recovers(l);
      stats.maxLeftovers = Math.max(stats.maxLeftovers, left); // swept once a minute old
    });
    const c = await op.counters();
    assert.equal(c.refresh_errors, 0, 'no refresh token was ever refused');
    assert.ok(done >= Math.min(RUNS, 100), `only ${done} runs in the time budget`);
    assert.ok(stats.killed >= done / 2, JSON.stringify(stats));
    process.stderr.write(`# crash/file: ${done} runs, ${JSON.stringify(stats)}\n`);
    for (const l of lanes) await logsOutClean(l);
  });

  test('token refreshes SIGKILLed with the Secret Service store: always recoverable', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1, rotate: false });
    const lanes = await Promise.all(Array.from({ length: 2 }, () => lane(op, { keyring: true })));
    await op.set({ tokenDelayMs: 120 });
    let killed = 0;
    const done = await spread(lanes, Math.min(RUNS, 60), 25_000, async (l) => {
      await age(l, -60);
      const r = await killDuring(l, ['token'], { delayMs: Math.floor(Math.random() * 260) });
      if (r.signal === 'SIGKILL') killed++;
      await recovers(l);
    });
    assert.equal((await op.counters()).refresh_errors, 0);
    assert.ok(done >= 20, `only ${done} runs`);
    process.stderr.write(`# crash/keyring: ${done} runs, ${killed} killed\n`);
  });

  test('with rotation, a crash after the provider answered means one clear "run mlauth login"', async () => {
    // The provider spent the old refresh token; the new one died with the process. Nothing
    // can save that session, but the record must still parse and the next call say so.
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    const lanes = await Promise.all(Array.from({ length: 2 }, () => lane(op)));
    await op.set({ tokenDelayMs: 120 });
    let relogins = 0;
    const done = await spread(lanes, Math.min(RUNS, 40), 20_000, async (l) => {
      await age(l, -60);
      await killDuring(l, ['token'], { delayMs: 100 + Math.floor(Math.random() * 120) });
      if ((await recovers(l, { allowLogin: true })).relogin) relogins++;
    });
    assert.ok(done >= 10, `only ${done} runs`);
    process.stderr.write(`# crash/rotation: ${done} runs, ${relogins} needed a new login\n`);
  });

  test('login SIGKILLed while it stores the session: the old session or the new, never a torn one', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    const lanes = await Promise.all(Array.from({ length: 3 }, () => lane(op)));
    let killed = 0;
    const done = await spread(lanes, Math.min(RUNS, 30), 30_000, async (l, i) => {
      const h = spawnMlauth(['login', '--force', '--no-browser'], { env: l.env });
      const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
      let watcher;
      const kill = () => { try { h.child.kill('SIGKILL'); } catch { /* gone */ } };
      if (i % 2) {
        watcher = watch(l.dir, (ev, name) => { if (name && name.startsWith('.default.json.')) kill(); });
        setTimeout(kill, 3000);
      } else {
        // The first poll comes after the 1 s interval; the answer is written right after it.
        setTimeout(kill, 950 + Math.floor(Math.random() * 150));
      }
      await op.approve(m[1]);
      const r = await h.done;
      watcher?.close();
      if (r.signal === 'SIGKILL') killed++;
      await recovers(l);
    });
    assert.ok(done >= 12, `only ${done} runs`);
    assert.ok(killed >= done / 2, `${killed} of ${done} killed`);
    for (const l of lanes) await logsOutClean(l);
  });
});

describe('single flight under load', () => {
  test('100 concurrent token calls on a stale token, 20 times: one refresh each, every caller served', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 }); // rotation on: reuse would log out
    const l = await lane(op);
    await op.set({ tokenDelayMs: 150 });
    const started = Date.now();
    let rounds = 0;
    for (; rounds < 20 && Date.now() - started < 50_000; rounds++) {
      const old = await age(l, -30);
      await op.resetCounters();
      const results = await Promise.all(Array.from({ length: 100 }, () => run(['token'], { env: l.env, timeoutMs: 60_000 })));
      const c = await op.counters();
      const failed = results.filter((r) => r.code !== 0);
      assert.equal(failed.length, 0, `round ${rounds}: ${failed.length} failed: ${failed.map((r) => r.stderr).join('')}`);
      assert.equal(c.refresh, 1, `round ${rounds}: ${JSON.stringify(c)}`);
      assert.equal(c.refresh_errors, 0);
      const tokens = new Set(results.map((r) => r.stdout));
      assert.equal(tokens.size, 1, `round ${rounds}: every caller prints the one new token`);
      const token = [...tokens][0].trimEnd();
      assert.match(token, JWT);
      assert.notEqual(token, old.access_token);
      assert.equal((await stored(l)).access_token, token);
    }
    assert.ok(rounds >= 5, `only ${rounds} rounds in the time budget`);
    process.stderr.write(`# single-flight: ${rounds} rounds of 100 in ${Date.now() - started} ms\n`);
  });
});

describe('a refresh answer lost on the way back, with rotation', () => {
  // A forward proxy (http_proxy) between mlauth and the provider passes everything, except
  // that it cuts the connection after the provider answered a refresh: the provider has
  // rotated the refresh token, mlauth never saw the new one.
  async function proxied() {
    const op = await startOP({ accessTtl: 3600, interval: 1 }); // rotates, detects reuse
    const px = await startHostile();
    servers.push(px);
    const l = await lane(op, { env: { http_proxy: px.proxy } });
    assert.ok(px.log.some((e) => e.route === 'proxy' && e.grant === 'urn:ietf:params:oauth:grant-type:device_code'),
      'the login went through the proxy');
    return { op, px, l };
  }

  test('token still valid: served with a warning; the next attempt says "run mlauth login" (exit 3)', async () => {
    const { op, px, l } = await proxied();
    const before = await age(l, 120); // stale, still valid for two minutes
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
      assert.match(r.stderr, /^mlauth: session expired or revoked: run mlauth login\n$/);
      // One request per attempt: no retry loop behind the user's back.
      assert.equal((await op.counters()).refresh, 1 + attempt);
    }
    assert.ok((await stored(l)).refresh_token, 'the record still parses');
    const again = await loginApproved(l, ['--force']);
    assert.equal(again.code, 0, again.stderr);
    const t = await run(['token'], { env: l.env });
    assert.equal(t.code, 0, t.stderr);
  });

  test('token expired: exit 4 for the lost answer, then exit 3 "run mlauth login"', async () => {
    const { op, px, l } = await proxied();
    await age(l, -60);
    px.set({ proxy: { dropRefresh: 1 } });
    const first = await run(['token'], { env: l.env });
    assert.equal(first.code, 4, first.stderr);
    assert.match(first.stderr, /^mlauth: cannot reach http:\/\/127\.0\.0\.1:\d+: /);
    const second = await run(['token'], { env: l.env });
    assert.equal(second.code, 3, second.stderr);
    assert.match(second.stderr, /session expired or revoked: run mlauth login/);
    const c = await op.counters();
    assert.equal(c.refresh, 2);
    assert.equal(c.refresh_errors, 1);
  });
});
