// Fixtures shared by the e2e suites: a provider, a private home, a keyring, a logged-in user.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnMlauth, startKeyring, startOP, tmpEnv } from './rig.js';

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

/** Runs a tool (not mlauth) with PATH and exactly env; resolves { code, out, err }. */
export function tool(cmd, args, env, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, {
      env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out, err }));
    p.stdin.on('error', () => {}); // the tool may exit without reading its input
    p.stdin.end(input ?? '');
  });
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
