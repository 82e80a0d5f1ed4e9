// Attacks of issue 14, each against the hostile peer or as a second local user: what a
// provider, an API, a proxy or another account on the box could still do, and must not.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run, stopAll, tmpEnv } from './rig.js';
import { forgetCache } from './fixtures.js';
import { startHostile } from '../peers/hostile/server.js';

const servers = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const s of servers) if (s.issuer) forgetCache(s.issuer);
  await stopAll();
});

const T = ['-o', 'timeout=3'];
const b64url = (s) => Buffer.from(s).toString('base64url');
/** A JWT whose payload is exactly `json` (JSON.stringify cannot write 2^63 - 1). */
const rawJwt = (json) => `${b64url('{"alg":"RS256","typ":"JWT"}')}.${b64url(json)}.c2ln`;

async function hostile(options) {
  const h = await startHostile(options);
  servers.push(h);
  return h;
}

function homeFor(h, extra = {}) {
  return { ...tmpEnv().env, MLAUTH_ISSUER: h.issuer, MLAUTH_API_BASE: h.base, MLAUTH_STORE: 'file', ...extra };
}

const recordPath = (env) => join(env.XDG_STATE_HOME, 'mlauth', 'default.json');
const login = (env, args = []) => run([...T, 'login', '--no-browser', ...args], { env, timeoutMs: 20_000 });

/** Exit `code`, a last line "mlauth: …" matching re, no secret of h on stderr. */
function refused(r, code, re, h) {
  assert.equal(r.signal, null, `mlauth died of ${r.signal}`);
  assert.equal(r.code, code, `exit ${r.code}, want ${code}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.match(lines[lines.length - 1], re);
  for (const s of h?.secrets ?? []) assert.ok(!r.stderr.includes(s), 'no secret in the message');
}

describe('token lifetimes from the JWT when expires_in is absent', { concurrency: 2 }, () => {
  test('exp - iat past a year (up to 2^63 - 1) is refused as expires_in is: exit 1, nothing stored', async () => {
    for (const [exp, iat] of [['9223372036854775807', '1'], [String(2 ** 40), '1']]) {
      const h = await hostile();
      h.set({ device_token: { kind: 'good', patch: { expires_in: null, access_token: rawJwt(`{"sub":"m","iat":${iat},"exp":${exp}}`) } } });
      const env = homeFor(h);
      refused(await login(env), 1, /^mlauth: the provider's access token claims a lifetime of more than a year \(exp - iat\)$/, h);
      assert.equal(existsSync(recordPath(env)), false);
    }
  });

  test('an exp without iat more than a year ahead is refused too', async () => {
    const h = await hostile();
    h.set({ device_token: { kind: 'good', patch: { expires_in: null, access_token: rawJwt('{"sub":"m","exp":9223372036854775807}') } } });
    refused(await login(homeFor(h)), 1, /lifetime of more than a year/, h);
  });

  test('a sane exp - iat still gives the token its lifetime', async () => {
    const h = await hostile();
    const now = Math.floor(Date.now() / 1000);
    h.set({ device_token: { kind: 'good', patch: { expires_in: null, access_token: rawJwt(`{"sub":"m","iat":${now},"exp":${now + 7200}}`) } } });
    const env = homeFor(h);
    const r = await login(env);
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(readFileSync(recordPath(env), 'utf8'));
    assert.ok(Math.abs(rec.expires_at - rec.obtained_at - 7200) <= 1, JSON.stringify(rec));
  });
});
