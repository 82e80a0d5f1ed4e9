// mlauth exec --proxy against the real Keycloak: an SDK job over five token lifetimes of a
// fresh realm, with the API peer checking Keycloak's tokens (audience included).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { deviceLogin, keycloak } from './keycloak.js';
import { run, startAPI, stopAll, tmpEnv } from './rig.js';

after(stopAll);

const SDK_CLIENT = fileURLToPath(new URL('./sdk-client.mjs', import.meta.url));

test('Keycloak: an SDK job through exec --proxy for five token lifetimes, no 401, one refresh per lifetime', async () => {
  const TTL = 10;
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: TTL, revokeRefreshToken: true });
  const api = await startAPI({ issuer: realm.issuer, audience: 'MLAAS-CLI-API', streamPauseMs: 5 });
  const env = { ...tmpEnv().env, MLAUTH_ISSUER: realm.issuer, MLAUTH_API_BASE: api.base, MLAUTH_STORE: 'file' };
  // The device approved through Keycloak's own pages.
  assert.equal((await deviceLogin(realm, env)).code, 0);

  const before = (await realm.events('REFRESH_TOKEN')).length;
  const started = Date.now();
  const r = await run(['exec', '--proxy', '--min-valid', '1', '--', process.execPath, SDK_CLIENT,
    String(5 * TTL + 1)], { env, timeoutMs: 300_000 });
  const elapsed = (Date.now() - started) / 1000;
  assert.equal(r.code, 0, r.stderr);
  const { requests, errors } = JSON.parse(r.stdout);
  assert.deepEqual(errors, []);
  const refreshes = (await realm.events('REFRESH_TOKEN')).length - before;
  assert.ok(refreshes >= 3, `only ${refreshes} refreshes in ${elapsed} s`);
  assert.ok(refreshes <= Math.ceil(elapsed / (TTL - 1)) + 1, `${refreshes} refreshes in ${elapsed} s`);
  assert.ok(requests >= 3 * refreshes, `${requests} requests, ${refreshes} refreshes`);
  const seen = await api.requests();
  // One bearer token per refresh (and the first), never one per request.
  const tokens = new Set(seen.map((q) => q.headers.authorization));
  assert.ok(tokens.size <= refreshes + 1, `${tokens.size} tokens, ${refreshes} refreshes`);
  assert.ok(seen.filter((q) => !q.authorized).length <= refreshes);
  await realm.remove();
});
