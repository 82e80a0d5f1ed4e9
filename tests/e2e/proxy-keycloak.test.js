// mlauth exec --proxy against the real Keycloak: an SDK job over five token lifetimes of a
// fresh realm, with the API peer checking Keycloak's tokens (audience included).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sleep } from './fixtures.js';
import { deviceLogin, keycloak } from './keycloak.js';
import { run, startAPI, stopAll, tmpEnv } from './rig.js';

after(stopAll);

const SDK_CLIENT = fileURLToPath(new URL('./sdk-client.mjs', import.meta.url));

/** Resolves once Keycloak has recorded n more refreshes than `before`; rejects if job ends first. */
async function untilRefreshes(realm, before, n, job) {
  let over = null;
  job.then((r) => { over = r; }, (e) => { over = e; });
  for (;;) {
    const got = (await realm.events('REFRESH_TOKEN')).length - before;
    if (got >= n) return got;
    if (over) throw new Error(`the job ended after ${got} refreshes: ${over.stderr ?? over}`);
    await sleep(250);
  }
}

test('Keycloak: an SDK job through exec --proxy for five token lifetimes, no 401, one refresh per lifetime', async () => {
  const TTL = 10;
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1, accessTtl: TTL, revokeRefreshToken: true });
  const api = await startAPI({ issuer: realm.issuer, audience: 'MLAAS-CLI-API', streamPauseMs: 5 });
  const env = { ...tmpEnv().env, MLAUTH_ISSUER: realm.issuer, MLAUTH_API_BASE: api.base, MLAUTH_STORE: 'file' };
  // The device approved through Keycloak's own pages.
  assert.equal((await deviceLogin(realm, env)).code, 0);

  const before = (await realm.events('REFRESH_TOKEN')).length;
  const stop = join(env.HOME, 'sdk-stop');
  const started = Date.now();
  // Until the job has outlived four of its tokens, however long that takes here (240 s only
  // guards against a hang).
  const job = run(['exec', '--proxy', '--min-valid', '1', '--', process.execPath, SDK_CLIENT, '240'],
    { env: { ...env, SDK_STOP_FILE: stop }, timeoutMs: 300_000 });
  await untilRefreshes(realm, before, 4, job);
  writeFileSync(stop, '');
  const r = await job;
  const elapsed = (Date.now() - started) / 1000;
  assert.equal(r.code, 0, r.stderr);
  const { requests, errors } = JSON.parse(r.stdout);
  assert.deepEqual(errors, []);
  const refreshes = (await realm.events('REFRESH_TOKEN')).length - before;
  assert.ok(refreshes <= Math.ceil(elapsed / (TTL - 1)) + 1, `${refreshes} refreshes in ${elapsed} s`);
  const seen = await api.requests();
  // One bearer token per refresh (and the first), never one per request.
  const tokens = new Set(seen.map((q) => q.headers.authorization));
  assert.ok(tokens.size <= refreshes + 1, `${tokens.size} tokens, ${refreshes} refreshes`);
  assert.ok(requests > tokens.size, `${requests} requests, ${tokens.size} tokens`);
  assert.ok(seen.filter((q) => !q.authorized).length <= refreshes);
  await realm.remove();
});
