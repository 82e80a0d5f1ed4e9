// The kernel-keyring cache behind `mlauth token`'s fast path, tested like any store.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MLAUTH_BIN, run, startOP, stopAll, tmpEnv } from './rig.js';
import { ageSession, login, setup, storedRecord, tool } from './fixtures.js';

after(stopAll);

const NO_KEYCTL = process.env.NO_KEYCTL;
const desc = (issuer, profile = 'default') => `mlauth:${profile}:MLAAS-CLI-API:${issuer}`;

/** The cached payload, read straight from the kernel, or null. */
async function cached(issuer, profile) {
  const id = await tool('keyctl', ['search', '@u', 'user', desc(issuer, profile)], {});
  if (id.code !== 0) return null;
  const p = await tool('keyctl', ['pipe', id.out.trim()], {});
  return p.code === 0 ? p.out : null;
}

test('the front binary links nothing heavy', async () => {
  const r = await tool('ldd', [MLAUTH_BIN], {});
  assert.equal(r.code, 0);
  for (const lib of ['libcurl', 'libsecret', 'libgio', 'libcrypto', 'libssl', 'libgnutls'])
    assert.ok(!r.out.includes(lib), `${lib} in: ${r.out}`);
  // A static front (ldd: "statically linked") must not carry them inside either.
  const nm = await tool('nm', [MLAUTH_BIN], {});
  assert.equal(nm.code, 0, nm.err);
  for (const sym of [/ curl_easy_/, / secret_service_/, / g_dbus_/, / EVP_/])
    assert.ok(!sym.test(nm.out), `${sym} in the front`);
});

test('a cached token is served without the keyring (no D-Bus on the fast path)', async () => {
  const { op, env, kr } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  const payload = await cached(op.issuer);
  assert.ok(payload, 'login filled the kernel cache');
  assert.ok(payload.endsWith(t.stdout.trimEnd()));
  await kr.stop();
  for (const args of [['token'], ['token', '--header'], ['token', '--json']]) {
    const r = await run(args, { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.ok(r.stdout.includes(t.stdout.trimEnd()));
  }
  // What the cache cannot answer goes to the helper, which needs the keyring.
  const s = await run(['status'], { env });
  assert.equal(s.code, 3, s.stderr);
  assert.equal(s.stdout, '');
  assert.match(s.stderr, /^mlauth: not logged in \(profile default\): no keyring \(Secret Service\) answered /);
});

test('a miss is served from the store and fills the cache again', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const id = (await tool('keyctl', ['search', '@u', 'user', desc(op.issuer)], {})).out.trim();
  assert.equal((await tool('keyctl', ['unlink', id, '@u'], {})).code, 0);
  assert.equal(await cached(op.issuer), null);
  const r = await run(['token'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.ok((await cached(op.issuer)).endsWith(r.stdout.trimEnd()));
});

/**
 * The kernel's timeout of the cached key, as /proc/keys shows it ("59m", "30s"), or null.
 * The key is the one linked in @u: a key just unlinked (a forgotten cache entry) stays in
 * /proc/keys, under the same name, until the kernel's key collector runs, which a loaded
 * machine defers.
 */
async function keyTimeout(issuer, profile = 'default') {
  const found = await tool('keyctl', ['search', '@u', 'user', desc(issuer, profile)], {});
  if (found.code !== 0) return null;
  const serial = Number(found.out.trim());
  const line = readFileSync('/proc/keys', 'utf8').split('\n')
    .find((l) => parseInt(l.split(/\s+/)[0], 16) === serial);
  return line ? line.split(/\s+/)[3] : null;
}

test('a refresh updates the cache; the key times out with the token', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  const first = (await run(['token'], { env })).stdout.trimEnd();
  await ageSession(env, 200); // stale: refreshed, and the new hour-long token cached
  const second = (await run(['token'], { env })).stdout.trimEnd();
  assert.notEqual(second, first);
  assert.ok((await cached(op.issuer)).endsWith(second));
  assert.match(await keyTimeout(op.issuer), /^(1h|59m)$/);
  // A token served from the store is cached for exactly the life it has left (the kernel
  // dropping a key at its timeout is tests/unit/test_cache.c's).
  await ageSession(env, 30);
  const third = await run(['token', '--min-valid', '10'], { env });
  assert.equal(third.stdout.trimEnd(), second);
  assert.match(await keyTimeout(op.issuer), /^(30|29|28)s$/);
});

test('logout removes the cached token', async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  assert.ok(await cached(op.issuer));
  assert.equal((await run(['logout', '--local'], { env })).code, 0);
  assert.equal(await cached(op.issuer), null);
  const r = await run(['token'], { env });
  assert.equal(r.code, 3);
});

test("another profile's or issuer's token is never served", async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  assert.equal((await run(['token'], { env })).code, 0);
  const p = await run(['-p', 'other', 'token'], { env });
  assert.equal(p.code, 3);
  assert.equal(p.stdout, '');
  const op2 = await startOP({ interval: 1 });
  const i = await run(['token'], { env: { ...env, MLAUTH_ISSUER: op2.issuer } });
  assert.equal(i.code, 3);
  assert.equal(i.stdout, '');
});

