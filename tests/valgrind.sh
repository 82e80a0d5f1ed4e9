#!/bin/sh
# tests/valgrind.sh: the main paths under valgrind memcheck, against the e2e rig's provider,
# messages API and (for the Secret Service store) a private gnome-keyring.
#
#   sh tests/valgrind.sh [BIN]        (make valgrind; BIN defaults to ./mlauth)
#
# Runs, each under memcheck with --trace-children=yes (the front binary executes the helper):
# login, token from the kernel-keyring cache (the front's fast path), token with a refresh,
# status, send, send --stream, logout; then login, token and logout with the Secret Service.
# Any memcheck error or definitely lost block fails the run (exit 99 from valgrind, and every
# log's summary is checked). Library-internal noise (GLib, GIO, libsecret, libcurl, OpenSSL)
# is suppressed by tests/valgrind.supp; our own frames are never suppressed there.
set -eu

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN=$(cd "$(dirname "${1:-mlauth}")" && pwd)/$(basename "${1:-mlauth}")
SUPP=$ROOT/tests/valgrind.supp

command -v valgrind >/dev/null 2>&1 || { echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v node >/dev/null 2>&1 || { echo "valgrind.sh: node is not installed" >&2; exit 1; }
[ -x "$BIN" ] || { echo "valgrind.sh: no $BIN: run make first" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mlauth-valgrind.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# The wrapper the rig runs as "mlauth": the real front binary under memcheck. One log per
# run, appended through an inherited descriptor: the helper the front executes keeps the pid,
# and a --log-file per pid would have the helper's report overwrite the front's.
cat >"$WORK/mlauth" <<EOF
#!/bin/sh
exec 3>>"$WORK/vg.\$\$.log"
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \\
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \\
    --trace-children=yes --child-silent-after-fork=yes --num-callers=40 \\
    --suppressions="$SUPP" --gen-suppressions=all --log-fd=3 "$BIN" "\$@"
EOF
chmod 755 "$WORK/mlauth"

MLAUTH_BIN="$WORK/mlauth" VG_WORK="$WORK" node --input-type=module - <<'EOF'
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, spawnMlauth, startAPI, startKeyring, startOP, stopAll, tmpEnv } from './tests/e2e/rig.js';

const T = { timeoutMs: 180_000 };
const work = process.env.VG_WORK;
let failed = 0;

function forgetCache(issuer) {
  try {
    const id = execFileSync('keyctl', ['search', '@u', 'user', `mlauth:default:MLAAS-CLI-API:${issuer}`],
      { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    execFileSync('keyctl', ['unlink', id, '@u'], { stdio: 'ignore' });
  } catch { /* not cached */ }
}

/**
 * Runs one step; its valgrind logs are those that appear meanwhile. helper: whether the front
 * must have executed the helper (and memcheck followed it), or served alone.
 */
async function step(name, want, fn, { helper = true } = {}) {
  const before = new Set(readdirSync(work).filter((f) => f.startsWith('vg.')));
  const started = Date.now();
  const r = await fn();
  const logs = readdirSync(work).filter((f) => f.startsWith('vg.') && !before.has(f));
  const bad = [];
  for (const f of logs) {
    const text = readFileSync(join(work, f), 'utf8');
    // Every error and every definite leak shown comes with a stack ("at 0x…"); the front's
    // part of the log (before it executes the helper) has no summary of its own.
    const sums = [...text.matchAll(/ERROR SUMMARY: (\d+) errors/g)].map((m) => m[1]);
    if (sums.length === 0 || sums.some((n) => n !== '0') || /^==\d+== +(at|by) 0x/m.test(text)
        || /definitely lost: [1-9]/.test(text)) bad.push(text);
    if (/Command: \S*mlauth-helper /.test(text) !== helper) {
      bad.push(`expected ${helper ? 'the helper to run under memcheck too' : 'the front to serve alone'}:\n${text}`);
    }
  }
  const ok = r.code === want && bad.length === 0 && logs.length === 1;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: exit ${r.code}${r.code === 99 ? ' (memcheck)' : ''}, ${Date.now() - started} ms`);
  if (!ok) {
    failed++;
    if (r.code !== want) console.log(`---- stderr of ${name}:\n${r.stderr}`);
    for (const b of bad) console.log(`---- valgrind log:\n${b}`);
  }
  return r;
}

async function login(env, op) {
  const h = spawnMlauth(['login', '--no-browser'], { env });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr', timeoutMs: 120_000 });
  await op.approve(m[1]);
  return h.done;
}

try {
  const op = await startOP({ accessTtl: 3600, interval: 1 });
  const api = await startAPI({ issuer: op.issuer });
  const home = tmpEnv();
  const env = { ...home.env, MLAUTH_ISSUER: op.issuer, MLAUTH_API_BASE: api.base, MLAUTH_STORE: 'file' };

  await step('login (file store)', 0, () => login(env, op));
  await step('token from the kernel cache (front only)', 0, () => run(['token'], { env, ...T }), { helper: false });
  // Stale: the record's clock moved on and the cache entry gone, as at expiry.
  const file = join(env.XDG_STATE_HOME, 'mlauth', 'default.json');
  const rec = JSON.parse(readFileSync(file, 'utf8'));
  rec.expires_at = Math.floor(Date.now() / 1000) - 10;
  rec.obtained_at = rec.expires_at - 3600;
  writeFileSync(`${file}.vg`, JSON.stringify(rec), { mode: 0o600 });
  renameSync(`${file}.vg`, file);
  forgetCache(op.issuer);
  const before = (await op.counters()).refresh;
  await step('token with a refresh', 0, () => run(['token'], { env, ...T }));
  assert.equal((await op.counters()).refresh, before + 1, 'the refresh happened');
  await step('status', 0, () => run(['status'], { env, ...T }));
  await step('send', 0, () => run(['send', 'hello'], { env, ...T }));
  await step('send --stream', 0, () => run(['send', '--stream', 'hello'], { env, ...T }));
  await api.script([{ status: 401, body: { detail: 'Token has been revoked' } }]);
  await step('send, 401, refresh and retry', 0, () => run(['send', 'again'], { env, ...T }));
  await step('logout', 0, () => run(['logout'], { env, ...T }));
  await step('token when logged out', 3, () => run(['token'], { env, ...T }));

  const khome = tmpEnv();
  const kr = await startKeyring(khome.env);
  const kenv = { ...khome.env, ...kr.env, MLAUTH_ISSUER: op.issuer, MLAUTH_API_BASE: api.base };
  await step('login (Secret Service)', 0, () => login(kenv, op));
  forgetCache(op.issuer);
  await step('token from the Secret Service', 0, () => run(['token'], { env: kenv, ...T }));
  await step('logout (Secret Service)', 0, () => run(['logout'], { env: kenv, ...T }));
} catch (err) {
  console.log(`FAIL ${err.stack || err}`);
  failed++;
} finally {
  await stopAll();
}
if (failed) {
  console.log(`valgrind: ${failed} step(s) failed`);
  process.exit(1);
}
console.log('valgrind: no memcheck errors, no definite leaks');
EOF
