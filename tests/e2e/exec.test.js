// env, exec and the Claude Code recipe, against the real provider, keyring and API.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MLAUTH_BIN, run, spawnMlauth, startAPI, stopAll } from './rig.js';
import { JWT, ageSession, login, setup, storedRecord, tool } from './fixtures.js';

after(stopAll);

// A PATH in which `mlauth` is the binary under test, as a user's shell would have it.
const PATH = `${dirname(MLAUTH_BIN)}:${process.env.PATH || '/usr/local/bin:/usr/bin:/bin'}`;

/** A provider, a private home and keyring, and a logged-in user. */
async function loggedIn(opts) {
  const s = await setup(opts);
  const r = await login(s.env, s.op);
  assert.equal(r.code, 0, r.stderr);
  return s;
}

/** The token `mlauth token` prints, without its newline. */
async function currentToken(env) {
  const t = await run(['token'], { env });
  assert.equal(t.code, 0, t.stderr);
  return t.stdout.trimEnd();
}

/** A file's NUL-separated entries (cmdline, environ). */
const entries = (buf) => buf.toString('utf8').split('\0').filter((s) => s !== '');

// ---- env ---------------------------------------------------------------------------------

test('eval "$(mlauth env)" exports the token mlauth token prints and the API base', async () => {
  const { env } = await loggedIn();
  const token = await currentToken(env);
  const r = await tool('sh', ['-c', 'eval "$(mlauth env)"; printf %s "$ANTHROPIC_AUTH_TOKEN"'], { ...env, PATH });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, token);
  assert.match(r.out, JWT);

  const e = await run(['env'], { env });
  assert.equal(e.code, 0, e.stderr);
  assert.equal(e.stdout, "export ANTHROPIC_BASE_URL='https://mlaas.virtuosgames.com/proxy/anthropic'\n"
    + `export ANTHROPIC_AUTH_TOKEN='${token}'\n`);
  assert.equal(e.stderr, '');

  const f = await run(['env', '--shell', 'fish'], { env });
  assert.equal(f.stdout, "set -gx ANTHROPIC_BASE_URL 'https://mlaas.virtuosgames.com/proxy/anthropic';\n"
    + `set -gx ANTHROPIC_AUTH_TOKEN '${token}';\n`);
  // fish is the default only for a fish user.
  const d = await run(['env'], { env: { ...env, SHELL: '/usr/bin/fish' } });
  assert.equal(d.stdout, f.stdout);
  assert.equal((await run(['env'], { env: { ...env, SHELL: '/bin/bash' } })).stdout, e.stdout);

  const bad = await run(['env', '--shell', 'csh'], { env });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--shell must be sh or fish/);
  assert.equal(bad.stdout, '');
});

test('a hostile api_base survives the quoting of sh, bash, zsh and fish and runs nothing', async () => {
  const s = await loggedIn();
  const marker = join(s.home.dir, 'pwned');
  // Quotes, command substitutions (sh and fish), variables, backslashes before quotes,
  // globs and separators: everything a shell could act on, in a URL config accepts.
  const hostile = `https://x.example.test/a'b"c$(touch ${marker})\`touch ${marker}\``
    + `(touch ${marker})$HOME\\'\\\\'\\;|&<>*?~!{a,b}[x]%#end`;
  const env = { ...s.env, MLAUTH_API_BASE: hostile, PATH };
  const token = await currentToken(env);
  const print = 'printf "%s\\n%s" "$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN"';
  const shells = [
    ['sh', ['-c', `eval "$(mlauth env)"; ${print}`]],
    ['sh', ['-c', `eval "$(mlauth env --shell sh)"; ${print}`]],
    ['bash', ['-c', `eval "$(mlauth env)"; ${print}`]],
    ['zsh', ['-f', '-c', `eval "$(mlauth env)"; ${print}`]],
    ['fish', ['--no-config', '-c', `mlauth env --shell fish | source; ${print}`]],
    ['fish', ['--no-config', '-c', `eval (mlauth env --shell fish); ${print}`]],
  ];
  for (const [sh, args] of shells) {
    const r = await tool(sh, args, env);
    assert.equal(r.code, 0, `${sh} ${args.join(' ')}: ${r.err}`);
    assert.equal(r.out, `${hostile}\n${token}`, `${sh} ${args.join(' ')}`);
    assert.ok(!existsSync(marker), `${sh} ${args.join(' ')} ran a command from the value`);
  }
});

