// Fixtures shared by the e2e suites: a provider, a private home, a keyring, a logged-in user.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after } from 'node:test';
import { run, spawnMlauth, startAPI, startKeyring, startOP, tmpEnv } from './rig.js';
import { startHostile, startSink } from '../peers/hostile/server.js';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** A provider, a private home and (unless keyring: false) a private Secret Service. */
export async function setup({ keyring = true, op: opOptions = {} } = {}) {
  const op = await startOP({ accessTtl: 3600, interval: 1, ...opOptions });
  const home = tmpEnv();
  const kr = keyring ? await startKeyring(home.env) : null;
  const env = { ...home.env, ...(kr ? kr.env : {}), MLAUTH_ISSUER: op.issuer };
  return { op, kr, env, home };
}

/** mlauth login, approved (or denied) through the provider's test route as a person would. */
export async function login(env, op, { deny = false, args = [] } = {}) {
  const h = spawnMlauth(['login', '--no-browser', ...args], { env });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await (deny ? op.deny(m[1]) : op.approve(m[1]));
  return h.done;
}

/**
 * Runs a program to completion with exactly env; resolves { code, signal, stdout, stderr }.
 * input goes to its stdin (a program that exits without reading it is no error); after
 * timeoutMs (a hang guard; 0: none) it is killed.
 */
export function execProgram(cmd, args, { cwd, env, input = '', timeoutMs = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = timeoutMs ? setTimeout(() => p.kill('SIGKILL'), timeoutMs) : null;
    p.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    p.once('error', (e) => { clearTimeout(timer); reject(e); });
    p.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    p.stdin.on('error', () => {});
    p.stdin.end(input);
  });
}

/** Runs a tool (not mlauth) with PATH and exactly env; resolves { code, out, err }. */
export async function tool(cmd, args, env, input) {
  const r = await execProgram(cmd, args, { env: { PATH: process.env.PATH, ...env }, input: input ?? '', timeoutMs: 0 });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

/** The stored record, read the way any other tool would: secret-tool. */
export async function storedRecord(env, profile = 'default') {
  const r = await tool('secret-tool', ['lookup', 'profile', profile], env);
  return r.code === 0 && r.out ? JSON.parse(r.out) : null;
}

/** The kernel-keyring cache entry of issuer, removed (best effort): the next call asks the store. */
export function forgetCache(issuer, profile = 'default') {
  try {
    const id = execFileSync('keyctl', ['search', '@u', 'user', `mlauth:${profile}:MLAAS-CLI-API:${issuer}`],
      { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    execFileSync('keyctl', ['unlink', id, '@u'], { stdio: 'ignore' });
  } catch { /* not cached */ }
}

/** A self-signed certificate for names (SAN), in a fresh temp dir. */
export function selfSigned(san) {
  const dir = tmpEnv().dir;
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=mlauth hostile test',
    '-addext', `subjectAltName=${san}`], { stdio: 'ignore' });
  return { dir, keyFile: key, certFile: cert, key: readFileSync(key), cert: readFileSync(cert) };
}

const usesFile = (env) => env.MLAUTH_STORE === 'file' || !env.DBUS_SESSION_BUS_ADDRESS;

/**
 * Moves a stored session's clock the way time would, so no test sleeps for a token to age:
 * its access token then expires in `left` seconds (negative: expired) of a one-hour life.
 * The file store is rewritten as mlauth writes it (0600, temp file, rename), the Secret
 * Service through secret-tool; the kernel cache entry goes, as the kernel drops it at
 * expiry. Returns the record as it was before.
 */
export async function ageSession(env, left, profile = 'default') {
  const file = join(env.XDG_STATE_HOME, 'mlauth', `${profile}.json`);
  if (usesFile(env)) return ageRecord(file, left, profile);
  const before = await storedRecord(env, profile);
  assert.ok(before, 'a stored session to age');
  const r = aged(before, left);
  const s = await tool('secret-tool', ['store', '--label', `mlauth: ${profile} (${r.issuer})`,
    'xdg:schema', 'org.mlauth.Token', 'profile', profile, 'issuer', r.issuer,
    'client_id', r.client_id], env, JSON.stringify(r));
  assert.equal(s.code, 0, s.err);
  forgetCache(r.issuer, profile);
  return before;
}

/** ageSession for the file store at `file`, wherever it is (under HOME for cron and SSH). */
export function ageRecord(file, left, profile = 'default') {
  const before = JSON.parse(readFileSync(file, 'utf8'));
  writeFileSync(`${file}.test-tmp`, JSON.stringify(aged(before, left)), { mode: 0o600 });
  renameSync(`${file}.test-tmp`, file);
  forgetCache(before.issuer, profile);
  return before;
}

function aged(record, left) {
  const expires = Math.floor(Date.now() / 1000) + left;
  return { ...record, expires_at: expires, obtained_at: expires - 3600 };
}

/**
 * A logged-in user of the file store (no keyring) and a messages API trusting the provider,
 * quick to answer (streams 5 ms between events). Returns setup()'s fields and api.
 */
export async function loggedInWithAPI(opOptions = {}) {
  const s = await setup({ keyring: false, op: opOptions });
  const api = await startAPI({ issuer: s.op.issuer, streamPauseMs: 5 });
  s.env.MLAUTH_API_BASE = api.base;
  s.env.MLAUTH_STORE = 'file';
  const r = await login(s.env, s.op);
  if (r.code !== 0) throw new Error(`login failed: ${r.stderr}`);
  return { ...s, api };
}

/**
 * The hostile peers of one test file: hostile(options) and sink(address) start one; all are
 * closed, and the discovery cache entries of their issuers forgotten, after the file's tests.
 */
export function hostilePeers() {
  const servers = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    for (const s of servers) if (s.issuer) forgetCache(s.issuer);
  });
  const keep = (s) => { servers.push(s); return s; };
  return {
    hostile: async (options) => keep(await startHostile(options)),
    sink: async (address) => keep(await startSink(address)),
  };
}

