// `make e2e`: one Keycloak for the whole run, then node's test runner over tests/e2e/.
//
// Keycloak boots once per run, not once per test file: it starts here, on a port it picks,
// and every test process finds it through the state file MLAUTH_KC_STATE (its URL once it
// answers, or why it failed) and MLAUTH_KC_ADMIN_PASSWORD; keycloak.js waits for that file, so
// the suites that do not need Keycloak run while it boots.  It is stopped by PID when the
// runner ends, whatever the outcome.
//   node tests/e2e/run.js [node --test arguments…]
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKeycloak } from './rig.js';

const password = randomBytes(18).toString('base64url');
const stateDir = mkdtempSync(join(tmpdir(), 'mlauth-kc-state-'));
const stateFile = join(stateDir, 'state');
/** Whole or not at all: a reader never sees half a state. */
function writeState(state) {
  writeFileSync(`${stateFile}.new`, JSON.stringify(state));
  renameSync(`${stateFile}.new`, stateFile);
}
const booting = startKeycloak({ adminPassword: password });
booting.then((kc) => writeState({ url: kc.url }), (e) => {
  writeState({ failed: `failed to start: ${e.message}` });
  process.stderr.write(`run.js: Keycloak failed to start: ${e.message}\n`);
});

const args = process.argv.slice(2);
const runner = spawn(process.execPath, ['--test', ...(args.length ? args : ['tests/e2e/'])], {
  stdio: 'inherit',
  env: {
    ...process.env,
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