// ---- exec --------------------------------------------------------------------------------

test('exec gives the child the stored token in its environment and nowhere else', async (t) => {
  const { env, home } = await loggedIn();
  const { dir } = home; // the child's reports go here
  const script = [
    'd=$1',
    'echo "$PPID" > "$d/ppid"',
    'cat /proc/$PPID/cmdline > "$d/parent.cmdline"',
    'cat /proc/$$/cmdline > "$d/self.cmdline"',
    'cat /proc/$$/environ > "$d/self.environ"',
    'if cat /proc/$PPID/environ > "$d/parent.environ" 2> "$d/parent.environ.err"; then',
    '  echo readable; else echo unreadable; fi > "$d/parent.environ.status"',
    'echo ready',
    'while [ ! -e "$d/go" ]; do sleep 0.05; done',
    'printf %s "$ANTHROPIC_AUTH_TOKEN"',
  ].join('\n');
  // A leftover token and base in mlauth's own environment are replaced, not doubled.
  const h = spawnMlauth(['exec', '--', 'sh', '-c', script, 'sh', dir], {
    env: { ...env, ANTHROPIC_AUTH_TOKEN: 'stale-token', ANTHROPIC_BASE_URL: 'https://stale.example' },
  });
  await h.waitFor(/^ready$/m, { stream: 'stdout' });
  // mlauth is waiting for its child now: look at it from outside as well.
  const mlauthCmdline = readFileSync(`/proc/${h.pid}/cmdline`);
  let mlauthEnviron = null;
  let mlauthEnvironError = null;
  try {
    mlauthEnviron = readFileSync(`/proc/${h.pid}/environ`);
  } catch (e) {
    mlauthEnvironError = e;
  }
  writeFileSync(join(dir, 'go'), '');
  const r = await h.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');

  const rec = await storedRecord(env);
  const token = rec.access_token;
  assert.match(token, JWT);
  assert.equal(r.stdout, `ready\n${token}`);

  assert.equal(Number(readFileSync(join(dir, 'ppid'), 'utf8')), h.pid, 'the child\'s parent is mlauth');
  const childEnv = entries(readFileSync(join(dir, 'self.environ')));
  // The check can see a token: the child's own environment has it, exactly once.
  assert.deepEqual(childEnv.filter((v) => v.startsWith('ANTHROPIC_AUTH_TOKEN=')), [`ANTHROPIC_AUTH_TOKEN=${token}`]);
  assert.deepEqual(childEnv.filter((v) => v.startsWith('ANTHROPIC_BASE_URL=')),
    ['ANTHROPIC_BASE_URL=https://mlaas.virtuosgames.com/proxy/anthropic']);
  // Each command line is exactly what was typed: nothing added, the token least of all.
  const child = ['sh', '-c', script, 'sh', dir];
  for (const [what, buf, want] of [
    ['mlauth cmdline (seen by the child)', readFileSync(join(dir, 'parent.cmdline')), [MLAUTH_BIN, 'exec', '--', ...child]],
    ['mlauth cmdline (seen by the test)', mlauthCmdline, [MLAUTH_BIN, 'exec', '--', ...child]],
    ['child cmdline', readFileSync(join(dir, 'self.cmdline')), child],
  ]) {
    assert.deepEqual(entries(buf), want, what);
    assert.ok(!buf.toString('utf8').includes(token), `the token is in the ${what}`);
  }

  // mlauth is non-dumpable, so its environ needs CAP_SYS_PTRACE over it: root has that
  // (CI runs as root), another user not; either way the token must not be in it.
  const root = process.getuid() === 0;
  const status = readFileSync(join(dir, 'parent.environ.status'), 'utf8').trim();
  const seenByChild = readFileSync(join(dir, 'parent.environ'));
  for (const [who, readable, buf, why] of [
    ['child', status === 'readable', seenByChild, readFileSync(join(dir, 'parent.environ.err'), 'utf8')],
    ['test', mlauthEnviron !== null, mlauthEnviron, mlauthEnvironError?.code],
  ]) {
    t.diagnostic(`mlauth's /proc/PID/environ read by the ${who}: ${readable ? 'readable' : `unreadable (${why})`}`);
    assert.equal(readable, root, `${who}: readable exactly when root (${why})`);
    if (readable) {
      const vars = entries(buf);
      assert.ok(vars.includes('ANTHROPIC_AUTH_TOKEN=stale-token'), `${who} read mlauth's real environ`);
      assert.ok(!buf.toString('utf8').includes(token), `the token is in mlauth's environ (read by the ${who})`);
    } else {
      assert.match(String(why), /Permission denied|EACCES|EPERM|Operation not permitted/, `${who}: ${why}`);
    }
  }
});