test('with keyctl forbidden, token falls through to the Secret Service silently', async () => {
  assert.ok(NO_KEYCTL, 'NO_KEYCTL names the seccomp wrapper (make e2e sets it)');
  const { op, env } = await setup();
  // Log in with the kernel keyring off too: nothing may be cached behind our back.
  const h = await tool(NO_KEYCTL, ['keyctl', 'show', '@u'], env);
  assert.notEqual(h.code, 0, 'the wrapper really forbids keyctl');
  assert.equal((await login(env, op)).code, 0);
  const id = (await tool('keyctl', ['search', '@u', 'user', desc(op.issuer)], {})).out.trim();
  await tool('keyctl', ['unlink', id, '@u'], {});
  // The token comes from the Secret Service (the loader maps libsecret for it), with not
  // a word about the kernel keyring it could not use.
  const r = await tool(NO_KEYCTL, [MLAUTH_BIN, 'token'], { ...env, LD_DEBUG: 'files' });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `${(await storedRecord(env)).access_token}\n`);
  assert.match(r.err, /file=libsecret-1\.so\.0/);
  assert.deepEqual(r.err.split('\n').filter((l) => l && !/^ *\d+:/.test(l)), [], 'only the loader spoke');
  const quiet = await tool(NO_KEYCTL, [MLAUTH_BIN, 'token'], env);
  assert.equal(quiet.code, 0, quiet.err);
  assert.equal(quiet.err, '');
  assert.equal(quiet.out, r.out);
});

test('the helper opens libcurl only when it makes a request', async () => {
  assert.ok(NO_KEYCTL, 'NO_KEYCTL names the seccomp wrapper (make e2e sets it)');
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  // The dynamic loader names every library it maps (LD_DEBUG=files), dlopen'ed ones too.
  const traced = { ...env, LD_DEBUG: 'files' };
  const r = await tool(NO_KEYCTL, [MLAUTH_BIN, 'token'], traced);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /file=libsecret-1\.so\.0/, 'the helper read the keyring (keyctl forbidden)');
  assert.doesNotMatch(r.err, /libcurl/, 'a keyring read loaded libcurl');
  // A stale token is refreshed, and that needs libcurl: in the detached refresh process,
  // whose stderr (and so the loader's trace) -v keeps.
  await ageSession(env, 200);
  const f = await tool(NO_KEYCTL, [MLAUTH_BIN, '-v', 'token'], traced);
  assert.equal(f.code, 0);
  assert.match(f.err, /file=libcurl\.so\.4/);
  assert.notEqual(f.out, r.out, 'refreshed');
});

test('with store=file the front reads the file itself: no helper, no keyring', async () => {
  assert.ok(NO_KEYCTL, 'NO_KEYCTL names the seccomp wrapper (make e2e sets it)');
  const { op, env } = await setup({ keyring: false });
  const fenv = { ...env, MLAUTH_STORE: 'file' };
  assert.equal((await login(fenv, op)).code, 0);
  const want = (await run(['token'], { env: fenv })).stdout;
  // The front alone, with no helper beside it or installed: only it can answer.
  const dir = mkdtempSync(join(tmpdir(), 'mlauth-front-'));
  copyFileSync(MLAUTH_BIN, join(dir, 'mlauth'));
  const r = await tool(NO_KEYCTL, [join(dir, 'mlauth'), 'token'], fenv);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, want);
  // Anything it cannot answer still goes to the helper, which is missing here.
  const s = await tool(join(dir, 'mlauth'), ['status'], fenv);
  assert.equal(s.code, 1);
  assert.match(s.err, /cannot run .*mlauth-helper/);
});

test('token --help and help token come from the front alone, the same as the helper', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mlauth-front-'));
  copyFileSync(MLAUTH_BIN, join(dir, 'mlauth'));
  const full = await run(['token', '--help']);
  assert.equal(full.code, 0);
  for (const args of [['token', '--help'], ['token', '-j', '-h'], ['help', 'token']]) {
    const r = await tool(join(dir, 'mlauth'), args, {});
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, full.stdout);
  }
});

test("a token cached for another home (XDG_STATE_HOME) of the same user is not served", async () => {
  const { op, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  assert.ok(await cached(op.issuer));
  // Same user, same issuer, same profile: only the home differs, with no session in it.
  const other = tmpEnv().env;
  const r = await run(['token'], { env: { ...other, MLAUTH_ISSUER: op.issuer } });
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /not logged in/);
});
