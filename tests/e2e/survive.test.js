// A session is never lost (issue 13): one lock wherever a process runs, a refresh that
// outlives its caller, a rotated refresh token kept whatever fails after the provider's
// answer, and a refused one never presented again.
//
// "Stale" without waiting: the stored record's clock is moved the way time would move it
// and the kernel-keyring cache entry dropped, as the kernel does at expiry.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run, spawnMlauth, startKeyring, startOP, stopAll, tmpEnv } from './rig.js';
import { JWT, ageRecord, forgetCache, killRefreshes, tool } from './fixtures.js';

const issuers = new Set();
const mounts = [];
after(async () => {
  for (const i of issuers) forgetCache(i);
  for (const m of mounts) {
    try { execFileSync('umount', ['-l', m], { stdio: 'ignore' }); } catch { /* gone */ }
  }
  await stopAll();
});

const now = () => Math.floor(Date.now() / 1000);

/** A user whose session is in the file store under HOME (no XDG_STATE_HOME, as cron and SSH). */
async function fileUser(op) {
  const home = tmpEnv();
  issuers.add(op.issuer);
  const base = { HOME: home.env.HOME, MLAUTH_ISSUER: op.issuer };
  const u = {
    op,
    // An SSH login: a runtime directory, no session bus.
    ssh: { ...base, XDG_RUNTIME_DIR: home.env.XDG_RUNTIME_DIR },
    // cron: HOME, PATH and little else.
    cron: { ...base },
    file: join(home.env.HOME, '.local/state/mlauth/default.json'),
  };
  const h = spawnMlauth(['login', '--no-browser'], { env: u.ssh });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await op.approve(m[1]);
  const r = await h.done;
  assert.equal(r.code, 0, r.stderr);
  return u;
}

const record = (u) => JSON.parse(readFileSync(u.file, 'utf8'));

/** Rewrites the record with its access token expiring in `left` s (negative: expired). */
const age = (u, left) => ageRecord(u.file, left);

describe('one lock per profile, whatever the environment', () => {
  test('cron and SSH on one store, 20 calls each with a refresh due: one refresh, no loss', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 }); // rotation and reuse detection
    const u = await fileUser(op);
    const old = age(u, -30);
    await op.resetCounters();
    await op.set({ tokenDelayMs: 300 }); // widen the window in which callers overlap
    const calls = [];
    for (let i = 0; i < 20; i++) {
      calls.push(run(['token'], { env: u.cron, timeoutMs: 60_000 }));
      calls.push(run(['token'], { env: u.ssh, timeoutMs: 60_000 }));
    }
    const results = await Promise.all(calls);
    const c = await op.counters();
    const failed = results.filter((r) => r.code !== 0);
    assert.equal(failed.length, 0, failed.map((r) => r.stderr).join(''));
    assert.equal(c.refresh, 1, JSON.stringify(c));
    assert.equal(c.refresh_errors, 0);
    const tokens = new Set(results.map((r) => r.stdout));
    assert.equal(tokens.size, 1, 'every caller prints the one new token');
    const token = [...tokens][0].trimEnd();
    assert.match(token, JWT);
    assert.notEqual(token, old.access_token);
    assert.equal(record(u).access_token, token);
    // The session lives on: the next refresh (from cron) uses the rotated token.
    await op.set({ tokenDelayMs: 0 });
    age(u, -30);
    const again = await run(['token'], { env: u.cron });
    assert.equal(again.code, 0, again.stderr);
    assert.equal((await op.counters()).refresh_errors, 0);
  });
});

// ---- a refresh outlives its caller ------------------------------------------------------

const KILLS = Number(process.env.SURVIVE_KILLS || 12);

/** A new login after a lost session (what a person would have to do). */
async function relogin(u, env) {
  const h = spawnMlauth(['login', '--no-browser', '--force'], { env });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await u.op.approve(m[1]);
  assert.equal((await h.done).code, 0);
}

