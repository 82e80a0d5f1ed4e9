// The end-to-end test rig: private homes, the OpenID Provider, the messages API, a private
// Secret Service, and a clean way to run the mlauth binary.
//
// Everything started here runs in its own process group and is stopped by PID (the whole
// group, so dbus-run-session's bus and keyring go too): by its stop(), by stopAll(), and as a
// safety net when this process exits or is signalled. The peers also watch their stdin and
// quit when it closes, so even a SIGKILLed test process leaves nothing behind.
//
// Nothing here inherits the caller's session: no DBUS_SESSION_BUS_ADDRESS, DISPLAY, XDG_* or
// MLAUTH_* reaches a child unless a test passes it. Secrets go over stdin, never argv.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync,
} from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MLAUTH_BIN = process.env.MLAUTH_BIN || join(REPO, 'mlauth');

const OP_SERVER = join(REPO, 'tests/peers/op/server.js');
const API_SERVER = join(REPO, 'tests/peers/api/server.js');
const KEYCLOAK_SERVER = join(REPO, 'tests/peers/keycloak/server.js');
// A peer is waited for until it says it is ready, or exits: this is only the guard against
// one that hangs, so it is far beyond what a loaded machine needs (node starting
// oidc-provider took over 15 s at load 18).
const START_TIMEOUT_MS = 180_000;
// Keycloak boots in 30-90 s on a loaded 2-core machine; this bounds a hang, nothing more.
const KEYCLOAK_START_TIMEOUT_MS = 10 * 60_000;
const LOG_TAIL = 64 * 1024;
// RIG_VERBOSE=1 copies the peers' logs to our stderr, for debugging a failing test.
const VERBOSE = !!process.env.RIG_VERBOSE;

// ---- bookkeeping and the safety net --------------------------------------------------

// Every child we started, each the leader of its own process group. A child stays here
// after it exits until its whole group is gone: what it started may live on.
const live = new Set();
const dirs = new Set(); // temp dirs to remove
const watchesStdin = new WeakSet(); // children that quit by themselves when stdin closes

// Signals a child's process group, but only while the group still has live members: once it
// is empty its number may be reused by an unrelated process.
function killGroup(child, signal) {
  if (groupMembers(child.pid).length === 0) return;
  try {
    process.kill(-child.pid, signal);
  } catch { /* gone meanwhile */ }
}

function cleanupSync() {
  for (const child of live) killGroup(child, 'SIGKILL');
  live.clear();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  const onSignal = () => {
    cleanupSync();
    process.removeListener(sig, onSignal);
    // Die of the signal as we would have without us, unless someone else handles it.
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  process.on(sig, onSignal);
}

/** The minimal environment every child starts from. */
function baseEnv() {
  return { PATH: process.env.PATH || '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };
}

function track(child) {
  live.add(child);
  return child;
}

/** Keeps the last LOG_TAIL characters a stream wrote, for error messages. */
function tail(stream, label) {
  let text = '';
  let partial = ''; // an unfinished line, held back so each line gets its label once
  stream.setEncoding('utf8');
  stream.on('data', (s) => {
    text = (text + s).slice(-LOG_TAIL);
    if (!VERBOSE) return;
    const lines = (partial + s).split('\n');
    partial = lines.pop();
    for (const line of lines) process.stderr.write(`[${label}] ${line}\n`);
  });
  return () => text;
}

/** Resolves with the first stdout line for which accept(line) returns a value. */
function firstLine(child, accept, stderrText, what, timeoutMs = START_TIMEOUT_MS) {
  return new Promise((resolvePromise, reject) => {
    let buf = '';
    const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
    function fail(why) {
      cleanup();
      killGroup(child, 'SIGKILL');
      reject(new Error(`${what} did not start: ${why}\n${stderrText()}`));
    }
    function onData(s) {
      buf += s;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const value = accept(line);
        if (value !== undefined) {
          cleanup();
          resolvePromise(value);
          return;
        }
      }
    }
    const onExit = (code, signal) => fail(`exited (${signal || code})`);
    function cleanup() {
      clearTimeout(timer);
      child.stdout.removeListener('data', onData);
      child.removeListener('exit', onExit);
    }
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', onData);
    child.once('exit', onExit);
  });
}

/**
 * Stops a process group and resolves once none of it is left. Gently first: the peers and
 * the keyring session end when their stdin closes (so gnome-keyring and the bus shut down
 * in order); SIGTERM to the group after a second, SIGKILL after graceMs more. A child that
 * does not watch its stdin (mlauth) gets SIGTERM at once.
 */
async function stopGroup(child, { gentle = watchesStdin.has(child), graceMs = 3000 } = {}) {
  if (child.exitCode === null && child.signalCode === null) {
    child.ref(); // keep the event loop alive while we wait
    const exited = new Promise((r) => { child.once('exit', r); });
    const termAfter = gentle ? 1000 : 0;
    child.stdin?.end();
    const term = setTimeout(() => killGroup(child, 'SIGTERM'), termAfter);
    const kill = setTimeout(() => killGroup(child, 'SIGKILL'), termAfter + graceMs);
    await exited;
    clearTimeout(term);
    clearTimeout(kill);
  }
  // The leader is gone; give the rest of its group a moment, then make sure.
  for (let i = 0; i < 50 && groupAlive(child); i++) await sleep(20);
  killGroup(child, 'SIGKILL');
  live.delete(child);
}

const groupAlive = (child) => groupMembers(child.pid).length > 0;

/**
 * The live processes of a process group, read from /proc. Zombies do not count: when
 * dbus-run-session ends it leaves its bus daemon for init to reap, which may take a while.
 */
export function groupMembers(pgid) {
  const members = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp …"; comm may itself contain spaces and parentheses.
    const close = stat.lastIndexOf(')');
    const [state, , pgrp] = stat.slice(close + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') {
      members.push({ pid: Number(name), state, comm: stat.slice(stat.indexOf('(') + 1, close) });
    }
  }
  return members;
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

/** Lets the test process exit even if a test forgets to stop a peer (the exit hook kills it). */
function detach(child) {
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) s?.unref?.();
}