/**
 * n forced refreshes (age() makes the token stale), each hit by signal, to the process or
 * with group its whole group: one in three while the provider holds the request
 * unprocessed, one in three after it has rotated the refresh token but before its answer
 * left (let go once the caller is dead: the detached refresh still waits for it), one in
 * three at a random moment of the call.  peer is what holds: the oidc-provider peer, or a
 * gate (tests/peers/gate.js) in front of Keycloak.  After each, the next `mlauth token` must
 * print a token; where it does not, the session was lost and relogin() starts a new one.
 * Resolves { runs, held, lost: [what mlauth said] }.
 */
export async function killRefreshes({ peer, env, age, relogin, n, signal, group = false }) {
  const stats = { runs: 0, held: 0, lost: [] };
  for (let i = 0; i < n; i++) {
    age();
    const when = ['before', 'after', 'random'][i % 3];
    await peer.set({ hold: when === 'random' ? null : { grant: 'refresh_token', when } });
    const { held } = await peer.counters();
    const h = spawnMlauth(['token'], { env });
    let timer;
    if (when === 'random') {
      timer = setTimeout(() => h.kill(signal, { group }), Math.floor(Math.random() * 400));
    } else {
      await peer.until('held', held + 1, { unless: h.done });
      h.kill(signal, { group });
    }
    const r = await h.done;
    clearTimeout(timer);
    if (when !== 'random') {
      assert.ok(r.signal || r.code === 130, `${signal} while held: ${r.code} ${r.stderr}`);
      stats.held++;
      await peer.set({ hold: null }); // the provider goes on: to a client that still waits
    }
    stats.runs++;
    const t = await run(['token'], { env, timeoutMs: 60_000 });
    if (t.code === 0) {
      assert.match(t.stdout.trimEnd(), JWT);
      continue;
    }
    assert.match(t.stderr, /run mlauth login/, t.stderr);
    stats.lost.push(`${signal}${group ? ' (group)' : ''} ${when}: ${t.stderr.trim()}`);
    await relogin();
  }
  return stats;
}
