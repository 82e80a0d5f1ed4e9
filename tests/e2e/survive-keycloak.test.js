// Issue 13 against the real Keycloak: with "Revoke Refresh Token" on, killing `mlauth token`
// mid-refresh loses no session; a session Keycloak refuses (consent revoked, signed out by
// an administrator) exits 3, is never presented again, and `mlauth login` needs no --force.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ageRecord, killRefreshes } from './fixtures.js';
import { startGate } from '../peers/gate.js';
import { CLIENT_ID, deviceLogin, keycloak } from './keycloak.js';
import { run, stopAll, tmpEnv } from './rig.js';

after(stopAll);

const KILLS = Number(process.env.SURVIVE_KC_KILLS || 9);

const login = async (realm, env, args = []) => deviceLogin(realm, env, { args });

/**
 * A user with a file store logged in to realm, through gate when given (then Keycloak's
 * issuer names the gate); age() makes its token stale.
 */
async function user(realm, gate) {
  const home = tmpEnv();
  const issuer = gate ? `${gate.url}/realms/${realm.name}` : realm.issuer;
  const env = { ...home.env, MLAUTH_STORE: 'file', MLAUTH_ISSUER: issuer };
  const r = await login(realm, env);
  assert.equal(r.code, 0, r.stderr);
  const file = join(env.XDG_STATE_HOME, 'mlauth', 'default.json');
  const record = () => JSON.parse(readFileSync(file, 'utf8'));
  const age = () => ageRecord(file, -60);
  return { env, record, age };
}

const errors = async (realm) => (await realm.events('REFRESH_TOKEN_ERROR')).length;

test(`Revoke Refresh Token on: ${KILLS} token calls per signal killed before, during and after Keycloak's answer, no session lost`, async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: 3600, revokeRefreshToken: true, maxReuse: 0 });
  // Keycloak cannot be told to hold a refresh; the gate in front of it can.
  const gate = await startGate(kc.url);
  try {
    const u = await user(realm, gate);
    const hows = [['SIGKILL', false], ['SIGINT', false], ['SIGTERM', false], ['SIGHUP', false], ['SIGKILL', true]];
    const lost = [];
    let held = 0;
    for (const [signal, group] of hows) {
      const r = await killRefreshes({
        peer: gate,
        env: u.env,
        age: u.age,
        relogin: async () => assert.equal((await login(realm, u.env, ['--force'])).code, 0),
        n: KILLS,
        signal,
        group,
      });
      lost.push(...r.lost);
      held += r.held;
    }
    process.stderr.write(`# survive/keycloak: ${lost.length} of ${hows.length * KILLS} lost, ${held} killed while held\n`);
    assert.deepEqual(lost, []);
    assert.equal(await errors(realm), 0, 'Keycloak never saw a spent refresh token');
  } finally {
    await gate.close();
  }
  await realm.remove();
});

/** Keycloak refused the session: exit 3 once, then without asking it; login without --force. */
async function refusedOnce(realm, u) {
  u.age();
  const t = await run(['token'], { env: u.env });
  assert.equal(t.code, 3, t.stderr);
  assert.match(t.stderr, /run mlauth login/);
  assert.ok(u.record().refused_at > 0);
  const seen = await errors(realm);
  assert.equal(seen, 1);
  const again = await run(['token'], { env: u.env });
  assert.equal(again.code, 3, again.stderr);
  assert.match(again.stderr, /the provider refused it at .*: run mlauth login/);
  assert.equal(await errors(realm), seen, 'the refused refresh token was not presented again');
  const l = await login(realm, u.env);
  assert.equal(l.code, 0, l.stderr);
  assert.doesNotMatch(l.stderr, /Already logged in/);
  assert.equal((await run(['token'], { env: u.env })).code, 0);
}

test('consent revoked at Keycloak: exit 3, never asked again, login without --force', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: 3600 });
  const u = await user(realm);
  await realm.admin('DELETE', `/users/${await realm.userId('alice')}/consents/${CLIENT_ID}`);
  await refusedOnce(realm, u);
  await realm.remove();
});

test('signed out by an administrator: exit 3, never asked again, login without --force', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: 3600 });
  const u = await user(realm);
  await realm.logoutUser('alice');
  await refusedOnce(realm, u);
  await realm.remove();
});

test('an online session whose SSO idle is shorter than the token: kept alive by token calls', async () => {
  const kc = await keycloak();
  // No offline_access for the client: an online session, ending 20 s after its last refresh
  // unless refreshed; access tokens live an hour.
  const realm = await kc.realm({ interval: 1, accessTtl: 3600, ssoIdle: 20, offlineScope: false });
  const u = await user(realm);
  assert.equal(u.record().session, 'online');
  // Calls every few seconds, for longer than the idle timeout: each one past half the window
  // refreshes, so the session never goes idle at Keycloak.
  const until = Date.now() + 45_000;
  while (Date.now() < until) {
    const t = await run(['token'], { env: u.env });
    assert.equal(t.code, 0, t.stderr);
    await new Promise((r) => { setTimeout(r, 4000); });
  }
  assert.ok((await realm.events('REFRESH_TOKEN')).length >= 2, 'refreshed to keep the session');
  assert.equal(await errors(realm), 0);
  assert.equal((await realm.sessions()).length, 1, 'the SSO session is still there');
  await realm.remove();
});