describe('a refresh, once sent, completes and is saved whatever happens to its caller', () => {
  const hows = [
    { name: 'SIGKILL', signal: 'SIGKILL' },
    { name: 'SIGINT', signal: 'SIGINT' },
    { name: 'SIGTERM', signal: 'SIGTERM' },
    { name: 'SIGHUP', signal: 'SIGHUP' },
    { name: 'SIGKILL to the process group', signal: 'SIGKILL', group: true },
  ];
  test(`${KILLS} token calls per signal, killed before, during and after the provider's answer: no session lost`, async () => {
    // oidc-provider rotates refresh tokens and revokes the grant when a spent one comes back.
    // One provider per user: its hold switch and counters are its own.
    const users = await Promise.all(hows.map(async () => {
      const op = await startOP({ accessTtl: 3600, interval: 1 });
      await op.set({ tokenDelayMs: 100 }); // random kills: the request is in flight a while
      return fileUser(op);
    }));
    const results = await Promise.all(hows.map((how, i) => killRefreshes({
      peer: users[i].op,
      env: users[i].cron,
      age: () => age(users[i], -60),
      relogin: () => relogin(users[i], users[i].cron),
      n: KILLS,
      signal: how.signal,
      group: how.group,
    })));
    const refused = (await Promise.all(users.map((u) => u.op.counters()))).reduce((n, c) => n + c.refresh_errors, 0);
    const report = hows.map((how, i) => `${how.name}: ${results[i].lost.length} of ${results[i].runs} lost`).join('; ');
    process.stderr.write(`# survive: ${report}\n`);
    for (const r of results) {
      assert.deepEqual(r.lost, [], report);
    }
    assert.equal(refused, 0, 'no spent refresh token was ever presented');
  });
});

// ---- a refused refresh token is never presented again --------------------------------------

async function refusedOnce(u, env, refuse) {
  age(u, -60);
  await u.op.resetCounters();
  await refuse();
  const r = await run(['token'], { env });
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /run mlauth login/);
  assert.equal((await u.op.counters()).refresh, 1);
  // Marked in the record: the next calls do not ask the provider again.
  const rec = record(u);
  assert.ok(rec.refused_at > 0, JSON.stringify(Object.keys(rec)));
  assert.equal(rec.refresh_token, undefined, 'the refused refresh token is gone from the store');
  for (let i = 0; i < 2; i++) {
    const again = await run(['token'], { env });
    assert.equal(again.code, 3, again.stderr);
    assert.match(again.stderr, /^mlauth: session expired or revoked \(the provider refused it at [\d-]+ [\d:]+\): run mlauth login\n$/);
  }
  assert.equal((await u.op.counters()).refresh, 1, 'a refused refresh token is never presented again');
  const s = await run(['status'], { env });
  assert.equal(s.code, 3, s.stdout);
  assert.match(s.stdout, /^Session: +session ended by the provider \(refresh refused at .*\): run mlauth login$/m);
  // And login needs no --force.
  const h = spawnMlauth(['login', '--no-browser'], { env });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await u.op.approve(m[1]);
  const l = await h.done;
  assert.equal(l.code, 0, l.stderr);
  assert.doesNotMatch(l.stderr, /Already logged in/);
  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  assert.ok(!record(u).refused_at, 'a new login clears the mark');
}

describe('a refresh token the provider refused', () => {
  test('a revoked session: exit 3 once from the provider, then without asking it; login without --force', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    const u = await fileUser(op);
    await refusedOnce(u, u.ssh, () => op.revokeAll());
  });

  test('not_allowed at refresh (offline tokens no longer allowed): exit 3, not 1', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    const u = await fileUser(op);
    await refusedOnce(u, u.ssh, () => op.set({ refreshError: { error: 'not_allowed', error_description: 'Offline tokens not allowed for the user or client' } }));
  });

  test('invalid_scope at refresh (consent revoked): exit 3 with the provider\'s reason', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    const u = await fileUser(op);
    age(u, -60);
    await op.set({ refreshError: { error: 'invalid_scope', error_description: 'Client no longer has requested consent' } });
    const r = await run(['token'], { env: u.ssh });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /invalid_scope \(Client no longer has requested consent\): run mlauth login\n$/);
    assert.ok(record(u).refused_at > 0);
  });
});

// ---- a rotated refresh token is never thrown away ------------------------------------------

