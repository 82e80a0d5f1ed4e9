// The moments a person meets mlauth (issue 15): what it says when the keyring is away, when
// a wait runs long, when something fails, and the small courtesies of a polished CLI.
// Terminal behaviour has its tests in term.test.js (a real terminal, tmux).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { run, startAPI, stopAll } from './rig.js';
import { forgetCache, login, setup } from './fixtures.js';

after(stopAll);

const NO_KEYRING = /no keyring \(Secret Service\) answered \(cannot connect to the session bus: [^)]*\)/;

test('a keyring that stopped answering: commands say so, not just "not logged in"; login says where the session goes', async () => {
  const { op, kr, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  await kr.stop(); // the session stays in the keyring, out of reach
  forgetCache(op.issuer); // the kernel cache would serve the token without asking
  for (const args of [['status'], ['token'], ['send', 'hi']]) {
    const r = await run(args, { env });
    assert.equal(r.code, 3, `${args}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, NO_KEYRING, args.join(' '));
    assert.match(r.stderr, /and the file \S+default\.json holds no session; if yours is in a keyring, start or unlock it and retry, else run mlauth login/);
  }
  // The login that follows names the keyring, the file and its mode, and how to choose it.
  const l = await login(env, op);
  assert.equal(l.code, 0, l.stderr);
  const warn = l.stderr.split('\n').filter((s) => s.includes('warning:'));
  assert.equal(warn.length, 1, l.stderr);
  assert.match(warn[0], NO_KEYRING);
  assert.match(warn[0], /the session will be kept in file \S+\/mlauth\/default\.json \(mode 0600\) instead; to choose that on purpose and drop this warning, set store = file \(in \[default\] of \S+\/mlauth\/config, or MLAUTH_STORE=file\)$/);
  assert.doesNotMatch(warn[0], /session bus: [^)]*\)[^(]*session bus/, 'the bus named once, inside the reason');
  // Chosen on purpose: no warning.
  const f = await login({ ...env, MLAUTH_STORE: 'file' }, op, { args: ['--force'] });
  assert.equal(f.code, 0, f.stderr);
  assert.doesNotMatch(f.stderr, /warning:/);
});

test('without any session bus the warning still says keyring, file, mode and store = file', async () => {
  const { op, env } = await setup({ keyring: false });
  const r = await login(env, op);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^mlauth: warning: no keyring \(Secret Service\) answered \(no session bus \(DBUS_SESSION_BUS_ADDRESS is not set\)\): the session will be kept in file \S+ \(mode 0600\) instead; to choose that on purpose and drop this warning, set store = file/m);
});

// ---- errors that name their cause (issue 15 item 7) ------------------------------------------

test('an identity provider that is down: the error says it is the provider, and what to check', async () => {
  const { op, env } = await setup({ keyring: false });
  await op.stop(); // its port is closed now
  const r = await run(['login', '--no-browser'], { env: { ...env, MLAUTH_STORE: 'file' } });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^mlauth: cannot reach http:\/\/127\.0\.0\.1:\d+: .*; is the identity provider up there, and the issuer setting right\? \(mlauth doctor checks the network, proxy and TLS\)\n$/);
});

test('a messages API that is down: the error names the API and api_base', async () => {
  const { op, env } = await setup({ keyring: false });
  const api = await startAPI({ issuer: op.issuer });
  const e = { ...env, MLAUTH_STORE: 'file', MLAUTH_API_BASE: api.base };
  assert.equal((await login(e, op)).code, 0);
  await api.stop();
  const r = await run(['send', 'hi'], { env: e });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /cannot reach http:\/\/127\.0\.0\.1:\d+: .*; is the messages API up there, and the api_base setting right\?/);
});

test('a login denied at the provider keeps the provider\'s own description', async () => {
  const { op, env } = await setup({ keyring: false });
  const r = await login({ ...env, MLAUTH_STORE: 'file' }, op, { deny: true });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^mlauth: login denied at the provider \([^)]+\): run mlauth login to try again$/m);
});

test('send -v: a 401 whose refresh fails says there was a 401', async () => {
  const { op, env } = await setup({ keyring: false });
  const api = await startAPI({ issuer: op.issuer });
  const e = { ...env, MLAUTH_STORE: 'file', MLAUTH_API_BASE: api.base };
  assert.equal((await login(e, op)).code, 0);
  await op.revokeAll(); // the refresh token is dead: the refresh will fail
  await api.script([{ status: 401, body: { detail: 'Token has been revoked' } }]);
  for (const v of [['-v'], []]) {
    const r = await run([...v, 'send', 'x'], { env: e });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^mlauth: the messages API refused the token \(HTTP 401\), and no new one could be had: session expired or revoked: run mlauth login$/m);
    if (v.length) assert.match(r.stderr, /the messages API refused the token \(HTTP 401\); getting a new one/);
    await api.script([{ status: 401, body: { detail: 'Token has been revoked' } }]);
  }
});
