// mlauth against the real Keycloak (the release pinned in tests/peers/keycloak/dist.env): one
// server per test run (run.js), a fresh realm shaped like the studio's per test, the device
// approved through Keycloak's own login and consent pages.
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { forgetCache, JWT, sleep, storedRecord } from './fixtures.js';
import { deviceLogin, keycloak } from './keycloak.js';
import {
  run, spawnMlauth, startAPI, startKeyring, stopAll, tmpEnv,
} from './rig.js';

after(stopAll);

const REFRESHES = 'REFRESH_TOKEN';

/** A private home (with a keyring unless keyring: false) logged in to realm as user. */
async function session(realm, { user = 'alice', keyring = true, store } = {}) {
  const home = tmpEnv();
  const kr = keyring ? await startKeyring(home.env) : null;
  const env = {
    ...home.env, ...(kr ? kr.env : {}), MLAUTH_ISSUER: realm.issuer, ...(store ? { MLAUTH_STORE: store } : {}),
  };
  const r = await login(realm, env, { user });
  assert.equal(r.code, 0, r.stderr);
  return { env, home, login: r };
}

/** mlauth login, with the device approved (or consent refused) in "the browser" by user. */
async function login(realm, env, { user = 'alice', consent = true } = {}) {
  const r = await deviceLogin(realm, env, { users: [user], consent });
  return { ...r, page: r.pages.at(-1) ?? '' };
}

/** Resolves once the stored access token has expired on this machine's clock. */
async function untilExpired(env) {
  // --min-valid 0: the token as long as it has not expired, whatever the default margin.
  const j = await run(['token', '--json', '--no-refresh', '--min-valid', '0'], { env });
  const { expires_at: exp } = JSON.parse(j.stdout || '{"expires_at":0}');
  while (Date.now() / 1000 <= exp) await sleep(250);
}

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url'));
const refreshCount = async (realm) => (await realm.events(REFRESHES)).length;

test('login through Keycloak\'s pages; token accepted by the API (audience checked); status', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1 });
  const api = await startAPI({ issuer: realm.issuer, audience: 'MLAAS-CLI-API' });
  const { env, login: r } = await session(realm);
  assert.match(r.page, /Device Login Successful/);
  assert.match(r.stdout, /^Logged in as Alice Example \(alice@example\.test\) to /);

  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout.trimEnd(), JWT);
  const c = claims(t.stdout);
  assert.equal(c.iss, realm.issuer);
  assert.equal(c.azp, 'MLAAS-CLI-API');
  assert.ok(c.aud.includes('MLAAS-CLI-API'), JSON.stringify(c.aud));

  const send = await run(['send', 'Hello'], { env: { ...env, MLAUTH_API_BASE: api.base } });
  assert.equal(send.code, 0, send.stderr);
  assert.ok(send.stdout.length > 0);
  const [req] = await api.requests();
  assert.equal(req.authorized, true);

  const s = await run(['status'], { env });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^User: +Alice Example \(alice@example\.test\)\nUsername: +alice$/m);
  assert.match(s.stdout, /^Scopes: +.*\boffline_access\b/m);
  assert.doesNotMatch(s.stdout + s.stderr, /eyJ/);
  await realm.remove();
});

test('the API peer refuses a Keycloak token without MLAAS-CLI-API in aud', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1 });
  const api = await startAPI({ issuer: realm.issuer, audience: 'SOME-OTHER-API' });
  const { env } = await session(realm);
  const send = await run(['send', '--retries', '0', 'Hello'], { env: { ...env, MLAUTH_API_BASE: api.base } });
  assert.equal(send.code, 5, send.stderr);
  assert.match(send.stderr, /^mlauth: .*\b401\b.*"aud"/m);
  await realm.remove();
});

test('a token past its lifetime is refreshed once; the new one is accepted', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: 5 });
  const api = await startAPI({ issuer: realm.issuer, audience: 'MLAAS-CLI-API' });
  const { env } = await session(realm);
  // From the store, not `mlauth token`: a 5 s token may be stale already on a loaded machine,
  // and that call would then be the refresh.
  const first = `${(await storedRecord(env)).access_token}\n`;
  await untilExpired(env);
  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  assert.notEqual(t.stdout, first);
  assert.equal(await refreshCount(realm), 1);
  // Within the new token's lifetime the API takes it: give it a lifetime load cannot eat.
  await realm.setRealm({ accessTokenLifespan: 3600 });
  await untilExpired(env);
  const send = await run(['send', 'Hello'], { env: { ...env, MLAUTH_API_BASE: api.base } });
  assert.equal(send.code, 0, send.stderr);
  assert.equal(await refreshCount(realm), 2);
  await realm.remove();
});

