// Secret hygiene: where a token, refresh token, id token or device code must never appear
// (command lines, environments, -vvv traces, error messages, the store directory and the
// files a writer leaves behind), that the process holding them cannot be dumped or read by
// another process of the same user, and that the fallback file cannot be redirected by a
// planted symbolic link or used when someone else could have read it.
//
// The secrets to look for are collected on the wire: a forward proxy (http_proxy) between
// mlauth and the real provider and API records every device code and token that passes.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync,
  renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MLAUTH_BIN, run, spawnMlauth, startAPI, startOP, stopAll, tmpEnv } from './rig.js';
import { JWT, ageRecord, forgetCache, sleep } from './fixtures.js';
import { startHostile } from '../peers/hostile/server.js';
import { descendants } from '../peers/proc.js';

const NOBODY = 65534;
// Running a process as another user, and handing a file to one, takes root (as in CI).
const AS_ROOT = { skip: process.getuid() !== 0 && 'needs root to act as another user' };
const servers = [];
const issuers = new Set();
const strays = new Set(); // processes started here without the rig (as another user)
after(async () => {
  for (const p of strays) { try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ } }
  await Promise.all(servers.map((s) => s.close()));
  for (const i of issuers) forgetCache(i);
  await stopAll();
});

const now = () => Math.floor(Date.now() / 1000);

/** A provider (slow token endpoint on request), an API, a recording proxy, a private home. */
async function world({ proxy = true, home: h = tmpEnv() } = {}) {
  const op = await startOP({ accessTtl: 3600, interval: 1 });
  const api = await startAPI({ issuer: op.issuer });
  const px = await startHostile();
  servers.push(px);
  issuers.add(op.issuer);
  const env = {
    ...h.env, MLAUTH_ISSUER: op.issuer, MLAUTH_API_BASE: api.base, ...(proxy ? { http_proxy: px.proxy } : {}),
  };
  return { op, api, px, env, dir: join(env.XDG_STATE_HOME, 'mlauth'), home: h };
}

/** mlauth [globals] login --no-browser [args], approved at the provider. */
async function login(w, args = [], env = w.env) {
  const globals = args.filter((a) => /^-v+$/.test(a));
  const rest = args.filter((a) => !/^-v+$/.test(a));
  const h = spawnMlauth([...globals, 'login', '--no-browser', ...rest], { env });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await w.op.approve(m[1]);
  return h.done;
}

const recordPath = (w) => join(w.dir, 'default.json');
const readRecord = (w) => JSON.parse(readFileSync(recordPath(w), 'utf8'));

const age = (w, left) => ageRecord(recordPath(w), left);

/**
 * Every secret seen so far, and the long pieces of each (a JWT's payload or signature alone
 * is still the token): what no output may contain.
 */
function secretsOf(w, extra = []) {
  const all = new Set();
  const add = (s) => {
    if (typeof s !== 'string' || s.length < 8) return;
    all.add(s);
    for (const part of s.split('.')) if (part.length >= 24) all.add(part);
  };
  for (const s of w.px.secrets) add(s);
  for (const s of extra) add(s);
  if (existsSync(recordPath(w))) {
    const r = readRecord(w);
    for (const k of ['access_token', 'refresh_token', 'id_token']) add(r[k]);
  }
  return all;
}

function assertClean(text, secrets, where) {
  for (const s of secrets) {
    assert.ok(!text.includes(s), `${where} holds a secret (${s.slice(0, 12)}…)`);
  }
}