test('exec passes on no descriptor of its own (lock, keyring bus, sockets)', async () => {
  const { env } = await loggedIn();
  // ls is the child: its descriptors are the inherited ones plus the directory it reads.
  // Whatever the test runner itself inherited is the baseline: ls started without mlauth.
  const fds = (out) => out.split('\n').map((l) => /(\d+) -> (.*)$/.exec(l)).filter(Boolean)
    .filter(([, , target]) => !/^\/proc\/\d+\/fd$/.test(target))
    .map(([, fd, target]) => `${fd} ${target.replace(/\[\d+\]$/, '')}`);
  const base = await tool('ls', ['-l', '/proc/self/fd/'], {});
  const r = await run(['exec', '--', 'ls', '-l', '/proc/self/fd/'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fds(r.stdout).sort(), fds(base.out).sort());
  assert.ok(fds(r.stdout).length >= 3, r.stdout);
});

test('the child starts with default signal dispositions and an empty signal mask', async () => {
  const { env } = await loggedIn();
  // grep is the child itself (a shell would block every signal around its own forks).
  const r = await run(['exec', '--', 'grep', '-E', '^Sig(Ign|Blk):', '/proc/self/status'], { env });
  assert.equal(r.code, 0, r.stderr);
  const field = (name) => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(r.stdout)[1]}`);
  const bit = (sig) => 1n << BigInt(sig - 1);
  // HUP, INT, PIPE (GIO ignores it inside mlauth), TERM, CHLD.
  for (const sig of [1, 2, 13, 15, 17]) assert.equal(field('SigIgn') & bit(sig), 0n, `signal ${sig} ignored: ${r.stdout}`);
  assert.equal(field('SigBlk'), 0n, r.stdout);
});

test('exec lets the child call the API with the token and base it was given', async () => {
  const s = await loggedIn();
  const api = await startAPI({ issuer: s.op.issuer });
  const js = `fetch(process.env.ANTHROPIC_BASE_URL + '/v1/messages', {
    method: 'POST',
    headers: { authorization: 'Bearer ' + process.env.ANTHROPIC_AUTH_TOKEN, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
  }).then((r) => { console.log(r.status); process.exit(r.status === 200 ? 0 : 1); });`;
  const r = await run(['exec', '--', process.execPath, '-e', js], { env: { ...s.env, MLAUTH_API_BASE: api.base } });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stdout, '200\n');
  const reqs = await api.requests();
  assert.equal(reqs.length, 1);
  assert.equal(reqs[0].authorized, true);
});

test('exec exits with the child\'s status, 128+N when signal N killed it', async () => {
  const { env } = await loggedIn();
  for (const [args, code] of [
    [['sh', '-c', 'exit 7'], 7],
    [['sh', '-c', 'exit 0'], 0],
    [['sh', '-c', 'exit 255'], 255],
    [['sh', '-c', 'kill -TERM $$'], 143],
    [['sh', '-c', 'kill -KILL $$'], 137],
  ]) {
    const r = await run(['exec', '--', ...args], { env });
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.signal, null);
    assert.equal(r.stderr, '');
  }
});

test('SIGTERM, SIGINT and SIGHUP sent to mlauth reach the child, once', async () => {
  const s = await loggedIn();
  // Each signal is sent the moment the child says it is ready, which is often before
  // mlauth's posix_spawnp has returned: several rounds, so that window is hit too.
  for (let round = 0; round < 4; round++) {
    for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
      const marker = join(s.home.dir, `got-${sig}-${round}`);
      const name = sig.slice(3);
      // The trap only notes the signal: the child decides when to end, and how.
      const script = `trap 'echo ${name} >> "$1"' ${name}
echo ready
while [ ! -s "$1" ]; do sleep 0.05; done
sleep 0.2
exit 5`;
      const h = spawnMlauth(['exec', '--', 'sh', '-c', script, 'sh', marker], { env: s.env });
      await h.waitFor(/^ready$/m, { stream: 'stdout' });
      h.kill(sig); // to mlauth only, not its process group
      const timer = setTimeout(() => h.kill('SIGKILL', { group: true }), 10_000);
      const r = await h.done;
      clearTimeout(timer);
      assert.equal(r.code, 5, `${sig} round ${round}: ${r.signal || ''} ${r.stderr}`);
      assert.equal(readFileSync(marker, 'utf8'), `${name}\n`, `${sig} round ${round}`);
    }
  }
});

test('a missing command exits 127, a non-executable one 126', async () => {
  const s = await loggedIn();
  let r = await run(['exec', '--', 'mlauth-no-such-command'], { env: s.env });
  assert.equal(r.code, 127);
  assert.equal(r.stderr, 'mlauth exec: mlauth-no-such-command: command not found\n');
  assert.equal(r.stdout, '');

  r = await run(['exec', join(s.home.dir, 'nowhere', 'cmd')], { env: s.env });
  assert.equal(r.code, 127);
  assert.match(r.stderr, /^mlauth exec: .*\/nowhere\/cmd: No such file or directory\n$/);

  const script = join(s.home.dir, 'not-executable');
  writeFileSync(script, `#!/bin/sh\ntouch '${script}.ran'\n`);
  chmodSync(script, 0o644);
  r = await run(['exec', '--', script], { env: s.env });
  assert.equal(r.code, 126);
  assert.equal(r.stderr, `mlauth exec: ${script}: Permission denied\n`);
  // Found in PATH but not executable: 126 too, as a shell says.
  r = await run(['exec', 'not-executable'], { env: { ...s.env, PATH: `${s.home.dir}:${PATH}` } });
  assert.equal(r.code, 126);
  assert.match(r.stderr, /^mlauth exec: not-executable: Permission denied\n$/);
  assert.ok(!existsSync(`${script}.ran`));
});

test('exec without a session exits 3 and never runs the command', async () => {
  const { env, home } = await setup();
  const marker = join(home.dir, 'ran');
  const r = await run(['exec', '--', 'sh', '-c', `touch '${marker}'`], { env });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /not logged in/);
  assert.equal(r.stdout, '');
  assert.ok(!existsSync(marker));
});

