// The login side of mlauth against the real Keycloak: the kind of session it grants, the
// fallback for a user without offline_access, the ID token validated against the realm's
// keys, status --verify, and the device flow's slow_down (see README, "The Keycloak in the
// rig", for what mlauth relies on).
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';
import { deviceLogin, keycloak } from './keycloak.js';
import {
  run, spawnMlauth, startKeyring, stopAll, tmpEnv,
} from './rig.js';
import { storedRecord } from './fixtures.js';

after(stopAll);

const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url'));

async function home(realm) {
  const h = tmpEnv();
  const kr = await startKeyring(h.env);
  return { ...h.env, ...kr.env, MLAUTH_ISSUER: realm.issuer };
}

/** mlauth login; every device code it shows is approved by the next of users (keycloak.js). */
const login = (realm, env, users = ['alice'], args = []) => deviceLogin(realm, env, { users, args });

test('Keycloak drops offline_access for a client without it: login warns of an online session; status shows it', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, offlineScope: false, ssoIdle: 1800 });
  const env = await home(realm);
  const r = await login(realm, env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /; online session until \d{4}-\d\d-\d\d \d\d:\d\d\.\n$/);
  assert.match(r.stderr, /^mlauth: warning: the provider granted an online session, not the offline one asked for \(the client may not have the offline_access scope\): it ends at \d{4}-\d\d-\d\d \d\d:\d\d \(in (30m( 0s)?|29m \d+s)\) unless mlauth refreshes it before, and at the latest when your login session at the provider does \(SSO Session Max\)/m);
  const rec = await storedRecord(env);
  assert.equal(rec.session, 'online');
  // What mlauth read it from: Keycloak's own answer.
  assert.equal(claims(rec.refresh_token).typ, 'Refresh');
  assert.ok(!rec.scope.split(' ').includes('offline_access'), rec.scope);
  const s = await run(['status'], { env });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^Session: +online, until .* unless refreshed before; ends with the provider's login session$/m);
  assert.equal(JSON.parse((await run(['status', '--json'], { env })).stdout).session, 'online');
  await realm.remove();
});

test('an offline login at Keycloak is recorded as offline, without a warning', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1 });
  const env = await home(realm);
  const r = await login(realm, env);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /online session/);
  const rec = await storedRecord(env);
  assert.equal(rec.session, 'offline');
  assert.equal(claims(rec.refresh_token).typ, 'Offline');
  await realm.remove();
});

test('a user without the offline_access role: not_allowed, then login with openid and a note', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1 });
  // Keycloak gives every user offline_access through the realm's default role: not bob here.
  const offline = await realm.admin('GET', '/roles/offline_access');
  await realm.admin('DELETE', '/roles/default-roles-virtuos/composites', [offline]);
  const env = await home(realm);
  // Keycloak refuses only at the token endpoint, after the approval, and spends the code.
  const r = await login(realm, env, ['bob', 'bob']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^mlauth: warning: the provider does not allow this account an offline session \(not_allowed\); logging in with 'openid' instead: approve the new code/m);
  assert.ok(r.pages.length >= 2, 'a second code was shown');
  assert.match(r.stdout, /^Logged in as Bob Online .*\nToken valid until \S+; online session until/);
  const rec = await storedRecord(env);
  assert.equal(rec.session, 'online');
  assert.equal(claims(rec.refresh_token).typ, 'Refresh');
  assert.deepEqual(await realm.offlineSessions('bob'), []);
  assert.equal((await run(['status'], { env })).code, 0);
  await realm.remove();
});

test('the ID token is validated against the realm\'s keys; status --verify checks the access token', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1 });
  const env = await home(realm);
  const r = await login(realm, env);
  assert.equal(r.code, 0, r.stderr);
  const rec = await storedRecord(env);
  const kid = JSON.parse(Buffer.from(rec.access_token.split('.')[0], 'base64url')).kid;
  let s = await run(['status', '--verify'], { env });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, new RegExp(`^Verified: +yes: signed with the provider's key \\(RS256, key id ${kid.replace(/[-]/g, '\\-')}\\), issuer and expiry check out$`, 'm'));

  // An administrator replaces the realm's signing key: the stored token no longer verifies.
  const { id: realmId } = await realm.admin('GET', '');
  const providers = await realm.admin('GET', '/components?type=org.keycloak.keys.KeyProvider');
  await realm.admin('POST', '/components', {
    name: 'rsa-rotated', providerId: 'rsa-generated', providerType: 'org.keycloak.keys.KeyProvider',
    parentId: realmId, config: { priority: ['200'] },
  });
  for (const p of providers.filter((x) => x.providerId === 'rsa-generated')) await realm.admin('DELETE', `/components/${p.id}`);
  s = await run(['status', '--verify'], { env });
  assert.equal(s.code, 1, s.stderr);
  assert.match(s.stdout, new RegExp(`^Verified: +NO: none of the provider's RS256 signing keys has its key id ${kid.replace(/[-]/g, '\\-')}`, 'm'));
  assert.match(s.stderr, /^mlauth: the access token failed verification: /m);
  // A new login validates its ID token against the new key.
  const again = await login(realm, env, ['alice'], ['--force']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await run(['status', '--verify'], { env })).code, 0);
  await realm.remove();
});

/**
 * A loopback HTTP proxy in front of Keycloak that tells clients a shorter polling interval
 * than the realm's, so that Keycloak itself answers slow_down.  Host is passed through, so
 * Keycloak (hostname not fixed in the rig) names the proxy in its issuer and endpoints.
 */
async function intervalProxy(kcUrl, interval) {
  const target = new URL(kcUrl);
  const server = http.createServer((req, res) => {
    const up = http.request({
      host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers,
    }, (ur) => {
      if (!/\/protocol\/openid-connect\/auth\/device$/.test(req.url.split('?')[0]) || ur.statusCode !== 200) {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks = [];
      ur.on('data', (c) => chunks.push(c));
      ur.on('end', () => {
        const body = JSON.stringify({ ...JSON.parse(Buffer.concat(chunks)), interval });
        const headers = { ...ur.headers, 'content-length': Buffer.byteLength(body) };
        delete headers['transfer-encoding'];
        res.writeHead(200, headers);
        res.end(body);
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

test('Keycloak\'s own slow_down: login polls five seconds slower and still logs in', async () => {
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 3 });
  const proxy = await intervalProxy(kc.url, 1);
  const env = await home(realm);
  env.MLAUTH_ISSUER = `${proxy.url}/realms/${realm.name}`;
  const h = spawnMlauth(['-v', 'login', '--no-browser'], { env });
  const m = await h.waitFor(/^\s*(http\S+user_code=\S+)\s*$/m, { stream: 'stderr' });
  // Polled every second against the realm's 3: Keycloak says slow_down, mlauth waits 6 s.
  await h.waitFor(/provider asked to slow down: polling every 6s/, { stream: 'stderr', timeoutMs: 60_000 });
  await realm.approve(m[1]);
  const r = await h.done;
  proxy.close();
  assert.equal(r.code, 0, r.stderr);
  assert.equal([...r.stderr.matchAll(/asked to slow down/g)].length, 1, r.stderr);
  assert.match(r.stdout, /^Logged in as Alice Example/);
  await realm.remove();
});
