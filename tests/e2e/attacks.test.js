// Attacks of issue 14, each against the hostile peer or as a second local user: what a
// provider, an API, a proxy or another account on the box could still do, and must not.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { MLAUTH_BIN, run, spawnMlauth, stopAll, tmpEnv } from './rig.js';
import { forgetCache, hostilePeers, selfSigned, sleep } from './fixtures.js';

const peers = hostilePeers();
after(stopAll);

const T = ['-o', 'timeout=3'];
const b64url = (s) => Buffer.from(s).toString('base64url');
/** A JWT whose payload is exactly `json` (JSON.stringify cannot write 2^63 - 1). */
const rawJwt = (json) => `${b64url('{"alg":"RS256","typ":"JWT"}')}.${b64url(json)}.c2ln`;

// These logins come without an ID token (login validates one only when it is sent), so
// the claims mlauth shows are those of the access token a test forges.
const tokenAnswer = (patch = {}) => ({ kind: 'good', patch: { id_token: null, ...patch } });

async function hostile(options) {
  const h = await peers.hostile(options);
  h.set({ device_token: tokenAnswer() });
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
      h.set({ device_token: tokenAnswer({ expires_in: null, access_token: rawJwt(`{"sub":"m","iat":${iat},"exp":${exp}}`) }) });
      const env = homeFor(h);
      refused(await login(env), 1, /^mlauth: the provider's access token claims a lifetime of more than a year \(exp - iat\)$/, h);
      assert.equal(existsSync(recordPath(env)), false);
    }
  });

  test('an exp without iat more than a year ahead is refused too', async () => {
    const h = await hostile();
    h.set({ device_token: tokenAnswer({ expires_in: null, access_token: rawJwt('{"sub":"m","exp":9223372036854775807}') }) });
    refused(await login(homeFor(h)), 1, /lifetime of more than a year/, h);
  });

  test('a sane exp - iat still gives the token its lifetime', async () => {
    const h = await hostile();
    const now = Math.floor(Date.now() / 1000);
    h.set({ device_token: tokenAnswer({ expires_in: null, access_token: rawJwt(`{"sub":"m","iat":${now},"exp":${now + 7200}}`) }) });
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
      const s = await peers.sink('127.0.0.1');
      h.set({ discovery: { kind: 'good', patch: { [key]: `${s.url}/realms/hostile/x` } } });
      const r = await run([...T, '-o', `ca_file=${c.certFile}`, 'login', '--no-browser'], { env: homeFor(h), timeoutMs: 20_000 });
      refused(r, 1, new RegExp(`^mlauth: discovery at https://127\\.0\\.0\\.1:\\d+ lists ${key} http://127\\.0\\.0\\.1:\\d+/realms/hostile/x: plain http, but the issuer is https$`), h);
      assert.deepEqual(s.hits, [], 'nothing reached the plain-http port');
      assert.equal(h.count('device'), 0);
    });
  }
});

