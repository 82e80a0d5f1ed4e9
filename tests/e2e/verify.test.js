// The ID token validated at login (OIDC Core 3.1.3.7) and `status --verify`, against the
// oidc-provider rig, which signs RS256 tokens and can forge bad ones on request.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { run, stopAll } from './rig.js';
import { ageSession, login, setup, storedRecord } from './fixtures.js';

after(stopAll);

test('login validates the ID token against the provider\'s JWKS', async () => {
  const { op, env } = await setup();
  await op.resetCounters();
  const r = await login(env, op);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await op.counters()).jwks, 1, 'the signing keys were fetched once');
  assert.ok((await storedRecord(env)).id_token);
});

// Each forgery: login fails with exit 1, says what is wrong, and keeps nothing.
const FORGED = [
  ['signature', /ID token is not valid: its signature does not verify with the provider's key/],
  ['other-key', /ID token is not valid: its signature does not verify with the provider's key/],
  ['aud', /ID token is not valid: its audience \(aud\) does not include MLAAS-CLI-API/],
  ['iss', /ID token is not valid: it was issued by http:\/\/127\.0\.0\.1:1\/realms\/other, not http:\/\/127\.0\.0\.1:\d+\/realms\/test/],
  ['azp', /ID token is not valid: it was issued to client another-client \(azp\), not MLAAS-CLI-API/],
  ['expired', /ID token is not valid: it expired 3\d\d\d s ago \(exp\)/],
  ['unknown-kid', /ID token is not valid: none of the provider's RS256 signing keys has its key id no-such-key/],
  ['none', /ID token is not valid: its algorithm none is not one mlauth accepts/],
  ['hs256', /ID token is not valid: its algorithm HS256 is not one mlauth accepts/],
];

for (const [fault, message] of FORGED) {
  test(`a forged ID token (${fault}) is refused and nothing is stored`, async () => {
    const { op, env } = await setup();
    await op.set({ idTokenFault: fault });
    const r = await login(env, op);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.match(r.stderr, /^mlauth: login refused, nothing stored: /m);
    assert.equal(r.stdout, '');
    assert.equal(await storedRecord(env), null);
    assert.equal((await run(['status'], { env })).code, 3);
  });
}

test('login with the signing keys unavailable fails with exit 4 and stores nothing', async () => {
  const { op, env } = await setup();
  await op.set({ jwksFault: 'unavailable' });
  const r = await login(env, op);
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^mlauth: login not finished, nothing stored: cannot check the provider's ID token: the identity provider at http:\/\/127\.0\.0\.1:\d+ is unavailable \(HTTP 503\)$/m);
  assert.equal(await storedRecord(env), null);
});

test('status --verify checks the access token\'s signature, issuer and expiry', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  let s = await run(['status', '--verify'], { env });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^Verified: +yes: signed with the provider's key \(RS256, key id [\w-]+\), issuer and expiry check out$/m);
  const j = JSON.parse((await run(['status', '--verify', '--json'], { env })).stdout);
  assert.equal(j.verified, true);

  // The provider's keys change under the token's kid: the signature no longer checks out.
  await op.set({ jwksFault: 'other-key' });
  s = await run(['status', '--verify'], { env });
  assert.equal(s.code, 1, s.stderr);
  assert.match(s.stdout, /^Verified: +NO: its signature does not verify with the provider's key$/m);
  assert.match(s.stderr, /^mlauth: the access token failed verification: its signature does not verify/m);
  const bad = JSON.parse((await run(['status', '--verify', '--json'], { env })).stdout);
  assert.equal(bad.verified, false);
  assert.match(bad.verify_error, /signature does not verify/);

  // The provider's clock says the token has expired (its Date header two hours ahead).
  await op.set({ jwksFault: null, dateSkew: 7200 });
  s = await run(['status', '--verify'], { env });
  assert.equal(s.code, 1, s.stderr);
  assert.match(s.stdout, /^Verified: +NO: it expired \d+ s ago \(exp\)$/m);

  // Without --verify, status never touches the network.
  await op.stop();
  s = await run(['status'], { env });
  assert.equal(s.code, 0, s.stderr);
  assert.doesNotMatch(s.stdout, /Verified/);
  s = await run(['status', '--verify'], { env });
  assert.equal(s.code, 4, s.stderr);
});

test('libjwt is loaded only to validate: not by status, token or a refresh', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  // The dynamic loader names every library it maps (LD_DEBUG=files), dlopen'ed ones too.
  const traced = { ...env, LD_DEBUG: 'files' };
  const s = await run(['status'], { env: traced });
  assert.equal(s.code, 0, s.stderr);
  assert.doesNotMatch(s.stderr, /libjwt|mlauth-jwt\.so|libcrypto/);
  await ageSession(env, 200); // stale: the next token call refreshes
  // -v: the refresh runs in a detached process whose stderr (the loader's trace) -v keeps.
  const t = await run(['-v', 'token'], { env: traced });
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stderr, /file=libcurl\.so\.4/, 'the token was refreshed');
  assert.doesNotMatch(t.stderr, /libjwt|mlauth-jwt\.so/);
  const v = await run(['status', '--verify'], { env: traced });
  assert.match(v.stderr, /file=\S*mlauth-jwt\.so/);
  assert.match(v.stderr, /file=libjwt\.so\.0/);
});
