// make demo: mlauth's main job end to end against local peers (the real Keycloak server with
// a realm shaped like the studio's, a private keyring, the messages API), each started here
// and stopped by PID at the end.
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { keycloak } from './e2e/keycloak.js';
import { MLAUTH_BIN, run, spawnMlauth, startAPI, startKeyring, stopAll, tmpEnv } from './e2e/rig.js';

const say = (s) => process.stdout.write(`${s}\n`);
const bold = (s) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const shown = (args) => say(`\n${bold(`$ mlauth ${args.join(' ')}`)}`);

function sh(command, env) {
  return new Promise((resolve, reject) => {
    const p = spawn('/bin/sh', ['-c', command], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out }));
  });
}

async function main() {
  say('Starting Keycloak (its own server distribution, on 127.0.0.1; 30-90 s) ...');
  const kc = await keycloak();
  const realm = await kc.realm({ interval: 1 });
  const api = await startAPI({ issuer: realm.issuer, audience: 'MLAAS-CLI-API' });
  const home = tmpEnv();
  const keyring = await startKeyring(home.env);
  const env = { ...home.env, ...keyring.env, MLAUTH_ISSUER: realm.issuer, MLAUTH_API_BASE: api.base };
  say(`Local peers: Keycloak realm ${realm.issuer}, messages API ${api.base} (pid ${api.pid}),`);
  say(`private keyring on ${keyring.busAddress} (pid ${keyring.pid}).`);

  shown(['login', '--no-browser']);
  const login = spawnMlauth(['login', '--no-browser'], { env });
  login.child.stderr.on('data', (d) => process.stdout.write(d));
  const m = await login.waitFor(/^\s*(http\S+user_code=\S+)\s*$/m, { stream: 'stderr' });
  say('[demo: opening that link as the person at the browser would: alice signs in on');
  say(' Keycloak\'s login page and grants access on its consent page]');
  await realm.approve(m[1]);
  const done = await login.done;
  process.stdout.write(done.stdout);
  if (done.code !== 0) throw new Error(`login failed (${done.code})`);

  shown(['status']);
  process.stdout.write((await run(['status'], { env })).stdout);

  shown(['token']);
  const t = await run(['token'], { env });
  const token = t.stdout.trimEnd();
  say(`${token.slice(0, 40)}… (${token.length} characters; a JWT signed by Keycloak)`);

  const base = api.base;
  const cmd = `curl -sS -H "$(${MLAUTH_BIN} token --header)" -H 'content-type: application/json' ` +
    `-H 'anthropic-version: 2023-06-01' ${base}/v1/messages ` +
    `-d '{"model":"claude-opus-4-6","max_tokens":64,"messages":[{"role":"user","content":"Hello"}]}'`;
  say(`\n${bold(`$ curl -sS -H "$(mlauth token --header)" … ${base}/v1/messages -d '{… "Hello" …}'`)}`);
  const c = await sh(cmd, { PATH: `${dirname(MLAUTH_BIN)}:${process.env.PATH}`, ...env });
  say(c.out.trim());

  shown(['send', '--stream', '"Hello"']);
  const send = spawnMlauth(['send', '--stream', 'Hello'], { env });
  send.child.stdout.on('data', (d) => process.stdout.write(d));
  send.child.stderr.on('data', (d) => process.stdout.write(d));
  if ((await send.done).code !== 0) throw new Error('send failed');

  shown(['logout']);
  const out = await run(['logout'], { env });
  process.stdout.write(out.stderr);
  say('\nDone; stopping the local peers.');
}

main().then(stopAll, async (e) => {
  console.error(`demo failed: ${e.message}`);
  await stopAll();
  process.exitCode = 1;
});