// The config file decides where the bearer goes. A second local user (nobody, through
// setpriv) rewrites a config file or directory the victim left writable, pointing api_base
// at the attacker's own listener.
describe('a config file another user could write', { concurrency: 2 }, () => {
  const asNobody = (cmd) => spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'sh', '-c', cmd], { stdio: 'pipe' });
  const rigCan = asNobody('true').status === 0;
  const why = 'the rig cannot run a command as the user nobody (setpriv)';
  const q = (s) => `'${s.replace(/'/g, "'\\''")}'`;

  /** A logged-in victim whose config file lives in dir `shared` (mode dirMode), file mode fileMode. */
  async function victim({ dirMode, fileMode }) {
    const h = await hostile();
    const sink = await peers.sink('127.0.0.1');
    const home = tmpEnv();
    chmodSync(home.dir, 0o711); // others may pass through, not list or write
    const shared = join(home.dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    const file = join(shared, 'config');
    writeFileSync(file, '[default]\nmodel = claude-opus-4-6\n', { mode: 0o644 });
    const env = { ...home.env, MLAUTH_ISSUER: h.issuer, MLAUTH_STORE: 'file', MLAUTH_CONFIG: file };
    const r = await login({ ...env, MLAUTH_API_BASE: h.base });
    assert.equal(r.code, 0, r.stderr);
    // Then the mistake: a mode that lets others write.
    chmodSync(shared, dirMode);
    chmodSync(file, fileMode);
    return { h, sink, env, file, shared };
  }

  const attack = (v, how) => {
    const text = `[default]\napi_base = ${v.sink.url}/proxy/anthropic\n`;
    const cmd = how === 'replace'
      ? `printf %s ${q(text)} > ${q(`${v.file}.new`)} && mv -f ${q(`${v.file}.new`)} ${q(v.file)}`
      : `printf %s ${q(text)} > ${q(v.file)}`;
    const r = asNobody(cmd);
    assert.equal(r.status, 0, String(r.stderr));
  };

  test('a world-writable config file rewritten by another user: refused, exit 2, the bearer stays home', { skip: !rigCan && why }, async () => {
    const v = await victim({ dirMode: 0o755, fileMode: 0o666 });
    attack(v, 'write');
    const r = await run(['send', '--retries', '0', 'hi'], { env: v.env });
    refused(r, 2, new RegExp(`^mlauth: config file ${v.file} is writable by others \\(mode 0666\\): it could send your token anywhere; run chmod go-w ${v.file}$`), v.h);
    assert.deepEqual(v.sink.hits, [], 'nothing reached the attacker');
    const t = await run(['token'], { env: v.env });
    assert.equal(t.code, 2, 'the fast path refuses it too');
  });

  test('a file replaced in a world-writable directory (now owned by another user): refused', { skip: !rigCan && why }, async () => {
    const v = await victim({ dirMode: 0o777, fileMode: 0o644 });
    attack(v, 'replace');
    const r = await run(['send', '--retries', '0', 'hi'], { env: v.env });
    refused(r, 2, /^mlauth: config file .* is owned by uid 65534, not by you: it could send your token anywhere; use a file of your own/, v.h);
    assert.deepEqual(v.sink.hits, []);
    chmodSync(v.shared, 0o755); // the directory alone is reason enough
    writeFileSync(`${v.file}.mine`, '[default]\n');
    const d = await run(['-c', `${v.file}.mine`, 'token'], { env: { ...v.env, MLAUTH_CONFIG: '' } });
    assert.equal(d.code, 0, d.stderr);
    chmodSync(v.shared, 0o775);
    const g = await run(['-c', `${v.file}.mine`, 'token'], { env: v.env });
    refused(g, 2, new RegExp(`^mlauth: directory ${v.shared} of config file ${v.file}\\.mine is writable by others \\(mode 0775\\): it could send your token anywhere; run chmod go-w ${v.shared}$`));
  });

  test('doctor reports the refused file and checks on without it', { skip: !rigCan && why }, async () => {
    const v = await victim({ dirMode: 0o755, fileMode: 0o666 });
    attack(v, 'write');
    const r = await run([...T, 'doctor', '--json'], { env: v.env });
    assert.notEqual(r.code, 0, 'a failed check fails doctor');
    const checks = JSON.parse(r.stdout).checks;
    const c = checks.find((x) => x.name === 'config');
    assert.equal(c.status, 'fail');
    assert.match(c.detail, /config file .* is writable by others \(mode 0666\).*run chmod go-w/);
    assert.notEqual(checks.find((x) => x.name === 'api_base').detail.includes(v.sink.url), true, 'its api_base was not used');
    assert.deepEqual(v.sink.hits, []);
  });
});