test('exec without a command, or with a bad option, is a usage error', async () => {
  const { env } = await setup({ keyring: false });
  let r = await run(['exec'], { env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^mlauth exec: missing the command to run\nusage: mlauth exec /);
  r = await run(['exec', '--'], { env });
  assert.equal(r.code, 2);
  r = await run(['exec', '--min-valid', 'soon', 'true'], { env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--min-valid needs whole seconds/);
  r = await run(['help', 'exec'], { env });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: mlauth exec \[--proxy\] \[--min-valid SECS\] \[--\] CMD \[ARGS\.\.\.\]$/m);
  assert.match(r.stdout, /fixed for CMD's life/);
});

// ---- Claude Code -------------------------------------------------------------------------

test('the apiKeyHelper recipe prints the bare token, which the API accepts', async () => {
  const s = await loggedIn();
  const api = await startAPI({ issuer: s.op.issuer });
  // Claude Code runs the helper string with /bin/sh and takes stdout as the key.
  const r = await tool('/bin/sh', ['-c', 'mlauth token --min-valid 900'], { ...s.env, PATH });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '');
  assert.match(r.out, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\n$/);
  const token = r.out.slice(0, -1);
  assert.equal(token, (await storedRecord(s.env)).access_token);
  const res = await fetch(`${api.base}/v1/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }),
  });
  assert.equal(res.status, 200);
  const reqs = await api.requests();
  assert.equal(reqs.at(-1).authorized, true);
});

// ---- --min-valid: token, env and exec --------------------------------------------------

/** Runs `mlauth CMD [--min-valid N]` and returns the token it handed out (or the result). */
async function tokenVia(cmd, env, minValid) {
  const opt = minValid === undefined ? [] : ['--min-valid', String(minValid)];
  const args = {
    token: ['token', ...opt],
    env: ['env', '--shell', 'sh', ...opt],
    exec: ['exec', ...opt, '--', 'sh', '-c', 'printf %s "$ANTHROPIC_AUTH_TOKEN"'],
  }[cmd];
  const r = await run(args, { env });
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  assert.equal(r.stderr, '');
  if (cmd === 'token') return r.stdout.replace(/\n$/, '');
  if (cmd === 'env') return /^export ANTHROPIC_AUTH_TOKEN='([^']+)'$/m.exec(r.stdout)[1];
  return r.stdout;
}

for (const cmd of ['token', 'env', 'exec']) {
  test(`${cmd} --min-valid N refreshes a token with less than N seconds left, and only then`, async () => {
    const { env, op } = await loggedIn();
    const before = await ageSession(env, 1000); // fresh for the default 300 s
    await op.resetCounters();
    assert.equal(await tokenVia(cmd, env), before.access_token);
    assert.equal(await tokenVia(cmd, env, 900), before.access_token);
    assert.equal((await op.counters()).refresh, 0);
    const fresh = await tokenVia(cmd, env, 1200);
    assert.notEqual(fresh, before.access_token);
    assert.match(fresh, JWT);
    assert.equal((await op.counters()).refresh, 1);
    assert.equal((await storedRecord(env)).access_token, fresh);
  });

  test(`${cmd} --min-valid is capped at half the token's lifetime`, async () => {
    const { env, op } = await loggedIn();
    // An hour-long token: whatever is asked for, 30 minutes left are enough.
    const before = await ageSession(env, 1900);
    await op.resetCounters();
    assert.equal(await tokenVia(cmd, env, 7200), before.access_token);
    assert.equal(await tokenVia(cmd, env, 31_536_000), before.access_token);
    assert.equal((await op.counters()).refresh, 0, 'refreshed with more than half the life left');
    await ageSession(env, 1700);
    const fresh = await tokenVia(cmd, env, 7200);
    assert.notEqual(fresh, before.access_token);
    // The new token is not refreshed again at once, as an uncapped 7200 s would have it.
    assert.equal(await tokenVia(cmd, env, 7200), fresh);
    assert.equal((await op.counters()).refresh, 1);
  });

  test(`${cmd} --min-valid takes whole seconds up to a year`, async () => {
    const { env } = await setup({ keyring: false });
    for (const bad of ['31536001', '-5', 'soon', '1.5', '']) {
      const r = await run([cmd, '--min-valid', bad, ...(cmd === 'exec' ? ['true'] : [])], { env });
      assert.equal(r.code, 2, `--min-valid '${bad}': ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.split('\n')[0], `mlauth ${cmd}: --min-valid needs whole seconds, not '${bad}'`);
    }
  });
}

// ---- exec before the command starts -------------------------------------------------------

test('env without a session exits 3 and prints nothing', async () => {
  const { env } = await setup();
  for (const shell of ['sh', 'fish']) {
    const r = await run(['env', '--shell', shell], { env });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^mlauth: not logged in \(profile default\)/);
  }
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  test(`exec ${sig}ed while it fetches the token: exit 130, the command never starts`, async () => {
    const { env, op, home } = await loggedIn();
    await ageSession(env, -60);
    const marker = join(home.dir, 'ran');
    // The provider holds the refresh until mlauth is gone: the signal lands in the fetch.
    await op.set({ hold: { grant: 'refresh_token', when: 'before' } });
    const h = spawnMlauth(['exec', '--', 'sh', '-c', `touch '${marker}'`], { env });
    await op.until('held', 1, { unless: h.done });
    h.kill(sig);
    const r = await h.done;
    assert.equal(r.code, 130, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /interrupted/);
    assert.ok(!existsSync(marker), 'the command ran');
  });
}

test('exec with the provider down and the token expired: exit 4, the command never starts', async () => {
  const { env, op, home } = await loggedIn();
  await ageSession(env, -60);
  await op.stop();
  const marker = join(home.dir, 'ran');
  const r = await run(['exec', '--', 'sh', '-c', `touch '${marker}'`], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^mlauth: cannot reach /);
  assert.ok(!existsSync(marker), 'the command ran');
});

test('a signal ignored when exec started (nohup) stays ignored for the command; the others do not', async () => {
  const { env } = await loggedIn();
  // As nohup does: SIGHUP ignored, then mlauth exec'ed with that disposition.
  const r = await tool('sh', ['-c', 'trap "" HUP; exec "$0" exec -- grep -E "^SigIgn:" /proc/self/status', MLAUTH_BIN], env);
  assert.equal(r.code, 0, r.err);
  const ign = BigInt(`0x${/^SigIgn:\s*([0-9a-f]+)$/m.exec(r.out)[1]}`);
  const bit = (n) => 1n << BigInt(n - 1);
  assert.equal(ign & bit(1), bit(1), `SIGHUP not ignored: ${r.out}`);
  for (const n of [2, 13, 15]) assert.equal(ign & bit(n), 0n, `signal ${n} ignored: ${r.out}`);
});
