// The peers make bench sets beside `mlauth token`, each on loopback with no network, and each
// checked to serve a cached token before it is timed: gh (hosts.yml in a private config
// dir) and oidc-agent (an account made with oidc-gen against the rig's provider).

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exec, which } from './harness.js';

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

/** The confidential client oidc-agent logs in with (it sends HTTP Basic credentials). */
export function agentClient() {
  return { id: 'mlauth-bench-oidc-agent', secret: randomBytes(24).toString('base64url') };
}

/**
 * `gh auth token` reading a token from hosts.yml in a private GH_CONFIG_DIR. Returns
 * { argv, env, token }.
 */
export async function ghPeer(dir) {
  const gh = await which('gh', 'gh');
  const config = join(dir, 'gh');
  mkdirSync(config, { recursive: true, mode: 0o700 });
  const token = `gho_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'x').slice(0, 36)}`;
  const hosts = join(config, 'hosts.yml');
  writeFileSync(hosts, `github.com:\n    oauth_token: ${token}\n    user: mlauth-bench\n    git_protocol: https\n`,
    { mode: 0o600 });
  chmodSync(hosts, 0o600);
  const env = { GH_CONFIG_DIR: config, GH_NO_UPDATE_NOTIFIER: '1', GH_PROMPT_DISABLED: '1' };
  const r = await exec(gh, ['auth', 'token'], env);
  if (r.code !== 0 || r.out.trim() !== token) throw new Error(`gh auth token did not print its token: ${r.code} ${r.err}`);
  return { argv: [gh, 'auth', 'token'], env, token };
}

/**
 * A running oidc-agent (its own socket, started and stopped by PID) with account `bench`
 * made by oidc-gen's device flow against op, approved through op's test route. Returns
 * { argv, env, stop() }; oidc-token then asks the agent, which keeps the access token.
 */
export async function oidcAgentPeer(dir, op, client, baseEnv) {
  const agentBin = await which('oidc-agent', 'oidc-agent');
  const gen = await which('oidc-gen', 'oidc-agent-cli');
  const tokenBin = await which('oidc-token', 'oidc-agent-cli');
  const home = join(dir, 'oidc-home');
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const sock = join(home, 'agent.sock');
  const env = { ...baseEnv, HOME: home, XDG_CONFIG_HOME: join(home, '.config'), TMPDIR: home, OIDC_SOCK: sock };
  const agent = spawn(agentBin, ['--console', '--quiet', '-a', sock, '--no-autoreauthenticate'],
    { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let agentErr = '';
  agent.stderr.on('data', (d) => { agentErr += d; });
  const stop = () => {
    try { process.kill(-agent.pid, 'SIGTERM'); } catch { /* gone */ }
  };
  try {
    for (let i = 0; ; i++) {
      const r = await exec('sh', ['-c', 'test -S "$OIDC_SOCK"'], env);
      if (r.code === 0) break;
      if (i > 100 || agent.exitCode !== null) throw new Error(`oidc-agent did not start: ${agentErr}`);
      await sleep(50);
    }
    // The client's credentials from a 0600 file (-f), never on oidc-gen's command line.
    const clientFile = join(home, 'client.json');
    writeFileSync(clientFile, JSON.stringify({
      issuer_url: op.issuer, client_id: client.id, client_secret: client.secret,
      scope: 'openid offline_access', redirect_uris: [],
    }), { mode: 0o600 });
    const g = spawn(gen, ['bench', `--file=${clientFile}`, '--flow=device', '--pw-env=MLAUTH_BENCH_OIDC_PW',
      '--prompt=none', '--confirm-default', '--no-url-call'],
    { env: { PATH: process.env.PATH, ...env, MLAUTH_BENCH_OIDC_PW: randomBytes(12).toString('hex') }, stdio: ['pipe', 'pipe', 'pipe'] });
    g.stdin.end();
    let out = '';
    g.stdout.on('data', (d) => { out += d; });
    g.stderr.on('data', (d) => { out += d; });
    const done = new Promise((r) => { g.on('close', r); });
    let approved = false;
    while (!approved && g.exitCode === null) {
      const m = /user_code=([A-Z0-9-]+)/.exec(out) || /code:?\s+([A-Z0-9]{4}-[A-Z0-9]{4})/.exec(out);
      if (m) {
        await op.approve(m[1]);
        approved = true;
      } else await sleep(100);
    }
    const code = await done;
    if (code !== 0 || !approved) throw new Error(`oidc-gen failed (${code}): ${out}`);
    return { argv: [tokenBin, 'bench'], env, stop };
  } catch (e) {
    stop();
    throw e;
  }
}