// Terminal escapes from the network: OSC 52 (clipboard), OSC 0 (title), CSI 2J (clear), as
// 7-bit ESC sequences, as U+009B (CSI in UTF-8) and as a raw 0x9b byte.
describe('terminal escapes in network text', { concurrency: 2 }, () => {
  const EVIL = 'Mallory\u001b]52;c;cHduZWQ=\u0007\u001b]0;owned\u0007\u001b[2J\u009b2J\u202eoj';
  // eslint-disable-next-line no-control-regex
  const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\ufffd]/;
  const clean = (text, what) => assert.doesNotMatch(text, CONTROL, `${what}: ${JSON.stringify(text)}`);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const jwtOf = (claims) => `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}.c2ln`;

  /** Runs mlauth on a terminal (script(1) gives it a pty); the raw bytes it wrote there. */
  function onTty(args, env) {
    const words = Object.entries({ PATH: process.env.PATH, LANG: 'C.UTF-8', ...env }).map(([k, v]) => q(`${k}=${v}`));
    const cmd = `env -i ${words.join(' ')} ${q(MLAUTH_BIN)} ${args.map(q).join(' ')}`;
    // Not spawnSync: the hostile peer lives in this process and must keep answering.
    return new Promise((resolve, reject) => {
      const p = spawn('script', ['-q', '-e', '-c', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'ignore'] });
      const chunks = [];
      const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
      p.stdout.on('data', (c) => chunks.push(c));
      p.on('error', reject);
      p.on('close', (code) => { clearTimeout(timer); resolve({ code, out: Buffer.concat(chunks) }); });
    });
  }
  const q = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;

  test('claims shown by login and status carry no escapes; status --json keeps them exact', async () => {
    const h = await hostile();
    const now = Math.floor(Date.now() / 1000);
    const claims = { sub: 'm', iat: now, exp: now + 3600, name: EVIL, preferred_username: EVIL, email: `${EVIL}@x`, scope: `openid ${EVIL}` };
    h.set({ device_token: tokenAnswer({ access_token: jwtOf(claims), scope: null }) });
    const env = homeFor(h);
    const r = await login(env);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Logged in as Mallory\?\]52;c;cHduZWQ=\?\?\]0;owned\?\?\[2J\?2J\?oj \(Mallory/m);
    clean(r.stdout, 'login');
    clean(r.stderr, 'login stderr');
    const s = await run(['status'], { env });
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /^User: +Mallory\?\]52;c;/m);
    assert.match(s.stdout, /^Scopes: +openid Mallory\?\]52/m);
    clean(s.stdout, 'status');
    const j = await run(['status', '--json'], { env });
    assert.equal(JSON.parse(j.stdout).user, EVIL, '--json: the claim exactly');
  });

  test('send: a reply\'s escapes reach a terminal made visible, a pipe byte for byte', async () => {
    const h = await hostile();
    const env = homeFor(h);
    assert.equal((await login(env)).code, 0);
    const text = `Hi ${EVIL} caf\u00e9\n`;
    h.set({ messages: { kind: 'good', patch: { content: [{ type: 'text', text }] } } });
    const piped = await run(['send', 'hi'], { env });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, text, 'into a pipe: exact');
    const json = await run(['send', '--json', 'hi'], { env });
    assert.equal(JSON.parse(json.stdout).content[0].text, text);
    const tty = await onTty(['send', 'hi'], env);
    assert.equal(tty.code, 0, tty.out.toString());
    const shown = tty.out.toString('utf8').replace(/\r\n/g, '\n'); // the pty's own CRLF
    clean(shown, 'send on a terminal');
    assert.match(shown, /Hi Mallory\?\]52;c;cHduZWQ=\?\?\]0;owned\?\?\[2J\?2J\?oj café/);
  });

  test('send --stream: an escape or a character split across events is still caught', async () => {
    const h = await hostile();
    const env = homeFor(h);
    assert.equal((await login(env)).code, 0);
    const d = (t) => ({ event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } } });
    const events = [
      { event: 'message_start', data: { type: 'message_start', message: { id: 'm', type: 'message', role: 'assistant', model: 'm', content: [], usage: { input_tokens: 1, output_tokens: 1 } } } },
      { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
      d('one \u001b'), d(']0;owned\u0007 two \u009b'), d('2J caf\u00e9 three\n'),
      { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
      { event: 'message_stop', data: { type: 'message_stop' } },
    ];
    h.set({ messages: { kind: 'sse', events } });
    const tty = await onTty(['send', '--stream', 'hi'], env);
    const shown = tty.out.toString('utf8').replace(/\r\n/g, '\n'); // the pty's own CRLF
    assert.equal(tty.code, 0, shown);
    clean(shown, 'stream on a terminal');
    assert.match(shown, /one \?\]0;owned\? two \?2J café three/);
  });

  test('an error body and the -vv trace: raw 0x9b, U+009B and ESC are made visible', async () => {
    const h = await hostile();
    const env = homeFor(h);
    assert.equal((await login(env)).code, 0);
    const body = Buffer.concat([Buffer.from('upstream \u001b[2J'), Buffer.from([0x9b, 0x32, 0x4a]), Buffer.from(' \u009b2J sorry')]);
    h.set({ messages: { kind: 'raw', status: 502, contentType: 'text/plain', body } });
    const r = await run(['-vv', 'send', '--retries', '0', 'hi'], { env });
    assert.equal(r.code, 5, r.stderr);
    clean(r.stderr, 'send -vv stderr');
    assert.match(r.stderr, /^< upstream \?\[2J\?2J \?2J sorry$/m, 'the trace');
    assert.match(r.stderr, /^mlauth: HTTP 502: upstream \?\[2J\?2J \?2J sorry/m, 'the error line');
  });

  test('doctor shows environment values without their escapes', async () => {
    const h = await hostile();
    const r = await run([...T, 'doctor'], { env: { ...homeFor(h), no_proxy: `a${EVIL}` } });
    clean(r.stdout, 'doctor');
    assert.match(r.stdout, /no_proxy=aMallory\?\]52;c;/);
  });
});