function tryKeyctl(args) {
  try {
    return { ok: true, out: execFileSync('keyctl', args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString() };
  } catch {
    return { ok: false };
  }
}

/** A tiny tmpfs of our own as the state directory, so a test can fill it. */
function smallStateDir(home) {
  const dir = join(home.dir, 'small-state');
  mkdirSync(dir, { mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

describe('a rotated refresh token is kept whatever fails after the answer', () => {
  test('the keyring locked between the request and the save: kept in the kernel keyring, saved later', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    const home = tmpEnv();
    let kr = await startKeyring(home.env);
    issuers.add(op.issuer);
    let env = { ...home.env, ...kr.env, MLAUTH_ISSUER: op.issuer };
    const h = spawnMlauth(['login', '--no-browser'], { env });
    await op.approve((await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' }))[1]);
    assert.equal((await h.done).code, 0);
    const stored = async () => JSON.parse((await tool('secret-tool', ['lookup', 'profile', 'default'], env)).out);
    const before = await stored();
    before.expires_at = now() - 60;
    before.obtained_at = before.expires_at - 3600;
    const s = await tool('secret-tool', ['store', '--label', 'mlauth', 'xdg:schema', 'org.mlauth.Token',
      'profile', 'default', 'issuer', op.issuer, 'client_id', 'MLAAS-CLI-API'], env, JSON.stringify(before));
    assert.equal(s.code, 0, s.err);
    forgetCache(op.issuer);

    // The provider rotates and holds its answer; meanwhile the keyring locks; then it answers.
    await op.set({ hold: { grant: 'refresh_token', when: 'after' } });
    const { held } = await op.counters();
    const t = spawnMlauth(['token'], { env });
    await op.until('held', held + 1, { unless: t.done });
    const lock = await tool('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.secrets',
      '/org/freedesktop/secrets', 'org.freedesktop.Secret.Service.Lock',
      'array:objpath:/org/freedesktop/secrets/aliases/default'], env);
    assert.equal(lock.code, 0, lock.err);
    await op.set({ hold: null });
    const r = await t.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trimEnd(), JWT);
    assert.match(r.stderr, /the refreshed session could not be saved \(.*locked.*\); it is kept in the kernel keyring/);

    // Unlocked again (the keyring restarted, as after a new desktop login): the next run saves it.
    await kr.stop();
    kr = await startKeyring(home.env);
    env = { ...home.env, ...kr.env, MLAUTH_ISSUER: op.issuer };
    assert.equal((await stored()).refresh_token, before.refresh_token, 'the locked keyring took nothing');
    forgetCache(op.issuer);
    const t2 = await run(['token'], { env });
    assert.equal(t2.code, 0, t2.stderr);
    assert.equal(t2.stdout, r.stdout);
    assert.match(t2.stderr, /saved the session refreshed at/);
    assert.notEqual((await stored()).refresh_token, before.refresh_token);
    // The live refresh token: a spent one would make the provider revoke the grant.
    const again = await stored();
    again.expires_at = now() - 60;
    again.obtained_at = again.expires_at - 3600;
    await tool('secret-tool', ['store', '--label', 'mlauth', 'xdg:schema', 'org.mlauth.Token',
      'profile', 'default', 'issuer', op.issuer, 'client_id', 'MLAAS-CLI-API'], env, JSON.stringify(again));
    forgetCache(op.issuer);
    const t3 = await run(['token'], { env });
    assert.equal(t3.code, 0, t3.stderr);
    assert.equal((await op.counters()).refresh_errors, 0);
  });

  test('disk full during the save: kept in the kernel keyring, saved by the next run', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    const home = tmpEnv();
    const state = smallStateDir(home);
    issuers.add(op.issuer);
    const env = { HOME: home.env.HOME, XDG_STATE_HOME: state, MLAUTH_STORE: 'file', MLAUTH_ISSUER: op.issuer };
    const u = { op, file: join(state, 'mlauth/default.json') };
    const h = spawnMlauth(['login', '--no-browser'], { env });
    await op.approve((await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' }))[1]);
    assert.equal((await h.done).code, 0);
    const before = age(u, -60);
    const filler = join(state, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=4096'], { stdio: 'ignore' });
    } catch { /* stopped by ENOSPC, as meant */ }

    const t = await run(['token'], { env });
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout.trimEnd(), JWT);
    assert.notEqual(t.stdout.trimEnd(), before.access_token);
    assert.match(t.stderr, /warning: the refreshed session could not be saved \(.*No space left on device.*\); it is kept in the kernel keyring \(memory only\)/);
    assert.equal(record(u).refresh_token, before.refresh_token, 'the full disk took nothing');
    const stash = `mlauth-stash:default:MLAAS-CLI-API:${op.issuer}`;
    assert.equal(tryKeyctl(['search', '@u', 'user', stash]).ok, true, 'kept in the user keyring');

    rmSync(filler);
    forgetCache(op.issuer);
    const t2 = await run(['token'], { env });
    assert.equal(t2.code, 0, t2.stderr);
    assert.equal(t2.stdout, t.stdout, 'the session refreshed before is the one used');
    assert.match(t2.stderr, /warning: saved the session refreshed at .*, which could not be saved then/);
    const saved = record(u);
    assert.notEqual(saved.refresh_token, before.refresh_token);
    assert.equal(saved.access_token, t.stdout.trimEnd());
    // It is the live refresh token: with reuse detection, a spent one would revoke the session.
    age(u, -60);
    const t3 = await run(['token'], { env });
    assert.equal(t3.code, 0, t3.stderr);
    assert.equal(t3.stderr, '', 'saved once: no more warnings');
    assert.equal((await op.counters()).refresh_errors, 0);
    assert.equal(tryKeyctl(['search', '@u', 'user', stash]).ok, false, 'gone once saved');
  });
});

// ---- the device flow rides out a network drop ----------------------------------------------

describe('login polling through transient failures', () => {
  for (const [what, failure] of [['5xx answers', 503], ['hang-ups', 'close']]) {
    test(`${what} while polling: login backs off, keeps the code and succeeds, with one note`, async () => {
      const op = await startOP({ accessTtl: 3600, interval: 1 });
      const home = tmpEnv();
      const env = { ...home.env, MLAUTH_STORE: 'file', MLAUTH_ISSUER: op.issuer };
      issuers.add(op.issuer);
      await op.set({ pollFailures: 3, pollFailure: failure });
      const h = spawnMlauth(['login', '--no-browser'], { env });
      const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
      await h.waitFor(/cannot be reached/, { stream: 'stderr', timeoutMs: 20_000 });
      await op.approve(m[1]);
      const r = await h.done;
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Logged in as Alice Example/);
      assert.equal(r.stderr.match(/cannot be reached/g).length, 1, r.stderr);
      assert.match(r.stderr, /^The identity provider cannot be reached \(.*\); still waiting, trying less often\.$/m);
      const c = await op.counters();
      assert.ok(c.device_token >= 4, JSON.stringify(c));
      assert.equal((await run(['token'], { env })).code, 0);
    });
  }
});

// ---- logins beside refreshes ----------------------------------------------------------------

describe('logins at the same time as refreshes and other logins', () => {
  test('two logins at once, and a login during a refresh in flight: one consistent session', async () => {
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    const u = await fileUser(op);
    const env = u.ssh;
    const logins = [0, 1].map(() => spawnMlauth(['login', '--no-browser', '--force'], { env }));
    for (const h of logins) await op.approve((await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' }))[1]);
    for (const h of logins) assert.equal((await h.done).code, 0);
    let rec = record(u);
    assert.match(rec.access_token, JWT);
    // A refresh in flight (held at the provider) while a third login saves.
    age(u, -60);
    const login = spawnMlauth(['login', '--no-browser', '--force'], { env });
    const code = (await login.waitFor(/shows the code (\S+)/, { stream: 'stderr' }))[1];
    const { held } = await op.counters();
    await op.set({ hold: { grant: 'refresh_token', when: 'before' } });
    const refresh = spawnMlauth(['token'], { env });
    await op.until('held', held + 1, { unless: refresh.done });
    // Approved while the refresh is in flight and holds the profile's lock; then the
    // provider lets the refresh go.
    await op.approve(code);
    await op.set({ hold: null });
    const [l, t] = await Promise.all([login.done, refresh.done]);
    assert.equal(l.code, 0, l.stderr);
    assert.equal(t.code, 0, t.stderr);
    rec = record(u);
    // Whichever saved last, the stored session is whole and its refresh token is live.
    const s = await run(['status'], { env });
    assert.equal(s.code, 0, s.stderr);
    age(u, -60);
    const again = await run(['token'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.notEqual(again.stdout.trimEnd(), rec.access_token);
    assert.equal((await op.counters()).refresh_errors, 0);
  });
});
