// Global options after the command (`mlauth status -q`, `mlauth token -p work`), read by the
// one parser both binaries share: the front's fast path and the helper answer every case alike.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { MLAUTH_BIN, run, stopAll } from './rig.js';
import { JWT, login, setup, tool } from './fixtures.js';

after(stopAll);

const HELPER = join(dirname(MLAUTH_BIN), 'mlauth-helper');
// The front alone, without its helper: what it cannot serve itself fails to start the helper.
const alone = mkdtempSync(join(tmpdir(), 'mlauth-front-'));
copyFileSync(MLAUTH_BIN, join(alone, 'mlauth'));
const FRONT_ALONE = join(alone, 'mlauth');

let s;
const tokens = {};
let cfgFile;

before(async () => {
  s = await setup();
  assert.equal((await login(s.env, s.op)).code, 0);
  // The profile given after `login`: the helper reads it there too.
  const w = await login(s.env, s.op, { args: ['-p', 'work'] });
  assert.equal(w.code, 0, w.stderr);
  for (const p of ['default', 'work']) {
    const r = await run(['-p', p, 'token'], { env: s.env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trimEnd(), JWT);
    tokens[p] = r.stdout.trimEnd();
  }
  assert.notEqual(tokens.default, tokens.work);
  cfgFile = join(s.home.dir, 'other.conf');
  writeFileSync(cfgFile, '[work]\nmin_valid = 120\n[elsewhere]\nissuer = http://127.0.0.1:9/realms/none\n');
});

test('mlauth token -p work and mlauth status -q: global options after the command', async () => {
  const t = await run(['token', '-p', 'work'], { env: s.env });
  assert.equal(t.code, 0, t.stderr);
  assert.equal(t.stdout, `${tokens.work}\n`);
  // -q after the command is -q: accepted by status, and it silences login's notice.
  const q = await run(['status', '-q'], { env: s.env });
  assert.equal(q.code, 0, q.stderr);
  assert.equal(q.stderr, '');
  assert.match(q.stdout, /default/);
  const loud = await run(['login', '--no-browser'], { env: s.env });
  assert.equal(loud.code, 0, loud.stderr);
  assert.match(loud.stderr, /Already logged in/);
  const quiet = await run(['login', '--no-browser', '-q'], { env: s.env });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
  const w = await run(['status', '--profile', 'work', '--json'], { env: s.env });
  assert.equal(w.code, 0, w.stderr);
  assert.equal(JSON.parse(w.stdout).profile, 'work');
});

// [args, what the fast path does: a profile's token (served by the front alone) or null
// (the helper must answer: the front alone then fails to start it)].
const cases = [
  [['token', '-p', 'work'], 'work'],
  [['-p', 'work', 'token'], 'work'],
  [['-p', 'default', 'token', '-p', 'work'], 'work'],
  [['token', '--profile=work', '--header'], 'work'],
  [['token', '-jq', '-pwork'], 'work'],
  [['token', '--prof', 'work', '-v', '--no-color'], 'work'],
  [['token', '-c', 'CFG', '-p', 'work', '-m', '60'], 'work'],
  [['token', '-o', 'min_valid=60', '--min-valid', '30'], 'default'],
  [['token', '-p', 'elsewhere', '-c', 'CFG'], null],
  [['token', '-o', 'issuer=http://127.0.0.1:9/realms/none'], null],
  [['token', '-p'], null],
  [['token', '-m', '-p', 'work'], null],
  [['token', '--no'], null],
  [['token', '--quiet=1'], null],
  [['token', '-p', 'work', '--', 'x'], null],
  [['token', '-o', 'nosuch=1'], null],
  [['token', '-p', '../x'], null],
];

// `token --json` says how many seconds are left: two runs a second apart differ in that alone.
// Seconds left as of expires_at, so outputs compare exactly whatever second each run was in.
const sameSecond = (out) => out.replace(/"expires_at":(\d+),"expires_in":\d+/,
  (_, at) => `"expires_at":${at},"expires_in":"<${at} - now>"`);

test('the front and the helper read the same command lines the same way', async () => {
  for (const [raw, served] of cases) {
    const args = raw.map((a) => (a === 'CFG' ? cfgFile : a));
    const what = args.join(' ');
    const front = await run(args, { env: s.env });
    const helper = await tool(HELPER, args, { LANG: 'C.UTF-8', ...s.env });
    assert.equal(front.code, helper.code, `${what}: front ${front.stderr} / helper ${helper.err}`);
    assert.equal(sameSecond(front.stdout), sameSecond(helper.out), what);
    assert.equal(front.stderr, helper.err, what);
    const a = await tool(FRONT_ALONE, args, { LANG: 'C.UTF-8', ...s.env });
    if (served) {
      assert.equal(helper.code, 0, `${what}: ${helper.err}`);
      assert.ok(helper.out.includes(tokens[served]), `${what}: ${served}'s token`);
      assert.equal(a.code, 0, `${what}: the front served it alone: ${a.err}`);
      assert.equal(sameSecond(a.out), sameSecond(helper.out), what);
    } else {
      assert.notEqual(helper.code, 0, `${what}: ${helper.out}`);
      assert.equal(a.code, 1, what);
      assert.match(a.err, /cannot run .*mlauth-helper/, what);
    }
  }
});

test('usage errors after the command name the option', async () => {
  let r = await run(['token', '-p'], { env: s.env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^mlauth: option '-p' needs a value\n$/);
  r = await run(['login', '--no'], { env: s.env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /option '--no' is ambiguous/);
  // What follows the first operand is the operand's: exec's command keeps its own -p.
  r = await run(['exec', '-q', '--', 'sh', '-c', 'echo "$0 $1"', '-p', 'x'], { env: s.env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '-p x\n');
});

test('with neither HOME nor XDG_STATE_HOME the static front asks no password database', async () => {
  // The front is a static binary: getpwuid there would need glibc's NSS modules at run time.
  const { HOME: _h, XDG_STATE_HOME: _s, ...env } = s.env;
  const a = await tool(FRONT_ALONE, ['token'], { LANG: 'C.UTF-8', ...env });
  assert.equal(a.code, 1);
  assert.match(a.err, /cannot run .*mlauth-helper/);
  const front = await run(['token'], { env });
  const helper = await tool(HELPER, ['token'], { LANG: 'C.UTF-8', ...env });
  assert.equal(front.code, helper.code);
  assert.equal(front.stdout, helper.out);
});