// A control request to a peer. Plain http with no keep-alive, so no pooled socket outlives it.
function controlRequest(port, method, path, body) {
  return new Promise((resolvePromise, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1', port, method, path, agent: false,
      headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s) => { text += s; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = text; }
        if (res.statusCode >= 400) {
          reject(Object.assign(new Error(`${method} ${path}: ${res.statusCode} ${text}`), { status: res.statusCode, body: json }));
        } else {
          resolvePromise(json);
        }
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

function spawnPeer(script, argv, what, env) {
  const child = track(spawn(process.execPath, [script, ...argv, '--watch-stdin'], {
    env: { ...baseEnv(), ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  }));
  watchesStdin.add(child);
  const logs = tail(child.stderr, what);
  return { child, logs };
}

// ---- public API ------------------------------------------------------------------------

/**
 * A private home for one test: HOME and every XDG base dir (0700) under one temp dir.
 * Returns { dir, env, remove() }; removed by stopAll() or at exit at the latest.
 */
export function tmpEnv() {
  const dir = mkdtempSync(join(tmpdir(), 'mlauth-e2e-'));
  dirs.add(dir);
  const sub = (name) => {
    const p = join(dir, name);
    mkdirSync(p, { mode: 0o700 });
    return p;
  };
  const env = {
    HOME: sub('home'),
    XDG_CONFIG_HOME: sub('config'),
    XDG_STATE_HOME: sub('state'),
    XDG_CACHE_HOME: sub('cache'),
    XDG_DATA_HOME: sub('data'),
    XDG_RUNTIME_DIR: sub('run'),
  };
  return {
    dir,
    env,
    remove() {
      rmSync(dir, { recursive: true, force: true });
      dirs.delete(dir);
    },
  };
}

/**
 * Starts the Keycloak-shaped OpenID Provider.
 * options: { port, accessTtl, refreshTtl, deviceTtl, interval, rotate (false = --no-rotate),
 *            realm, env }
 */
export async function startOP(options = {}) {
  const argv = [];
  const flag = (name, value) => { if (value !== undefined) argv.push(`--${name}`, String(value)); };
  flag('port', options.port);
  flag('access-ttl', options.accessTtl);
  flag('refresh-ttl', options.refreshTtl);
  flag('device-ttl', options.deviceTtl);
  flag('interval', options.interval);
  flag('realm', options.realm);
  if (options.rotate === false) argv.push('--no-rotate');

  const { child, logs } = spawnPeer(OP_SERVER, argv, 'op', options.env);
  const ready = await firstLine(child, parseReady, logs, 'the OpenID Provider');
  detach(child);
  const { port, issuer } = ready;
  const ctl = (method, path, body) => controlRequest(port, method, path, body);
  return {
    issuer,
    port,
    pid: child.pid,
    approve: (userCode) => ctl('POST', '/test/approve', userCode === undefined ? {} : { user_code: userCode }),
    deny: (userCode) => ctl('POST', '/test/deny', userCode === undefined ? {} : { user_code: userCode }),
    counters: () => ctl('GET', '/test/counters'),
    state: () => ctl('GET', '/test/state'),
    set: (settings) => ctl('POST', '/test/set', settings),
    revokeAll: () => ctl('POST', '/test/revoke-all', {}),
    resetCounters: () => ctl('POST', '/test/reset-counters', {}),
    /**
     * Resolves with the counters once counters[name] >= n: an event to wait on (a request
     * arrived, an answer is held), never a guessed delay. Rejects if `unless` (a running
     * mlauth's done) settles first: the process ended before the event.
     */
    async until(name, n, { unless } = {}) {
      let over = null;
      unless?.then((r) => { over = r; }, (e) => { over = e; });
      for (;;) {
        const c = await ctl('GET', '/test/counters');
        if (c[name] >= n) return c;
        if (over) throw new Error(`ended before the provider's ${name} reached ${n}: ${over.stderr ?? over}`);
        await sleep(10);
      }
    },
    logs,
    stop: () => stopGroup(child),
  };
}

/**
 * Starts the real Keycloak server (tests/peers/keycloak/server.js); most tests want the run's
 * shared one through keycloak() in keycloak.js instead.
 * options: { adminPassword (required), port }
 * Returns { url, port, pid, logs(), stop() }.
 */
export async function startKeycloak(options = {}) {
  if (!options.adminPassword) throw new Error('startKeycloak needs { adminPassword }');
  const argv = options.port === undefined ? [] : ['--port', String(options.port)];
  const { child, logs } = spawnPeer(KEYCLOAK_SERVER, argv, 'keycloak', {
    HOME: process.env.HOME, // the distribution's cache lives there (scripts/keycloak.sh)
    ...(process.env.XDG_CACHE_HOME ? { XDG_CACHE_HOME: process.env.XDG_CACHE_HOME } : {}),
    ...(process.env.MLAUTH_RIG_CACHE ? { MLAUTH_RIG_CACHE: process.env.MLAUTH_RIG_CACHE } : {}),
    ...(process.env.JAVA_HOME ? { JAVA_HOME: process.env.JAVA_HOME } : {}),
    KC_BOOTSTRAP_ADMIN_PASSWORD: options.adminPassword,
  });
  const { port, url } = await firstLine(child, parseReady, logs, 'Keycloak', KEYCLOAK_START_TIMEOUT_MS);
  detach(child);
  return { url, port, pid: child.pid, logs, stop: () => stopGroup(child, { graceMs: 15_000 }) };
}

/**
 * Starts the fake messages API, trusting tokens from `issuer` (and, with `audience`, only
 * those whose aud names it, as the studio's API does with MLAAS-CLI-API).
 * options: { issuer (required), audience, port, streamPauseMs, env }
 */
export async function startAPI(options = {}) {
  if (!options.issuer) throw new Error('startAPI needs { issuer }');
  const argv = ['--issuer', options.issuer];
  if (options.audience !== undefined) argv.push('--audience', options.audience);
  if (options.port !== undefined) argv.push('--port', String(options.port));
  if (options.streamPauseMs !== undefined) argv.push('--stream-pause-ms', String(options.streamPauseMs));

  const { child, logs } = spawnPeer(API_SERVER, argv, 'api', options.env);
  const { port, base } = await firstLine(child, parseReady, logs, 'the messages API');
  detach(child);
  const ctl = (method, path, body) => controlRequest(port, method, path, body);
  return {
    base,
    port,
    pid: child.pid,
    script: (entries) => ctl('POST', '/test/script', entries),
    requests: () => ctl('GET', '/test/requests'),
    /** Lets every answer held by a script entry's hold, and stream at a {hold: true} event, go on. */
    release: () => ctl('POST', '/test/release', {}),
    reset: () => ctl('POST', '/test/reset', {}),
    set: (settings) => ctl('POST', '/test/set', settings),
    logs,
    stop: () => stopGroup(child),
  };
}

function parseReady(line) {
  try {
    const msg = JSON.parse(line);
    return msg.ready ? msg : undefined;
  } catch {
    return undefined;
  }
}

// Runs inside dbus-run-session. Line 1 of stdin is the keyring password; after that stdin
// stays open, and its end (our stop, or our death) ends the script and so the session.
const KEYRING_SCRIPT = String.raw`
IFS= read -r pw || exit 1
if [ "$RIG_SECRETS" = 1 ]; then
  if [ "$RIG_UNLOCK" = 1 ]; then
    # --unlock with a password creates and unlocks the default collection; without it
    # there is none, and storing fails for want of a prompter.
    printf %s "$pw" | gnome-keyring-daemon --foreground --unlock --components=secrets >&2 &
  else
    gnome-keyring-daemon --foreground --components=secrets </dev/null >&2 &
  fi
  kpid=$!
  trap 'kill $kpid 2>/dev/null; wait $kpid' EXIT
  n=0
  until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null \
        | grep -q 'boolean true'; do
    n=$((n + 1))
    kill -0 $kpid 2>/dev/null || { echo 'rig: gnome-keyring-daemon exited before it took org.freedesktop.secrets' >&2; exit 1; }
    if [ $n -gt 3600 ]; then echo 'rig: gnome-keyring-daemon did not take org.freedesktop.secrets in 180 s' >&2; exit 1; fi
    sleep 0.05
  done
fi
unset pw
echo "BUS=$DBUS_SESSION_BUS_ADDRESS"
cat >/dev/null
`;

// One password per keyring directory, so a keyring stopped and started again on the same
// private home (a "reboot") unlocks the collection it saved.
const passwords = new Map();
function keyringPassword(dataHome) {
  if (!passwords.has(dataHome)) passwords.set(dataHome, randomBytes(18).toString('base64url'));
  return passwords.get(dataHome);
}

const xmlEscape = (s) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * A private session bus with a Secret Service (gnome-keyring) on it, for the given env
 * (normally tmpEnv().env: the keyring lives under its XDG_DATA_HOME).
 * options: { secrets: false → a bare bus with no Secret Service,
 *            unlock: false → a keyring with no unlocked default collection }
 * Returns { busAddress, env: { DBUS_SESSION_BUS_ADDRESS }, pid, logs(), stop() }.
 */
export async function startKeyring(env = {}, options = {}) {
  const { secrets = true, unlock = true } = options;
  // Our own bus config: the socket lives in the private runtime dir, and there is no
  // service activation, so nothing on the bus that the test did not start.
  let runtime = env.XDG_RUNTIME_DIR;
  if (!runtime) {
    runtime = mkdtempSync(join(tmpdir(), 'mlauth-bus-'));
    dirs.add(runtime);
  }
  const busDir = mkdtempSync(join(runtime, 'bus-'));
  const conf = join(busDir, 'session.conf');
  writeFileSync(conf, `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <keep_umask/>
  <listen>unix:dir=${xmlEscape(busDir)}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`);

  const child = track(spawn('dbus-run-session', [`--config-file=${conf}`, '--', 'sh', '-c', KEYRING_SCRIPT], {
    // The private dirs must be in place before the bus starts: the keyring daemon inherits
    // them from the bus's environment.
    env: {
      ...baseEnv(),
      ...env,
      RIG_SECRETS: secrets ? '1' : '0',
      RIG_UNLOCK: unlock ? '1' : '0',
    },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  }));
  watchesStdin.add(child);
  const logs = tail(child.stderr, 'keyring');
  child.stdin.on('error', () => {}); // the session may end before we write
  child.stdin.write(`${keyringPassword(env.XDG_DATA_HOME || runtime)}\n`);
  const busAddress = await firstLine(
    child,
    (line) => (line.startsWith('BUS=') ? line.slice(4) : undefined),
    logs,
    'the keyring',
  );
  detach(child);
  return {
    busAddress,
    env: { DBUS_SESSION_BUS_ADDRESS: busAddress },
    pid: child.pid,
    logs,
    stop: () => stopGroup(child),
  };
}

function mlauthChild(args, { env = {}, cwd } = {}) {
  return track(spawn(MLAUTH_BIN, args, {
    env: { ...baseEnv(), ...env },
    cwd: cwd || REPO,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // its own group, so a timeout also takes whatever it started
  }));
}

/**
 * Starts mlauth in the background. Returns a handle:
 *   pid, child, stdout, stderr (text so far), waitFor(regex, {stream, timeoutMs}) → match,
 *   write(text), end(), kill(signal = 'SIGTERM', {group = false}), done (→ result), stop().
 * opts: { env, input (written, then stdin closed), keepStdin (leave stdin open), cwd }
 * The result is { code, signal, stdout, stderr }.
 */
export function spawnMlauth(args, opts = {}) {
  const child = mlauthChild(args, opts);
  let stdout = '';
  let stderr = '';
  const waiters = new Set();
  const notify = () => { for (const w of waiters) w(); };
  child.stdout.setEncoding('utf8').on('data', (s) => { stdout += s; notify(); });
  child.stderr.setEncoding('utf8').on('data', (s) => { stderr += s; notify(); });
  child.stdin.on('error', () => {}); // mlauth may exit without reading its input
  if (opts.input !== undefined) child.stdin.end(opts.input);
  else if (!opts.keepStdin) child.stdin.end();

  let ended = false;
  const done = new Promise((resolvePromise, reject) => {
    child.once('close', (code, signal) => {
      ended = true;
      notify();
      resolvePromise({ code, signal, stdout, stderr });
    });
    // Not started at all (no binary yet?): one clear error instead of an uncaught 'error'.
    child.once('error', (err) => {
      ended = true;
      live.delete(child);
      notify();
      reject(new Error(`cannot run ${MLAUTH_BIN}: ${err.message} (run make, or set MLAUTH_BIN)`));
    });
  });
  done.catch(() => {}); // handled by whoever awaits it; never an unhandled rejection

  return {
    child,
    pid: child.pid,
    get stdout() { return stdout; },
    get stderr() { return stderr; },
    done,
    write: (text) => child.stdin.write(text),
    end: () => child.stdin.end(),
    kill(signal = 'SIGTERM', { group = false } = {}) {
      if (group) killGroup(child, signal);
      else child.kill(signal);
    },
    /** Waits until stdout/stderr (or either: stream 'any', the default) matches re. */
    waitFor(re, { stream = 'any', timeoutMs = 15_000 } = {}) {
      const text = () => (stream === 'stdout' ? stdout : stream === 'stderr' ? stderr : `${stdout}\n${stderr}`);
      return new Promise((resolvePromise, reject) => {
        const check = () => {
          const m = re.exec(text());
          if (m) { finish(); resolvePromise(m); return; }
          if (ended) {
            finish();
            reject(new Error(`mlauth exited before ${re} appeared\nstdout: ${stdout}\nstderr: ${stderr}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`timed out waiting for ${re}\nstdout: ${stdout}\nstderr: ${stderr}`));
        }, timeoutMs);
        function finish() { clearTimeout(timer); waiters.delete(check); }
        waiters.add(check);
        check();
      });
    },
    async stop() {
      await stopGroup(child, { graceMs: 2000 });
      return done;
    },
  };
}

/**
 * Runs mlauth to completion with a clean environment: PATH, LANG=C.UTF-8 and exactly opts.env.
 * opts: { env, input, timeoutMs (default 30 s), cwd }
 * Resolves { code, signal, stdout, stderr, timedOut }.
 */
export async function run(args, opts = {}) {
  const { timeoutMs = 30_000 } = opts;
  const h = spawnMlauth(args, { env: opts.env, input: opts.input ?? '', cwd: opts.cwd });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    h.kill('SIGKILL', { group: true });
  }, timeoutMs);
  try {
    const result = await h.done;
    killGroup(h.child, 'SIGKILL'); // anything it left behind in its group
    live.delete(h.child);
    return { ...result, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** Stops every peer and mlauth still running and removes every temp dir. */
export async function stopAll() {
  await Promise.all([...live].map((child) => stopGroup(child)));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}
