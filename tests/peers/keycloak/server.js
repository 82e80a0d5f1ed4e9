#!/usr/bin/env node
// The studio's identity provider itself for the end-to-end tests: Keycloak's own server
// distribution (the release pinned in dist.env, unpacked and built by scripts/keycloak.sh),
// started in production mode on 127.0.0.1 with an in-memory database.
//
//   node tests/peers/keycloak/server.js [--port N] [--dist DIR] [--watch-stdin]
//
// The bootstrap admin's password comes from the environment (KC_BOOTSTRAP_ADMIN_PASSWORD),
// never argv.  Prints one line on stdout when Keycloak answers:
// {"ready":true,"port":P,"url":"http://127.0.0.1:P","pid":JAVA_GROUP}; Keycloak's log goes to
// stderr.  SIGTERM/SIGINT (or, with --watch-stdin, the end of stdin) stop Keycloak's whole
// process group and remove its private home.
//
// Keycloak (kc.sh and the JVM it starts) stays in this peer's process group, so whoever stops
// the peer's group (the rig, by PID) stops Keycloak with it, even when the peer itself is
// SIGKILLed and has no chance to clean up.
//
// Each server gets a private home: bin/ and conf/ copied, lib/, themes/ and providers/ linked
// to the shared distribution, data/ its own.  So several test runs can each run a Keycloak
// from one unpacked distribution without sharing a transaction log.

import { spawn, execFileSync } from 'node:child_process';
import {
  cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync,
} from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { descendants } from '../proc.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '../../..');
const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    dist: { type: 'string' },
    'watch-stdin': { type: 'boolean', default: false },
  },
});
// Keycloak on a loaded 2-core machine takes 30-90 s to answer; this only bounds a hang.
const READY_TIMEOUT_MS = 10 * 60_000;
const log = (msg) => process.stderr.write(`keycloak-peer: ${msg}\n`);

if (!process.env.KC_BOOTSTRAP_ADMIN_PASSWORD) {
  log('KC_BOOTSTRAP_ADMIN_PASSWORD must be set');
  process.exit(2);
}

/** The unpacked, built distribution: --dist, else what make deps left in the cache. */
function distribution() {
  if (args.dist) return args.dist;
  return execFileSync('sh', [join(REPO, 'scripts/keycloak.sh')], { encoding: 'utf8' }).trim();
}

/** A free loopback port (the OS picks it; Keycloak binds it a moment later). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function privateHome(dist) {
  const home = mkdtempSync(join(tmpdir(), 'mlauth-keycloak-'));
  cpSync(join(dist, 'bin'), join(home, 'bin'), { recursive: true });
  cpSync(join(dist, 'conf'), join(home, 'conf'), { recursive: true });
  for (const d of ['lib', 'themes', 'providers']) {
    if (existsSync(join(dist, d))) symlinkSync(join(dist, d), join(home, d));
  }
  mkdirSync(join(home, 'data'));
  return home;
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

async function answers(url) {
  try {
    const res = await fetch(`${url}/realms/master/.well-known/openid-configuration`,
      { signal: AbortSignal.timeout(5000) });
    return res.ok;
  } catch {
    return false;
  }
}

const dist = distribution();
const home = privateHome(dist);
const port = Number(args.port) || await freePort();
const url = `http://127.0.0.1:${port}`;
const java = spawn('sh', [join(home, 'bin/kc.sh'), 'start', '--optimized',
  '--http-enabled=true', '--http-host=127.0.0.1', `--http-port=${port}`,
  '--hostname-strict=false', '--log-console-color=false'], {
  env: {
    ...process.env,
    KC_BOOTSTRAP_ADMIN_USERNAME: 'admin',
    // Keycloak sizes its heap from the machine's memory; a test server needs little.
    JAVA_OPTS_APPEND: '-Xms64m -Xmx768m -XX:TieredStopAtLevel=1',
  },
  stdio: ['ignore', 2, 2], // stdout is ours: the ready line
});

function zombie(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

function signalTree(sig) {
  for (const p of descendants(java.pid)) {
    try { process.kill(p, sig); } catch { /* gone */ }
  }
}

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  const pids = descendants(java.pid);
  signalTree('SIGTERM');
  const kill = setTimeout(() => signalTree('SIGKILL'), 10_000);
  // kc.sh may go before the JVM it started: wait for every process of the tree.
  const done = async () => {
    while (pids.some((p) => existsSync(`/proc/${p}`) && !zombie(p))) await sleep(100);
    clearTimeout(kill);
    rmSync(home, { recursive: true, force: true });
    process.exit(code);
  };
  if (java.exitCode !== null || java.signalCode !== null) done();
  else java.once('exit', done);
}
java.once('exit', (code, signal) => {
  if (!stopping) {
    log(`Keycloak exited (${signal || code})`);
    stopping = true;
    rmSync(home, { recursive: true, force: true });
    process.exit(1);
  }
});
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => stop(0));
if (args['watch-stdin']) {
  process.stdin.resume();
  process.stdin.on('end', () => stop(0));
  process.stdin.on('error', () => stop(0));
}

const deadline = Date.now() + READY_TIMEOUT_MS;
while (!(await answers(url))) {
  if (stopping) break;
  if (Date.now() > deadline) {
    log(`Keycloak did not answer within ${READY_TIMEOUT_MS / 1000} s`);
    stop(1);
    break;
  }
  await sleep(250);
}
if (!stopping) process.stdout.write(`${JSON.stringify({ ready: true, port, url, pid: java.pid })}\n`);