// Secrets in memory: while `send` waits on a stalled API, root reads the helper's memory
// (/proc/PID/mem, as a debugger or a core dump would) and finds the refresh token only in
// mappings marked MADV_DONTDUMP; the access token is there too.
describe('tokens in memory', () => {
  /** The mappings of pid as { lo, hi, perms, dd, lo_ck, name }. */
  function mappings(pid) {
    const out = [];
    let cur = null;
    for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (m) {
        cur = { lo: BigInt(`0x${m[1]}`), hi: BigInt(`0x${m[2]}`), perms: m[3], name: m[4], flags: '' };
        out.push(cur);
      } else if (cur && line.startsWith('VmFlags:')) {
        cur.flags = ` ${line.slice(8).trim()} `;
      }
    }
    return out;
  }

  /** Every address of pid's readable memory where needle occurs, with its mapping. */
  function find(pid, needle) {
    const fd = openSync(`/proc/${pid}/mem`, 'r');
    const hits = [];
    try {
      for (const m of mappings(pid)) {
        const size = Number(m.hi - m.lo);
        if (!m.perms.startsWith('r') || size > 64 * 1024 * 1024 || /\[(vvar|vsyscall)\]/.test(m.name)) continue;
        const buf = Buffer.alloc(size);
        let n;
        try { n = readSync(fd, buf, 0, size, m.lo); } catch { continue; }
        for (let i = buf.indexOf(needle); i >= 0 && i < n; i = buf.indexOf(needle, i + 1)) hits.push(m);
      }
    } finally {
      closeSync(fd);
    }
    return hits;
  }

  /** Runs mlauth ARGS until the peer saw `route`, then reads its memory for the secrets. */
  async function heldWhile(h, env, args, route, secrets) {
    const p = spawnMlauth(args, { env });
    while (h.count(route) === 0) {
      assert.equal(p.child.exitCode, null, `mlauth ended before its ${route} request: ${p.stderr}`);
      await sleep(25);
    }
    assert.equal(h.count(route), 1, `the ${route} request is out`);
    const found = secrets.map((x) => find(p.pid, x));
    p.kill('SIGKILL');
    await p.done;
    return found;
  }
  const dd = (hits) => hits.some((m) => m.flags.includes(' dd '));

  test('send holds the access token in memory kept out of dumps, and no refresh token at all', async () => {
    const h = await hostile();
    const env = homeFor(h);
    assert.equal((await login(env)).code, 0);
    const rec = JSON.parse(readFileSync(recordPath(env), 'utf8'));
    forgetCache(h.issuer); // the token from the store, as after a reboot
    h.set({ messages: { kind: 'stall', holdMs: 20_000 } });
    const [access, refresh] = await heldWhile(h, env, ['send', '--retries', '0', 'hi'], 'messages',
      [rec.access_token, rec.refresh_token]);
    assert.ok(dd(access), 'a copy of the access token in MADV_DONTDUMP memory');
    assert.deepEqual(refresh, [], 'the refresh token, read with the record, is wiped once unused');
  });

  test('a refresh holds the refresh token in memory kept out of dumps', async () => {
    const h = await hostile();
    const env = homeFor(h);
    assert.equal((await login(env)).code, 0);
    const rec = JSON.parse(readFileSync(recordPath(env), 'utf8'));
    rec.expires_at = Math.floor(Date.now() / 1000) - 60;
    writeFileSync(recordPath(env), JSON.stringify(rec), { mode: 0o600 });
    forgetCache(h.issuer);
    h.set({ refresh: { kind: 'stall', holdMs: 20_000 } });
    const [refresh] = await heldWhile(h, env, ['token'], 'refresh', [rec.refresh_token]);
    assert.ok(dd(refresh), 'mlauth\'s copy of the refresh token in MADV_DONTDUMP memory');
  });
});

