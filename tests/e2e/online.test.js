// What kind of session login got, said at login, kept in the record and shown by status;
// and the fallback when offline sessions are not allowed. Against the oidc-provider rig set
// to behave as Keycloak does (keycloak.test.js has the same against Keycloak itself).
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { run, spawnMlauth, stopAll } from './rig.js';
import { login, setup, storedRecord } from './fixtures.js';

after(stopAll);

test('offline_access silently dropped: login warns of an online session and when it ends; status shows it', async () => {
  const { op, env } = await setup({ op: { refreshTtl: 1800 } });
  await op.set({ dropOffline: true });
  const r = await login(env, op);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\nToken valid until \d\d:\d\d; online session until \d{4}-\d\d-\d\d \d\d:\d\d\.\n$/);
  assert.match(r.stderr, /^mlauth: warning: the provider granted an online session, not the offline one asked for \(the client may not have the offline_access scope\): it ends at \d{4}-\d\d-\d\d \d\d:\d\d \(in (30m( 0s)?|29m \d+s)\) unless mlauth refreshes it before, and at the latest when your login session at the provider does \(SSO Session Max\); then run mlauth login again$/m);
  const rec = await storedRecord(env);
  assert.equal(rec.session, 'online');
  assert.ok(!rec.scope.split(' ').includes('offline_access'));

  const s = await run(['status'], { env });
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^Session: +online, until \d{4}-\d\d-\d\d \d\d:\d\d \(in (30m( 0s)?|29m \d+s)\) unless refreshed before; ends with the provider's login session$/m);
  const j = JSON.parse((await run(['status', '--json'], { env })).stdout);
  assert.equal(j.session, 'online');
  assert.ok(j.refresh_expires_at - Date.now() / 1000 > 1700);
});

test('an offline session is recorded as one, without a warning', async () => {
  const { op, env } = await setup();
  const r = await login(env, op);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /online session/);
  assert.equal((await storedRecord(env)).session, 'offline');
  assert.equal(JSON.parse((await run(['status', '--json'], { env })).stdout).session, 'offline');
});

test('a record of an older mlauth (no session member) still loads', async () => {
  const { op, env } = await setup({ keyring: false });
  env.MLAUTH_STORE = 'file';
  assert.equal((await login(env, op)).code, 0);
  const file = join(env.XDG_STATE_HOME, 'mlauth', 'default.json');
  const rec = JSON.parse(readFileSync(file, 'utf8'));
  assert.equal(rec.session, 'offline');
  delete rec.session;
  writeFileSync(file, JSON.stringify(rec), { mode: 0o600 });
  const s = await run(['status', '--json'], { env });
  assert.equal(s.code, 0, s.stderr);
  const j = JSON.parse(s.stdout);
  assert.equal(j.session, null);
  assert.equal(j.logged_in, true);
  assert.equal((await run(['token'], { env })).code, 0);
});

test('not_allowed for offline tokens: login asks again with openid, with a note', async () => {
  const { op, env } = await setup();
  await op.set({ offlineNotAllowed: true });
  const h = spawnMlauth(['login', '--no-browser'], { env });
  const first = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await op.approve(first[1]);
  const second = await h.waitFor(/\(not_allowed\); logging in with 'openid' instead: approve the new code[^\n]*\n[\s\S]*shows the code (\S+)/, { stream: 'stderr' });
  assert.notEqual(second[1], first[1]);
  await op.approve(second[1]);
  const r = await h.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /online session until/);
  // Asked for openid alone: no surprise to warn about.
  assert.doesNotMatch(r.stderr, /granted an online session/);
  const rec = await storedRecord(env);
  assert.equal(rec.session, 'online');
  assert.equal(rec.scope.split(' ').includes('offline_access'), false);
});

test('invalid_scope after the approval (Keycloak\'s consent not yet saved): one more code, then logged in', async () => {
  const { op, env } = await setup();
  await op.set({ consentRace: 1 });
  const h = spawnMlauth(['login', '--no-browser'], { env });
  const first = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await op.approve(first[1]);
  const second = await h.waitFor(/refused the approved login \(invalid_scope: no consent found for it\); approve the new code\n[\s\S]*shows the code (\S+)/, { stream: 'stderr' });
  await op.approve(second[1]);
  const r = await h.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await storedRecord(env)).session, 'offline');

  // Only once: a second refusal ends the login with the provider's reason.
  await op.set({ consentRace: 2 });
  const h2 = spawnMlauth(['login', '--no-browser', '--force'], { env });
  await op.approve((await h2.waitFor(/shows the code (\S+)/, { stream: 'stderr' }))[1]);
  await op.approve((await h2.waitFor(/approve the new code\n[\s\S]*shows the code (\S+)/, { stream: 'stderr' }))[1]);
  const r2 = await h2.done;
  assert.equal(r2.code, 1, r2.stderr);
  assert.match(r2.stderr, /^mlauth: the token endpoint refused: invalid_scope \(Client no longer has requested consent from user\)/m);
});