/** NUL-separated entries of /proc/PID/<file>, or null when the process is gone. */
function procEntries(pid, file) {
  try {
    return readFileSync(`/proc/${pid}/${file}`).toString('utf8').split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

/** Waits (bounded) until cond() holds. */
async function until(cond, what, ms = 10_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

// Two groups at a time: each has its own provider, API, proxy and home.
describe('secret hygiene', { concurrency: 2 }, () => {
  // ---- traces and messages -------------------------------------------------------------------

  describe('no secret in what mlauth prints', () => {
    test('-vvv of login, token (cached and refreshed), status, send, send --stream, logout and errors', async () => {
      const w = await world();
      const outputs = [];
      const keep = (what, r) => { outputs.push({ what, ...r }); return r; };

      // -vvv on login: the trace must show the device flow, with its secrets redacted.
      const lv = keep('login -vvv', await login(w, ['-vvv']));
      assert.equal(lv.code, 0, lv.stderr);
      assert.match(lv.stderr, /"device_code": ?"\[redacted\]"/);
      assert.match(lv.stderr, /device_code=\[redacted\]/);
      assert.match(lv.stderr, /"access_token": ?"\[redacted\]"/);
      assert.match(lv.stderr, /"refresh_token": ?"\[redacted\]"/);
      assert.match(lv.stderr, /"id_token": ?"\[redacted\]"/);

      const cached = keep('token (cached) -vvv', await run(['-vvv', 'token'], { env: w.env }));
      assert.equal(cached.code, 0, cached.stderr);
      const token = readRecord(w).access_token;
      assert.equal(cached.stdout, `${token}\n`, 'stdout is the token and nothing else');

      age(w, 120);
      const refreshed = keep('token (refresh) -vvv', await run(['-vvv', 'token'], { env: w.env }));
      assert.equal(refreshed.code, 0, refreshed.stderr);
      assert.match(refreshed.stderr, /refresh_token=\[redacted\]/);
      assert.equal(refreshed.stdout, `${readRecord(w).access_token}\n`);

      for (const [what, args] of [
        ['status', ['-vvv', 'status']],
        ['status --json', ['-vvv', 'status', '--json']],
        ['config', ['-vvv', 'config']],
        ['send', ['-vvv', 'send', 'hello']],
        ['send --stream', ['-vvv', 'send', '--stream', 'hello']],
        ['send --json', ['-vvv', 'send', '--json', 'hello']],
      ]) {
        const r = keep(what, await run(args, { env: w.env }));
        assert.equal(r.code, 0, `${what}: ${r.stderr}`);
      }
      const sendTrace = outputs.find((o) => o.what === 'send').stderr;
      assert.match(sendTrace, /Authorization: \[redacted\]/);

      // A 401 makes send refresh and retry: both tokens cross the trace.
      await w.api.script([{ status: 401, body: { detail: 'Token has been revoked' } }]);
      const s401 = keep('send after 401', await run(['-vvv', 'send', 'again'], { env: w.env }));
      assert.equal(s401.code, 0, s401.stderr);

      const out = keep('logout -vvv', await run(['-vvv', 'logout'], { env: w.env }));
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stderr, /token=\[redacted\]/);

      // Errors: a revoked session, then no session at all.
      assert.equal((await login(w)).code, 0);
      await w.op.revokeAll();
      age(w, -10);
      const revoked = keep('token (revoked) -vvv', await run(['-vvv', 'token'], { env: w.env }));
      assert.equal(revoked.code, 3);
      const sendRevoked = keep('send (revoked) -vvv', await run(['-vvv', 'send', 'x'], { env: w.env }));
      assert.equal(sendRevoked.code, 3);
      await run(['logout', '--local'], { env: w.env });
      const none = keep('status (logged out)', await run(['-vvv', 'status'], { env: w.env }));
      assert.equal(none.code, 3);

      const secrets = secretsOf(w);
      assert.ok(secrets.size >= 20, `the proxy saw the secrets (${secrets.size})`);
      for (const o of outputs) {
        assertClean(o.stderr, secrets, `stderr of ${o.what}`);
        if (!o.what.startsWith('token (cached)') && !o.what.startsWith('token (refresh)')) {
          assertClean(o.stdout, secrets, `stdout of ${o.what}`);
        }
      }
    });

    test('the store directory lists nothing secret, and normal use leaves no temp file', async () => {
      const w = await world({ proxy: false });
      const env = { ...w.env }; // no session bus: the fallback file
      assert.equal((await login(w, [], env)).code, 0);
      // The lock file (no data in it) lives beside the record.
      const listing = () => readdirSync(w.dir).filter((f) => f !== 'default.lock');
      assert.deepEqual(listing(), ['default.json']);
      age(w, -10);
      assert.equal((await run(['token'], { env })).code, 0);
      await w.op.set({ tokenDelayMs: 0 });
      await w.op.revokeAll();
      age(w, -10);
      assert.equal((await run(['token'], { env })).code, 3); // a failed refresh writes nothing
      assert.deepEqual(listing(), ['default.json']);
      assertClean(listing().join('\n'), secretsOf(w), 'the directory listing');
      assert.equal((await run(['logout', '--local'], { env })).code, 0);
      assert.deepEqual(listing(), []);
    });

    test("a killed writer's temp file is swept: the next save takes old ones, logout all", async () => {
      const w = await world({ proxy: false });
      assert.equal((await login(w)).code, 0);
      const rec = readFileSync(recordPath(w));
      const plant = (hex, ageS) => {
        const f = join(w.dir, `.default.json.${hex}.tmp`);
        writeFileSync(f, rec, { mode: 0o600 });
        const t = Date.now() / 1000 - ageS;
        utimesSync(f, t, t);
        return f;
      };
      const old = plant('00112233445566aa', 120);
      const young = plant('00112233445566bb', 0);
      const other = join(w.dir, 'notes.txt'); // not ours to remove
      writeFileSync(other, 'x', { mode: 0o600 });
      age(w, -10);
      assert.equal((await run(['token'], { env: w.env })).code, 0);
      assert.equal(existsSync(old), false, 'a leftover older than a minute is removed by the next save');
      assert.equal(existsSync(young), true, 'a fresh one may be a live writer\'s: kept');
      assert.equal((await run(['logout', '--local'], { env: w.env })).code, 0);
      assert.deepEqual(readdirSync(w.dir).filter((f) => f !== 'default.lock'), ['notes.txt'], 'logout removes every leftover of the profile');
    });
  });

  // ---- processes -------------------------------------------------------------------------------

  describe('no secret in command lines or environments', () => {
    test('login, refresh, send and exec: /proc cmdline and environ of mlauth and its children', async () => {
      const w = await world();
      // A fake browser: records its argv and environment, then lingers until the test has
      // inspected it (the file `done` appears).
      const bin = join(w.home.dir, 'bin');
      mkdirSync(bin);
      const seen = join(w.home.dir, 'xdg-open.seen');
      // The sh line that waits until `file` appears.
      const lingerUntil = (file) => `while [ ! -e '${file}' ]; do sleep 0.05; done`;
      const done = join(w.home.dir, 'inspected');
      writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\n{ printf '%s\\n' "$@"; env; } > '${seen}'\n` +
        `${lingerUntil(done)}\n`, { mode: 0o755 });
      const env = { ...w.env, DISPLAY: ':99', PATH: `${bin}:${process.env.PATH}` };
      const inspected = [];
      const inspect = (pid, what) => {
        for (const p of descendants(pid)) {
          const cmdline = procEntries(p, 'cmdline');
          const environ = procEntries(p, 'environ');
          if (cmdline) inspected.push({ what: `${what} pid ${p} cmdline`, text: cmdline.join(' ') });
          if (environ) inspected.push({ what: `${what} pid ${p} environ`, text: environ.join('\n'), env: true, p, pid });
        }
      };

      // login, waiting for approval: it holds the device code; the browser was started.
      const h = spawnMlauth(['login'], { env });
      const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
      await until(() => existsSync(seen) && readFileSync(seen, 'utf8').includes('PATH='), 'the fake browser');
      inspect(h.pid, 'login');
      assert.ok(descendants(h.pid).length >= 2, 'the browser is a child of mlauth');
      writeFileSync(done, '');
      await w.op.approve(m[1]);
      assert.equal((await h.done).code, 0, h.stderr);
      const browser = readFileSync(seen, 'utf8');
      assert.match(browser, /^http:\/\/127\.0\.0\.1:\d+\/realms\/test\/device\?user_code=/, 'the browser got the link');

      // A refresh held at the provider: the process holds the refresh token.
      age(w, 120);
      const { held } = await w.op.counters();
      await w.op.set({ hold: { grant: 'refresh_token', when: 'before' } });
      const t = spawnMlauth(['token'], { env: w.env });
      await w.op.until('held', held + 1, { unless: t.done });
      inspect(t.pid, 'token refresh');
      await w.op.set({ hold: null });
      assert.equal((await t.done).code, 0);

      // An answer the API holds: the process holds the access token.
      await w.api.script([{ status: 200, hold: true, body: { type: 'message', content: [{ type: 'text', text: 'slow' }] } }]);
      const s = spawnMlauth(['send', 'x'], { env: w.env });
      await until(async () => (await w.api.requests()).length > 0, 'the messages request');
      inspect(s.pid, 'send');
      await w.api.release();
      assert.equal((await s.done).code, 0, s.stderr);

      // exec: the token goes to the child's environment (by design), never to a command line.
      // The child waits until it has been inspected.
      const go = join(w.home.dir, 'exec-inspected');
      const e = spawnMlauth(['exec', '--', 'sh', '-c', lingerUntil(go)], { env: w.env });
      await until(() => descendants(e.pid).length >= 2, 'the exec child');
      inspect(e.pid, 'exec');
      writeFileSync(go, '');
      assert.equal((await e.done).code, 0, e.stderr);

      const secrets = secretsOf(w);
      assert.ok(secrets.size >= 6);
      assertClean(browser, secrets, "the browser's argv and environment");
      for (const i of inspected) {
        // The one place a token is meant to be: the environment of the child of `mlauth exec`.
        if (i.env && i.what.startsWith('exec') && i.p !== i.pid) continue;
        assertClean(i.text, secrets, i.what);
      }
      assert.ok(inspected.some((i) => i.what.startsWith('token refresh') && i.env), 'the refreshing process was seen');
    });
  });

  // ---- dumpable, core ---------------------------------------------------------------------------

  describe('the process holding secrets', () => {
    /**
     * Starts mlauth as the unprivileged user `nobody` with a soft core limit of "unlimited", in a
     * home it owns. Root may read any process's /proc files, so only another (non-root) user's
     * view shows what PR_SET_DUMPABLE does: the kernel hands a non-dumpable process's /proc/PID
     * files to root, so a process of the same user can no longer read its environ or memory or
     * ptrace it.
     */
    function asNobody(args, env) {
      const child = spawn('sh', ['-c', 'ulimit -S -c unlimited && exec "$0" "$@"', MLAUTH_BIN, ...args], {
        env: { PATH: process.env.PATH, LANG: 'C.UTF-8', ...env }, uid: NOBODY, gid: NOBODY, detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      strays.add(child);
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
      child.stdout.resume();
      const done = new Promise((r) => child.once('close', (code) => { strays.delete(child); r(code); }));
      return { child, pid: child.pid, done, stderr: () => stderr };
    }

    function nobodyHome() {
      const h = tmpEnv();
      execFileSync('chown', ['-R', `${NOBODY}:${NOBODY}`, h.dir]);
      return h;
    }

    /** What a non-root process of the same user sees of pid. */
    function sameUserView(pid) {
      const r = spawnSyncAs(['cat', `/proc/${pid}/environ`]);
      return { environReadable: r.status === 0, err: r.stderr };
    }

    function spawnSyncAs(argv) {
      try {
        execFileSync(argv[0], argv.slice(1), { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'ignore', 'pipe'] });
        return { status: 0, stderr: '' };
      } catch (e) {
        return { status: e.status, stderr: String(e.stderr) };
      }
    }

    const softCore = (pid) => {
      const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max core file size'));
      return line.split(/\s{2,}/)[1];
    };
    const uidOf = (pid) => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

    test('login (device code) and send (access token): no core dumps, not dumpable', AS_ROOT, async () => {
      const h = nobodyHome();
      const w = await world({ proxy: false, home: h });
      const env = { ...w.env, MLAUTH_STORE: 'file' };

      // The control: an ordinary process of nobody's, with the same raised core limit.
      const control = spawn('sh', ['-c', 'ulimit -S -c unlimited && exec sleep 600'], { uid: NOBODY, gid: NOBODY, detached: true, stdio: 'ignore' });
      strays.add(control);
      await until(() => procEntries(control.pid, 'cmdline')?.[0] === 'sleep', 'the control process');
      assert.equal(softCore(control.pid), 'unlimited');
      assert.equal(statSync(`/proc/${control.pid}/environ`).uid, NOBODY);
      assert.equal(sameUserView(control.pid).environReadable, true, 'the same user reads a dumpable process');
      process.kill(-control.pid, 'SIGKILL');

      const l = asNobody(['login', '--no-browser'], env);
      await until(() => /shows the code (\S+)/.test(l.stderr()), 'the login prompt');
      assert.equal(uidOf(l.pid), NOBODY);
      assert.equal(softCore(l.pid), '0', 'core dumps are off');
      assert.equal(statSync(`/proc/${l.pid}/environ`).uid, 0, '/proc/PID files handed to root: not dumpable');
      assert.equal(statSync(`/proc/${l.pid}/mem`).uid, 0);
      const view = sameUserView(l.pid);
      assert.equal(view.environReadable, false, 'another process of the same user cannot read it');
      assert.match(view.err, /Permission denied/);
      await w.op.approve(/shows the code (\S+)/.exec(l.stderr())[1]);
      assert.equal(await l.done, 0, l.stderr());

      // The API holds its answer until the process has been looked at.
      await w.api.script([{ status: 200, hold: true, body: { type: 'message', content: [{ type: 'text', text: 'slow' }] } }]);
      const s = asNobody(['send', 'x'], env);
      await until(async () => (await w.api.requests()).length > 0, 'the messages request');
      assert.equal(softCore(s.pid), '0');
      assert.equal(statSync(`/proc/${s.pid}/environ`).uid, 0);
      assert.equal(sameUserView(s.pid).environReadable, false);
      await w.api.release();
      assert.equal(await s.done, 0, s.stderr());
      assert.equal(statSync(join(h.env.XDG_STATE_HOME, 'mlauth', 'default.json')).uid, NOBODY);
      forgetCacheAs(w.op.issuer);
    });

    // nobody's kernel keyring holds a cached token now: drop it as nobody.
    function forgetCacheAs(issuer) {
      try {
        const id = execFileSync('keyctl', ['search', '@u', 'user', `mlauth:default:MLAAS-CLI-API:${issuer}`],
          { uid: NOBODY, gid: NOBODY, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
        execFileSync('keyctl', ['unlink', id, '@u'], { uid: NOBODY, gid: NOBODY, stdio: 'ignore' });
      } catch { /* not cached */ }
    }
  });

  // ---- the fallback file ----------------------------------------------------------------------

  describe('the fallback file', { concurrency: 4 }, () => {
    async function loggedIn(extra = {}) {
      const w = await world({ proxy: false });
      Object.assign(w.env, extra);
      const r = await login(w);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /session will be kept in file/);
      return w;
    }

    function umaskRun(mask, args, env) {
      return new Promise((resolve) => {
        const p = spawn('sh', ['-c', `umask ${mask} && exec "$0" "$@"`, MLAUTH_BIN, ...args], {
          env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
        });
        let err = '';
        p.stderr.on('data', (d) => { err += d; });
        p.stdout.resume();
        p.on('close', (code) => resolve({ code, stderr: err }));
      });
    }

    test('0600 in 0700 directories, whatever the umask, created where missing', async () => {
      for (const mask of ['000', '277']) {
        const w = await world({ proxy: false });
        const state = join(w.home.dir, 'deep', 'er', 'state');
        const env = { ...w.env, XDG_STATE_HOME: state };
        const dir = join(state, 'mlauth');
        const p = umaskRun(mask, ['login', '--no-browser'], env);
        // Approve whichever code is pending, once the login has asked for one.
        await until(async () => { try { await w.op.approve(); return true; } catch { return false; } }, 'a pending code');
        const r = await p;
        assert.equal(r.code, 0, `umask ${mask}: ${r.stderr}`);
        assert.equal(statSync(join(dir, 'default.json')).mode & 0o777, 0o600, `umask ${mask}: file`);
        for (const d of [dir, state, join(w.home.dir, 'deep', 'er'), join(w.home.dir, 'deep')]) {
          assert.equal(statSync(d).mode & 0o777, 0o700, `umask ${mask}: ${d}`);
        }
        assert.equal(statSync(join(dir, 'default.json')).uid, process.getuid());
        const t = await umaskRun(mask, ['token'], env);
        assert.equal(t.code, 0, t.stderr);
      }
    });

    test('a directory that group or others can enter is refused before any refresh: exit 6', async () => {
      // Refused on reading too: a refresh whose rotated answer could then not be saved would
      // cost the session.
      const w = await loggedIn();
      chmodSync(w.dir, 0o750);
      const r = await run(['status'], { env: w.env });
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /refusing directory .*mlauth: group or others can access it \(run: chmod 700 /);
      assert.equal(r.stdout, '');
      age(w, -10);
      await w.op.resetCounters();
      const t = await run(['token'], { env: w.env });
      assert.equal(t.code, 6, t.stderr);
      assert.equal((await w.op.counters()).refresh, 0, 'no refresh before the refusal');
      chmodSync(w.dir, 0o700);
      const ok = await run(['token'], { env: w.env });
      assert.equal(ok.code, 0, ok.stderr);
    });

    test("a file or directory another user owns is refused: exit 6", AS_ROOT, async () => {
      const w = await loggedIn();
      chownSync(recordPath(w), NOBODY, NOBODY);
      let r = await run(['status'], { env: w.env });
      assert.equal(r.code, 6, `${r.stdout}${r.stderr}`);
      assert.match(r.stderr, new RegExp(`refusing .*default\\.json: it is owned by uid ${NOBODY}, not by you`));
      chownSync(recordPath(w), process.getuid(), process.getgid());
      chownSync(w.dir, NOBODY, NOBODY);
      r = await run(['status'], { env: w.env });
      assert.equal(r.code, 6);
      assert.match(r.stderr, new RegExp(`refusing directory .*mlauth: it is owned by uid ${NOBODY}, not by you`));
    });

    test('a symbolic link planted at the file is neither read nor written through', async () => {
      const w = await loggedIn();
      const victimDir = tmpEnv().dir;
      const victim = join(victimDir, 'victim.json');
      renameSync(recordPath(w), victim); // a perfectly good record, 0600 and ours, elsewhere
      const before = readFileSync(victim, 'utf8');
      symlinkSync(victim, recordPath(w));
      forgetCache(w.op.issuer);
      for (const args of [['status'], ['token']]) {
        const r = await run(args, { env: w.env });
        assert.equal(r.code, 6, `${args}: ${r.stderr}`);
        assert.match(r.stderr, /refusing .*default\.json: it is a symbolic link/);
        assert.equal(r.stdout, '');
      }
      const l = await login(w, ['--force']);
      assert.equal(l.code, 6, l.stderr);
      assert.match(l.stderr, /refusing .*default\.json: it is a symbolic link/);
      assert.equal(readFileSync(victim, 'utf8'), before, 'the link target is untouched');
      assert.equal(lstatSync(recordPath(w)).isSymbolicLink(), true);
    });

    test('a symbolic link planted at the directory is neither read nor written through', async () => {
      const w = await loggedIn();
      const elsewhere = join(tmpEnv().dir, 'elsewhere');
      renameSync(w.dir, elsewhere); // a good store directory, 0700 and ours, elsewhere
      symlinkSync(elsewhere, w.dir);
      forgetCache(w.op.issuer);
      for (const args of [['status'], ['token']]) {
        const r = await run(args, { env: w.env });
        assert.equal(r.code, 6, `${args}: ${r.stderr}`);
        assert.match(r.stderr, /refusing directory .*mlauth: it is a symbolic link/);
      }
      const before = readdirSync(elsewhere).map((f) => readFileSync(join(elsewhere, f), 'utf8'));
      // Refused before a code is asked for: no approval thrown away.
      const l = await run(['login', '--force', '--no-browser'], { env: w.env });
      assert.equal(l.code, 6, l.stderr);
      assert.match(l.stderr, /refusing directory .*mlauth: it is a symbolic link/);
      assert.doesNotMatch(l.stderr, /shows the code/);
      assert.deepEqual(readdirSync(elsewhere).map((f) => readFileSync(join(elsewhere, f), 'utf8')), before);
    });

    test('a symbolic link planted at the temp path is not written through', async () => {
      // The temp name has 64 random bits; to plant a link at it, make them predictable with
      // an LD_PRELOAD getrandom() that returns zeros: mlauth then meets the link on every try.
      const w = await loggedIn();
      const lib = join(w.home.dir, 'zero-random');
      writeFileSync(`${lib}.c`, '#include <string.h>\n#include <sys/types.h>\n'
        + 'ssize_t getrandom(void *b, size_t n, unsigned f) { (void)f; memset(b, 0, n); return (ssize_t)n; }\n');
      execFileSync('cc', ['-shared', '-fPIC', '-o', `${lib}.so`, `${lib}.c`]);
      const victim = join(tmpEnv().dir, 'victim');
      const tmpName = join(w.dir, '.default.json.0000000000000000.tmp');
      symlinkSync(victim, tmpName);
      const before = readFileSync(recordPath(w), 'utf8');
      age(w, -10);
      const aged = readFileSync(recordPath(w), 'utf8');
      // Under make asan the runtime must come first; the shim touches no allocator.
      const r = await run(['token'], {
        env: { ...w.env, LD_PRELOAD: `${lib}.so`, ASAN_OPTIONS: 'verify_asan_link_order=0' },
      });
      // The refresh happened and its rotated token must not be lost: it waits in the kernel
      // keyring (memory only) instead of the file that could not be written.
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /could not be saved \(cannot create a temporary file in .*mlauth: names taken\); it is kept in the kernel keyring/);
      assert.equal(existsSync(victim), false, 'nothing was created through the link');
      assert.equal(readlinkSync(tmpName), victim);
      assert.equal(readFileSync(recordPath(w), 'utf8'), aged, 'the record is as it was');
      assert.notEqual(before, '');
      // Without the shim the next run saves it, still not through the link.
      rmSync(tmpName);
      forgetCache(w.op.issuer);
      const next = await run(['token'], { env: w.env });
      assert.equal(next.code, 0, next.stderr);
      assert.equal(next.stdout, r.stdout);
      assert.match(next.stderr, /saved the session refreshed at/);
      assert.equal(existsSync(victim), false);
    });

    test('a symbolic link planted at the lock file is refused, its target not created', async () => {
      const w = await loggedIn();
      const lockDir = join(w.env.XDG_STATE_HOME, 'mlauth');
      mkdirSync(lockDir, { recursive: true, mode: 0o700 });
      const victim = join(tmpEnv().dir, 'victim');
      rmSync(join(lockDir, 'default.lock'), { force: true }); // login's own, replaced
      symlinkSync(victim, join(lockDir, 'default.lock'));
      age(w, -10);
      const r = await run(['token'], { env: w.env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /cannot open lock .*default\.lock: Too many levels of symbolic links/);
      assert.equal(existsSync(victim), false);
    });

    test('a FIFO planted at the file is refused at once, no hang', async () => {
      const w = await loggedIn();
      execFileSync('rm', [recordPath(w)]);
      execFileSync('mkfifo', ['-m', '600', recordPath(w)]);
      forgetCache(w.op.issuer);
      // Opening a FIFO for reading blocks until a writer comes, which here is never: a hang
      // would last until the rig's guard kills it, so no clock is needed to see one.
      const r = await run(['token'], { env: w.env, timeoutMs: 120_000 });
      assert.equal(r.timedOut, false, 'mlauth hung on the FIFO');
      assert.equal(r.code, 6, r.stderr);
      assert.match(r.stderr, /refusing .*default\.json: it is not a regular file/);
    });
  });
});
