// The moments a person meets mlauth (issue 15): what it says when the keyring is away, when
// a wait runs long, when something fails, and the small courtesies of a polished CLI.
// Terminal behaviour has its tests in term.test.js (a real terminal, tmux).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { run, stopAll } from './rig.js';
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
