// A session is never lost (issue 13): one lock wherever a process runs, a refresh that
// outlives its caller, a rotated refresh token kept whatever fails after the provider's
// answer, and a refused one never presented again.
//
// "Stale" without waiting: the stored record's clock is moved the way time would move it
// and the kernel-keyring cache entry dropped, as the kernel does at expiry.
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run, spawnMlauth, startOP, stopAll, tmpEnv } from './rig.js';
import { JWT, forgetCache } from './fixtures.js';

const issuers = new Set();
after(async () => {
  for (const i of issuers) forgetCache(i);
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
function age(u, left) {
  const r = record(u);
  r.expires_at = now() + left;
  r.obtained_at = r.expires_at - 3600;
  writeFileSync(`${u.file}.test-tmp`, JSON.stringify(r), { mode: 0o600 });
  renameSync(`${u.file}.test-tmp`, u.file);
  forgetCache(u.op.issuer);
  return r;
}

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
