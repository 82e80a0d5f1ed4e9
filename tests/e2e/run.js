// `make e2e`: one Keycloak for the whole run, then node's test runner over tests/e2e/.
//
// Keycloak boots once per run, not once per test file: it starts here, and every test process
// finds it through MLAUTH_KC_URL and MLAUTH_KC_ADMIN_PASSWORD (keycloak.js waits until it
// answers, so the suites that do not need it run while it boots).  It is stopped by PID when
// the runner ends, whatever the outcome.
//   node tests/e2e/run.js [node --test arguments…]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { startKeycloak } from './rig.js';

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

const password = randomBytes(18).toString('base64url');
const port = await freePort();
const stateDir = mkdtempSync(join(tmpdir(), 'mlauth-kc-state-'));
const stateFile = join(stateDir, 'state');
const booting = startKeycloak({ adminPassword: password, port });
booting.then(() => writeFileSync(stateFile, 'ready'), (e) => {
  writeFileSync(stateFile, `failed to start: ${e.message}`);
  process.stderr.write(`run.js: Keycloak failed to start: ${e.message}\n`);
});

const args = process.argv.slice(2);
const runner = spawn(process.execPath, ['--test', ...(args.length ? args : ['tests/e2e/'])], {
  stdio: 'inherit',
  env: {
    ...process.env,
    MLAUTH_KC_URL: `http://127.0.0.1:${port}`,
    MLAUTH_KC_ADMIN_PASSWORD: password,
    MLAUTH_KC_STATE: stateFile,
  },
});
const code = await new Promise((resolve) => {
  runner.once('exit', (c, sig) => resolve(sig ? 1 : c));
});
const kc = await booting.catch(() => null);
if (kc) await kc.stop();
rmSync(stateDir, { recursive: true, force: true });
process.exit(code);
