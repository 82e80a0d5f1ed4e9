// mlauth doctor against the real provider, keyring, kernel keyring and messages API.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MLAUTH_BIN, run, startAPI, stopAll } from './rig.js';
import { login, setup, storedRecord, tool } from './fixtures.js';

after(stopAll);

const NO_KEYCTL = process.env.NO_KEYCTL;
// Every test names a loopback messages API, so a doctor run never reaches the default one;
// tests without a fake API point at a port nothing listens on.
const DEAD_API = 'http://127.0.0.1:9/proxy/anthropic';

/**
 * The text report as a list of { status, name, detail, fix }: one line per check
 * ("ok|warn|fail|skip  NAME  DETAIL"), and an indented "fix: ..." line under a check that
 * is not ok (in a pipe, as here, lines are not wrapped).
 */
function parse(stdout) {
  const checks = [];
  for (const line of stdout.split('\n')) {
    let m = /^(ok|warn|fail|skip) +(\S+) +(.*)$/.exec(line);
    if (m) {
      checks.push({ status: m[1], name: m[2], detail: m[3], fix: null });
      continue;
    }
    m = /^ +fix: (.*)$/.exec(line);
    if (m) {
      assert.ok(checks.length > 0, `a fix line before any check: ${line}`);
      checks[checks.length - 1].fix = m[1];
    }
  }
  return checks;
}

function only(checks, name) {
  const found = checks.filter((c) => c.name === name);
  assert.equal(found.length, 1, `one ${name} check in ${JSON.stringify(checks, null, 1)}`);
  return found[0];
}

const report = (r) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

function assertNoSecret(outputs, secrets) {
  for (const s of secrets.filter(Boolean)) {
    for (const o of outputs) assert.ok(!o.includes(s), 'a secret appears in the output');
  }
}

const NAMES = ['config', 'issuer', 'client_id', 'api_base', 'store', 'ca_file', 'secret_service',
  'kernel_keyring', 'discovery', 'tls', 'proxy', 'clock', 'session', 'environment',
  'messages_api'];