test('50 concurrent token calls on a stale token: exactly one refresh at Keycloak', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: 5, revokeRefreshToken: true });
  const { env } = await session(realm);
  // The refreshed token lives an hour, so no caller finds it stale again however slow it is.
  await realm.setRealm({ accessTokenLifespan: 3600 });
  await untilExpired(env);
  const results = await Promise.all(Array.from({ length: 50 }, () => run(['token'], { env, timeoutMs: 180_000 })));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assert.equal(new Set(results.map((r) => r.stdout)).size, 1);
  assert.equal(await refreshCount(realm), 1);
  assert.equal((await realm.events('REFRESH_TOKEN_ERROR')).length, 0);
  await realm.remove();
});

for (const revoke of [true, false]) {
  test(`Revoke Refresh Token ${revoke ? 'on' : 'off (the default)'}: the rotated token is the one kept`, async () => {
    const kc = await keycloak();
    const realm = await kc.realm({ interval: 1, accessTtl: 5, revokeRefreshToken: revoke, maxReuse: 0 });
    const { env } = await session(realm, { keyring: false, store: 'file' });
    const file = join(env.XDG_STATE_HOME, 'mlauth', 'default.json');
    const old = join(env.XDG_STATE_HOME, 'old.json');
    copyFileSync(file, old);
    const rtOf = (f) => JSON.parse(readFileSync(f, 'utf8')).refresh_token;
    let rt = rtOf(file);
    for (let i = 1; i <= 2; i++) {
      await untilExpired(env);
      const t = await run(['token'], { env });
      assert.equal(t.code, 0, t.stderr);
      assert.notEqual(rtOf(file), rt, 'Keycloak rotated the refresh token and mlauth kept the new one');
      rt = rtOf(file);
      assert.equal(await refreshCount(realm), i);
    }
    // The session as it was before both refreshes: its refresh token has been used.
    copyFileSync(old, file);
    forgetCache(realm.issuer);
    await untilExpired(env);
    const t = await run(['token'], { env });
    if (revoke) {
      assert.equal(t.code, 3, t.stderr);
      assert.equal(t.stdout, '');
      assert.match(t.stderr, /run mlauth login/);
    } else {
      // Keycloak's default accepts an old refresh token of a live session.
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout.trimEnd(), JWT);
    }
    await realm.remove();
  });
}

test('the user disabled by an administrator: token exits 3', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: 5 });
  const { env } = await session(realm);
  await realm.setUser('alice', { enabled: false });
  await untilExpired(env);
  const t = await run(['token'], { env });
  assert.equal(t.code, 3, t.stderr);
  assert.equal(t.stdout, '');
  assert.match(t.stderr, /run mlauth login/);
  await realm.remove();
});

test('an administrator signing the user out: token exits 3', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: 5 });
  const { env } = await session(realm);
  await realm.logoutUser('alice');
  await untilExpired(env);
  const t = await run(['token'], { env });
  assert.equal(t.code, 3, t.stderr);
  assert.equal(t.stdout, '');
  assert.match(t.stderr, /run mlauth login/);
  assert.equal(await refreshCount(realm), 0);
  assert.equal((await realm.events('REFRESH_TOKEN_ERROR')).length, 1);
  await realm.remove();
});

test('logout revokes at Keycloak: the offline session is gone', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1 });
  const { env } = await session(realm);
  assert.equal((await realm.offlineSessions()).length, 1);
  const r = await run(['logout'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await realm.offlineSessions(), []);
  const t = await run(['token'], { env });
  assert.equal(t.code, 3);
  await realm.remove();
});

test('an offline login outlives the SSO session', async () => {
  const kc = await keycloak();
  // 30 s of SSO session: the login through Keycloak's pages must fit in it, on a loaded
  // machine too (5 s did not: 'Client no longer has requested consent from user').
  const realm = await kc.realm({ interval: 1, accessTtl: 5, ssoIdle: 30, ssoMax: 30 });
  const { env } = await session(realm);
  const loggedIn = Date.now();
  await untilExpired(env);
  // Past the SSO session's maximum life (and Keycloak's idle grace window is irrelevant here:
  // the offline session has its own).
  while (Date.now() - loggedIn < 31_000) await sleep(250);
  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  assert.equal(await refreshCount(realm), 1);
  await realm.remove();
});

test('consent refused on Keycloak\'s page: login exits 1, nothing stored', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1 });
  const home = tmpEnv();
  const kr = await startKeyring(home.env);
  const env = { ...home.env, ...kr.env, MLAUTH_ISSUER: realm.issuer };
  const r = await login(realm, env, { consent: false });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /denied/);
  const s = await run(['token'], { env });
  assert.equal(s.code, 3);
  await realm.remove();
});

test('a device code that expires unapproved ends the login with exit 1', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, deviceTtl: 3 });
  const home = tmpEnv();
  const kr = await startKeyring(home.env);
  const env = { ...home.env, ...kr.env, MLAUTH_ISSUER: realm.issuer };
  const r = await run(['login', '--no-browser'], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /expired/);
  await realm.remove();
});
