// Attacks of issue 14, each against the hostile peer or as a second local user: what a
// provider, an API, a proxy or another account on the box could still do, and must not.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run, stopAll, tmpEnv } from './rig.js';
import { forgetCache, selfSigned } from './fixtures.js';
import { startHostile, startSink } from '../peers/hostile/server.js';

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

// A proxy named by anything but a loopback literal may be anywhere: this machine's own host
// name stands in for one (it resolves here, so before the fix the proxy saw the token).
describe('plain http through a proxy', { concurrency: 2 }, () => {
  const elsewhere = (h) => `http://${hostname()}:${h.port}`;
  const proxied = (h) => h.log.filter((e) => e.route === 'proxy');

  async function loggedIn() {
    const h = await hostile();
    const env = homeFor(h);
    const r = await login(env);
    assert.equal(r.code, 0, r.stderr);
    h.log.length = 0;
    return { h, env };
  }

  for (const v of ['http_proxy', 'all_proxy', 'ALL_PROXY']) {
    test(`send with ${v} off this machine: refused before anything is sent, exit 2`, async () => {
      const { h, env } = await loggedIn();
      const r = await run(['send', '--retries', '0', 'hi'], { env: { ...env, [v]: elsewhere(h) } });
      refused(r, 2, new RegExp(`^mlauth: refusing to send a token to http://127\\.0\\.0\\.1 through the proxy ${hostname()} \\(${v}\\): it would leave this machine unencrypted; use https, or add 127\\.0\\.0\\.1 to no_proxy$`), h);
      assert.deepEqual(proxied(h), [], 'nothing reached the proxy');
      assert.equal(h.count('messages'), 0);
    });
  }

  test('a refresh over plain http through such a proxy is refused too; the session stays', async () => {
    const { h, env } = await loggedIn();
    const rec = JSON.parse(readFileSync(recordPath(env), 'utf8'));
    rec.expires_at = Math.floor(Date.now() / 1000) - 60;
    writeFileSync(recordPath(env), JSON.stringify(rec), { mode: 0o600 });
    forgetCache(h.issuer);
    const r = await run([...T, 'token'], { env: { ...env, http_proxy: elsewhere(h) } });
    refused(r, 2, /^mlauth: refusing to send a token to http:\/\/127\.0\.0\.1 through the proxy/, h);
    assert.equal(proxied(h).filter((e) => e.grant).length, 0, 'no refresh token reached the proxy');
    assert.equal(JSON.parse(readFileSync(recordPath(env), 'utf8')).refresh_token, rec.refresh_token);
  });

  test('no_proxy excluding the host sends directly; a loopback proxy may carry it', async () => {
    const { h, env } = await loggedIn();
    for (const np of ['127.0.0.1', 'localhost,127.0.0.0/8', '*']) {
      const r = await run(['send', '--retries', '0', 'hi'], { env: { ...env, http_proxy: elsewhere(h), NO_PROXY: np } });
      assert.equal(r.code, 0, `${np}: ${r.stderr}`);
      assert.equal(r.stdout, 'Hello from a hostile server\n');
    }
    assert.deepEqual(proxied(h), []);
    const r = await run(['send', '--retries', '0', 'hi'], { env: { ...env, http_proxy: h.proxy } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(proxied(h).length, 1, 'the loopback proxy carried it');
  });
});

describe('an https issuer whose discovery points at plain http', { concurrency: 2 }, () => {
  for (const key of ['token_endpoint', 'device_authorization_endpoint', 'revocation_endpoint']) {
    test(`${key} on plain-http loopback: refused before the device code goes anywhere, exit 1`, async () => {
      const c = selfSigned('IP:127.0.0.1');
      const h = await hostile({ tls: c });
      const s = await startSink('127.0.0.1');
      servers.push(s);
      h.set({ discovery: { kind: 'good', patch: { [key]: `${s.url}/realms/hostile/x` } } });
      const r = await run([...T, '-o', `ca_file=${c.certFile}`, 'login', '--no-browser'], { env: homeFor(h), timeoutMs: 20_000 });
      refused(r, 1, new RegExp(`^mlauth: discovery at https://127\\.0\\.0\\.1:\\d+ lists ${key} http://127\\.0\\.0\\.1:\\d+/realms/hostile/x: plain http, but the issuer is https$`), h);
      assert.deepEqual(s.hits, [], 'nothing reached the plain-http port');
      assert.equal(h.count('device'), 0);
    });
  }
});