test('logged in with keyring and API: every check ok, one authenticated request', async () => {
  const { op, env } = await setup();
  const api = await startAPI({ issuer: op.issuer });
  env.MLAUTH_API_BASE = api.base;
  assert.equal((await login(env, op)).code, 0);
  await api.reset();

  const r = await run(['doctor'], { env });
  assert.equal(r.code, 0, report(r));
  assert.equal(r.stderr, '');
  const checks = parse(r.stdout);
  assert.deepEqual(checks.map((c) => c.name), NAMES);
  for (const c of checks) assert.equal(c.status, 'ok', `${c.name}: ${c.detail}`);
  assert.ok(checks.every((c) => c.fix === null));
  assert.match(r.stdout, /\n15 checks: 15 ok, 0 warnings, 0 failures\n$/);

  assert.match(only(checks, 'issuer').detail, new RegExp(`^${op.issuer} \\(from env MLAUTH_ISSUER\\)$`));
  assert.equal(only(checks, 'client_id').detail, 'MLAAS-CLI-API (default)');
  assert.equal(only(checks, 'api_base').detail, `${api.base} (from env MLAUTH_API_BASE)`);
  assert.equal(only(checks, 'store').detail, 'auto (default)');
  assert.equal(only(checks, 'ca_file').detail, 'not set (default)');
  assert.match(only(checks, 'secret_service').detail, /^answers on the session bus; sessions are kept there/);
  assert.match(only(checks, 'kernel_keyring').detail, /^usable; the current access token is cached until/);
  assert.match(only(checks, 'discovery').detail, /answers and names itself as the issuer/);
  assert.match(only(checks, 'tls').detail, /^system default CA certificates/);
  assert.match(only(checks, 'proxy').detail, /^no proxy variables set/);
  assert.match(only(checks, 'clock').detail, /^within [0-2] s of the provider's Date header$/);
  assert.match(only(checks, 'session').detail,
    /^logged in as Alice Example; access token valid until \d{4}-\d\d-\d\d \d\d:\d\d \(in .*\); offline session, renewed by every refresh; kept in secret-service$/);
  assert.match(only(checks, 'messages_api').detail, /answered HTTP 200 to an authenticated one-token request/);

  // Exactly one request, authenticated, minimal, with the headers send uses.
  const reqs = await api.requests();
  assert.equal(reqs.length, 1);
  assert.equal(reqs[0].authorized, true);
  assert.equal(reqs[0].method, 'POST');
  assert.match(reqs[0].path, /\/v1\/messages$/);
  assert.equal(reqs[0].headers['anthropic-version'], '2023-06-01');
  assert.equal(reqs[0].headers['x-application-name'], 'mlauth');
  const body = JSON.parse(reqs[0].body);
  assert.equal(body.max_tokens, 1);
  assert.deepEqual(body.messages, [{ role: 'user', content: 'ping' }]);

  // --json says the same, and nothing anywhere shows a token.
  const j = await run(['doctor', '--json'], { env });
  assert.equal(j.code, 0, report(j));
  const o = JSON.parse(j.stdout);
  assert.deepEqual(Object.keys(o), ['checks', 'ok']);
  assert.equal(o.ok, true);
  assert.deepEqual(o.checks.map((c) => [c.name, c.status]), checks.map((c) => [c.name, c.status]));
  // Details that do not move with the clock are the same words as in the text.
  for (const name of ['config', 'issuer', 'client_id', 'api_base', 'store', 'ca_file',
    'secret_service', 'discovery', 'tls', 'proxy', 'environment']) {
    assert.equal(o.checks.find((c) => c.name === name).detail, only(checks, name).detail);
  }
  for (const c of o.checks) assert.deepEqual(Object.keys(c), ['name', 'status', 'detail', 'fix']);
  assert.ok(o.checks.every((c) => c.fix === null));
  assert.equal((await api.requests()).length, 2);

  const rec = await storedRecord(env);
  assert.ok(rec && rec.refresh_token);
  assertNoSecret([r.stdout, r.stderr, j.stdout, j.stderr],
    [rec.access_token, rec.refresh_token, rec.id_token]);
});

test('no Secret Service (no bus): warns and names the file backend', async () => {
  const { env } = await setup({ keyring: false });
  env.MLAUTH_API_BASE = DEAD_API;
  const r = await run(['doctor'], { env });
  assert.equal(r.code, 0, report(r));
  const checks = parse(r.stdout);
  const ss = only(checks, 'secret_service');
  assert.equal(ss.status, 'warn');
  assert.match(ss.detail, /^not reachable \(.*session bus.*\): store=auto falls back to the file \/.*\/mlauth\/default\.json$/);
  assert.match(ss.fix, /start a Secret Service/);
  const s = only(checks, 'session');
  assert.equal(s.status, 'warn');
  assert.match(s.detail, /not logged in/);
  // The advice once: in the detail's own sentence, so no fix line saying it again.
  assert.match(s.detail, /run mlauth login/);
  assert.equal(s.fix, null);
  const m = only(checks, 'messages_api');
  assert.equal(m.status, 'skip');
  assert.equal(m.detail, 'no usable session to ask with (see session)');
  assert.equal(only(checks, 'discovery').status, 'ok');
  assert.ok(!checks.some((c) => c.status === 'fail'));
  assert.match(r.stdout, /\n15 checks: 12 ok, 2 warnings, 0 failures, 1 skipped\n$/);
});

test('store=secret-service without a Secret Service fails, exit 1', async () => {
  const { env } = await setup({ keyring: false });
  env.MLAUTH_API_BASE = DEAD_API;
  env.MLAUTH_STORE = 'secret-service';
  const r = await run(['doctor'], { env });
  assert.equal(r.code, 1, report(r));
  const checks = parse(r.stdout);
  assert.equal(only(checks, 'store').detail, 'secret-service (from env MLAUTH_STORE)');
  const ss = only(checks, 'secret_service');
  assert.equal(ss.status, 'fail');
  assert.match(ss.detail, /^store=secret-service: /);
  assert.match(ss.fix, /store=auto or store=file/);
  assert.equal(only(checks, 'session').status, 'skip');
  assert.deepEqual(checks.filter((c) => c.status === 'fail').map((c) => c.name), ['secret_service']);

  const j = await run(['doctor', '--json'], { env });
  assert.equal(j.code, 1);
  const o = JSON.parse(j.stdout);
  assert.equal(o.ok, false);
  assert.deepEqual(o.checks.map((c) => [c.name, c.status]), checks.map((c) => [c.name, c.status]));
  assert.equal(o.checks.find((c) => c.name === 'secret_service').fix, ss.fix);
});

test('a dead issuer fails discovery, exit 1; the clock cannot be checked', async () => {
  const { op, env } = await setup();
  env.MLAUTH_API_BASE = DEAD_API;
  await op.stop();
  const r = await run(['doctor'], { env });
  assert.equal(r.code, 1, report(r));
  const checks = parse(r.stdout);
  const d = only(checks, 'discovery');
  assert.equal(d.status, 'fail');
  assert.match(d.detail, /^cannot reach http:\/\/127\.0\.0\.1:\d+/);
  assert.match(d.fix, /is up and reachable/);
  // Not a warning about the clock: it could not be checked, and says why.
  const c = only(checks, 'clock');
  assert.equal(c.status, 'skip');
  assert.match(c.detail, /^the provider did not answer \(see discovery\)/);
  assert.equal(c.fix, null);
  assert.deepEqual(checks.filter((x) => x.status === 'fail').map((x) => x.name), ['discovery']);
  assert.match(r.stdout, /, 1 failure, 2 skipped\n$/);
});

test('a provider clock 300 s ahead: the clock check warns with the skew', async () => {
  const { op, env } = await setup();
  env.MLAUTH_API_BASE = DEAD_API;
  await op.set({ dateSkew: 300 });
  const r = await run(['doctor'], { env });
  assert.equal(r.code, 0, report(r));
  const c = only(parse(r.stdout), 'clock');
  assert.equal(c.status, 'warn');
  const m = /^the local clock is (\d+) s behind the provider's/.exec(c.detail);
  assert.ok(m, c.detail);
  assert.ok(Math.abs(Number(m[1]) - 300) <= 2, c.detail);
  assert.match(c.fix, /synchronise the clock/);

  await op.set({ dateSkew: -120 });
  const behind = only(parse((await run(['doctor'], { env })).stdout), 'clock');
  assert.equal(behind.status, 'warn');
  assert.match(behind.detail, /^the local clock is 1(19|20|21) s ahead of the provider's/);
});

test('ANTHROPIC_API_KEY and ANTHROPIC_AUTH_TOKEN: named, never shown', async () => {
  const { op, env } = await setup();
  const api = await startAPI({ issuer: op.issuer });
  env.MLAUTH_API_BASE = api.base;
  assert.equal((await login(env, op)).code, 0);
  const key = `sk-ant-api03-${randomBytes(24).toString('base64url')}`;
  const tok = `tok-${randomBytes(24).toString('hex')}`;

  const one = await run(['doctor'], { env: { ...env, ANTHROPIC_API_KEY: key } });
  assert.equal(one.code, 0, report(one));
  const e = only(parse(one.stdout), 'environment');
  assert.equal(e.status, 'warn');
  // What Claude Code 2.1 does with it beside apiKeyHelper (tests/e2e/claude.test.js shows it).
  assert.match(e.detail, /^ANTHROPIC_API_KEY is set: Claude Code sends it as x-api-key beside its apiKeyHelper's token, so the key leaks/);
  assert.match(e.fix, /^unset ANTHROPIC_API_KEY/);

  const both = await run(['doctor', '--json'], { env: { ...env, ANTHROPIC_API_KEY: key, ANTHROPIC_AUTH_TOKEN: tok } });
  assert.equal(both.code, 0, report(both));
  const o = JSON.parse(both.stdout);
  assert.equal(o.ok, true);
  const je = o.checks.find((c) => c.name === 'environment');
  assert.equal(je.status, 'warn');
  assert.match(je.detail, /^ANTHROPIC_AUTH_TOKEN is set: Claude Code sends it instead of its apiKeyHelper's token .*; ANTHROPIC_API_KEY is set: /);
  assert.match(je.fix, /^unset ANTHROPIC_AUTH_TOKEN ANTHROPIC_API_KEY/);

  const rec = await storedRecord(env);
  assertNoSecret([one.stdout, one.stderr, both.stdout, both.stderr],
    [key, tok, rec.access_token, rec.refresh_token, rec.id_token]);
});

test('proxy credentials are masked; a missing ca_file fails', async () => {
  const { env, home } = await setup({ keyring: false });
  env.MLAUTH_API_BASE = DEAD_API;
  const pw = `pw${randomBytes(8).toString('hex')}`;
  // https_proxy only: the peers speak plain http, so nothing is really proxied.
  const r = await run(['doctor'], {
    env: { ...env, https_proxy: `http://bob:${pw}@127.0.0.1:3128`, no_proxy: 'localhost,127.0.0.1' },
  });
  assert.equal(r.code, 0, report(r));
  const p = only(parse(r.stdout), 'proxy');
  assert.equal(p.status, 'ok');
  assert.equal(p.detail, 'https_proxy=http://***@127.0.0.1:3128, no_proxy=localhost,127.0.0.1');
  assert.ok(!r.stdout.includes(pw) && !r.stdout.includes('bob') && !r.stderr.includes(pw));

  const missing = join(home.dir, 'no-such-ca.pem');
  const bad = await run(['doctor'], { env: { ...env, MLAUTH_CA_FILE: missing } });
  assert.equal(bad.code, 1, report(bad));
  const t = only(parse(bad.stdout), 'tls');
  assert.equal(t.status, 'fail');
  assert.equal(t.detail, `CA file ${missing} (from setting ca_file, env MLAUTH_CA_FILE) cannot be read: No such file or directory; not used here: issuer and api_base are plain http on this machine`);
  assert.match(t.fix, /set ca_file to a PEM file/);

  const pem = join(home.dir, 'ca.pem');
  writeFileSync(pem, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const good = await run(['doctor'], { env: { ...env, SSL_CERT_FILE: pem } });
  assert.equal(good.code, 0, report(good));
  assert.match(only(parse(good.stdout), 'tls').detail, /^CA file .*ca\.pem \(from SSL_CERT_FILE\): 1 certificate;/);
});

test('without the kernel keyring: warns that every call goes to the keyring', async () => {
  assert.ok(NO_KEYCTL, 'NO_KEYCTL names the seccomp wrapper (make e2e sets it)');
  const { op, env } = await setup();
  env.MLAUTH_API_BASE = DEAD_API;
  assert.equal((await login(env, op)).code, 0);
  const r = await tool(NO_KEYCTL, [MLAUTH_BIN, 'doctor'], env);
  const checks = parse(r.out);
  const k = only(checks, 'kernel_keyring');
  assert.equal(k.status, 'warn', r.out + r.err);
  assert.match(k.detail, /^not usable \(cannot add a key: Operation not permitted\): tokens then come from the keyring on every call \(slower\)$/);
  assert.match(k.fix, /keyctl/);
  // The fresh token is still used for the API check: which fails here, nothing listens.
  const m = only(checks, 'messages_api');
  assert.equal(m.status, 'fail');
  assert.match(m.detail, /cannot reach http:\/\/127\.0\.0\.1:9/);
  assert.equal(r.code, 1);
  const rec = await storedRecord(env);
  assertNoSecret([r.out, r.err], [rec.access_token, rec.refresh_token, rec.id_token]);
});

test('doctor --help and a stray argument', async () => {
  const h = await run(['doctor', '--help'], { env: { MLAUTH_ISSUER: 'http://127.0.0.1:9/realms/x' } });
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^usage: mlauth doctor \[--json\]\n/);
  assert.match(h.stdout, /Exit status 0 when nothing failed/);
  const u = await run(['doctor', 'now'], { env: { MLAUTH_ISSUER: 'http://127.0.0.1:9/realms/x' } });
  assert.equal(u.code, 2);
  assert.match(u.stderr, /unexpected argument 'now'/);
});
