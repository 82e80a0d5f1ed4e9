// The moments a person meets mlauth (issue 15): what it says when the keyring is away, when
// a wait runs long, when something fails, and the small courtesies of a polished CLI.
// Terminal behaviour has its tests in term.test.js (a real terminal, tmux).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { REPO, run, spawnMlauth, startAPI, stopAll, tmpEnv } from './rig.js';
import { forgetCache, login, setup, sleep, tool } from './fixtures.js';
import { stopTerminals, terminal } from './tty.js';
import { startHostile } from '../peers/hostile/server.js';

const hostiles = [];
after(async () => {
  await stopTerminals();
  await Promise.all(hostiles.map((h) => h.close()));
  await stopAll();
});

const NO_KEYRING = /no keyring \(Secret Service\) answered \(cannot connect to the session bus: [^)]*\)/;

test('a keyring that stopped answering: commands say so, not just "not logged in"; login says where the session goes', async () => {
  const { op, kr, env } = await setup();
  assert.equal((await login(env, op)).code, 0);
  await kr.stop(); // the session stays in the keyring, out of reach
  forgetCache(op.issuer); // the kernel cache would serve the token without asking
  for (const args of [['status'], ['token'], ['send', 'hi']]) {
    const r = await run(args, { env });
    assert.equal(r.code, 3, `${args}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, NO_KEYRING, args.join(' '));
    assert.match(r.stderr, /and the file \S+default\.json holds no session; if yours is in a keyring, start or unlock it and retry, else run mlauth login/);
  }
  // The login that follows names the keyring, the file and its mode, and how to choose it.
  const l = await login(env, op);
  assert.equal(l.code, 0, l.stderr);
  const warn = l.stderr.split('\n').filter((s) => s.includes('warning:'));
  assert.equal(warn.length, 1, l.stderr);
  assert.match(warn[0], NO_KEYRING);
  assert.match(warn[0], /the session will be kept in file \S+\/mlauth\/default\.json \(mode 0600\) instead; to choose that on purpose and drop this warning, set store = file \(in \[default\] of \S+\/mlauth\/config, or MLAUTH_STORE=file\)$/);
  assert.doesNotMatch(warn[0], /session bus: [^)]*\)[^(]*session bus/, 'the bus named once, inside the reason');
  // Chosen on purpose: no warning.
  const f = await login({ ...env, MLAUTH_STORE: 'file' }, op, { args: ['--force'] });
  assert.equal(f.code, 0, f.stderr);
  assert.doesNotMatch(f.stderr, /warning:/);
});

test('without any session bus the warning still says keyring, file, mode and store = file', async () => {
  const { op, env } = await setup({ keyring: false });
  const r = await login(env, op);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^mlauth: warning: no keyring \(Secret Service\) answered \(no session bus \(DBUS_SESSION_BUS_ADDRESS is not set\)\): the session will be kept in file \S+ \(mode 0600\) instead; to choose that on purpose and drop this warning, set store = file/m);
});

// ---- errors that name their cause (issue 15 item 7) ------------------------------------------

test('an identity provider that is down: the error says it is the provider, and what to check', async () => {
  const { op, env } = await setup({ keyring: false });
  await op.stop(); // its port is closed now
  const r = await run(['login', '--no-browser'], { env: { ...env, MLAUTH_STORE: 'file' } });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /^mlauth: cannot reach http:\/\/127\.0\.0\.1:\d+: .*; is the identity provider up there, and the issuer setting right\? \(mlauth doctor checks the network, proxy and TLS\)\n$/);
});

test('a messages API that is down: the error names the API and api_base', async () => {
  const { op, env } = await setup({ keyring: false });
  const api = await startAPI({ issuer: op.issuer });
  const e = { ...env, MLAUTH_STORE: 'file', MLAUTH_API_BASE: api.base };
  assert.equal((await login(e, op)).code, 0);
  await api.stop();
  const r = await run(['send', 'hi'], { env: e });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /cannot reach http:\/\/127\.0\.0\.1:\d+: .*; is the messages API up there, and the api_base setting right\?/);
});

test('a login denied at the provider keeps the provider\'s own description', async () => {
  const { op, env } = await setup({ keyring: false });
  const r = await login({ ...env, MLAUTH_STORE: 'file' }, op, { deny: true });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^mlauth: login denied at the provider \([^)]+\): run mlauth login to try again$/m);
});

test('send -v: a 401 whose refresh fails says there was a 401', async () => {
  const { op, env } = await setup({ keyring: false });
  const api = await startAPI({ issuer: op.issuer });
  const e = { ...env, MLAUTH_STORE: 'file', MLAUTH_API_BASE: api.base };
  for (const v of [['-v'], []]) {
    assert.equal((await login(e, op, { args: ['--force'] })).code, 0);
    await op.revokeAll(); // the refresh token is dead: the refresh will fail
    await api.script([{ status: 401, body: { detail: 'Token has been revoked' } }]);
    const r = await run([...v, 'send', 'x'], { env: e });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^mlauth: the messages API refused the token \(HTTP 401\), and no new one could be had: session expired or revoked\b.*: run mlauth login$/m);
    if (v.length) assert.match(r.stderr, /the messages API refused the token \(HTTP 401\); getting a new one/);
  }
});

// ---- no silent waits (item 3) and doctor's report (item 5) ------------------------------------

/** A provider that accepts the connection and then says nothing for a minute. */
async function hangingProvider() {
  const h = await startHostile();
  hostiles.push(h);
  h.set({ discovery: { kind: 'delay', ms: 60_000, then: { kind: 'good' } } });
  return h;
}

/** Resolves once fn() is true, checking every 50 ms (for state the test cannot await). */
async function until(fn, what, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('login on a terminal: a wait past a second says what it is contacting, erased after', async () => {
  const h = await hangingProvider();
  const home = tmpEnv();
  const t = await terminal(['login', '--no-browser'], { ...home.env, MLAUTH_ISSUER: h.issuer, MLAUTH_STORE: 'file', TERM: 'xterm-256color' });
  try {
    await t.waitFor(new RegExp(`^Contacting the identity provider at ${h.origin.replace(/[.]/g, '\\.')}\\.\\.\\.$`, 'm'));
    assert.equal(h.count('discovery'), 1);
    await t.keys('C-c');
    assert.equal(await t.dead(), 130);
    const screen = await t.screen();
    assert.doesNotMatch(screen, /Contacting/, 'the line is erased when the wait ends');
    assert.match(screen, /^mlauth: interrupted/m);
  } finally {
    await t.stop();
  }
});

test('doctor on a terminal: each check is printed as it ends; a hanging provider gets a short timeout', async () => {
  const h = await hangingProvider();
  const home = tmpEnv();
  const env = { ...home.env, MLAUTH_ISSUER: h.issuer, MLAUTH_API_BASE: h.base, MLAUTH_STORE: 'file', TERM: 'xterm-256color' };
  const t = await terminal(['doctor'], env);
  try {
    // While discovery waits on the provider, the checks before it are on the screen already.
    await until(() => h.count('discovery') === 1, 'the discovery request');
    const during = await t.waitFor(/^Checking the identity provider at http:\/\/127\.0\.0\.1:\d+\.\.\.$/m);
    assert.ok(await t.alive(), 'doctor is still waiting');
    assert.match(during.input, /^ok +kernel_keyring /m);
    assert.doesNotMatch(during.input, /^\S+ +discovery /m);
    assert.equal(await t.dead(), 1);
    const screen = await t.screen();
    assert.doesNotMatch(screen, /Checking the identity/, 'the waiting line is erased');
    // The request's own timer says how long doctor waited: its short timeout, not 30 s.
    assert.match(screen, /^fail +discovery +cannot reach http:\/\/127\.0\.0\.1:\d+: Operation timed out after\s+5\d\d\d\s+milliseconds/m);
    assert.match(screen, /^skip +clock +the provider did not answer/m);
  } finally {
    await t.stop();
  }
});

test('doctor on an 80-column terminal wraps at word boundaries; a pipe gets whole lines', async () => {
  const { op, env } = await setup({ keyring: false });
  const e = { ...env, MLAUTH_API_BASE: 'http://127.0.0.1:9/proxy/anthropic' };
  const piped = await run(['doctor'], { env: e });
  const t = await terminal(['doctor'], { ...e, TERM: 'xterm-256color' }, { cols: 80, rows: 60 });
  try {
    assert.equal(await t.dead(), piped.code);
    const lines = (await t.screen({ join: false })).split('\n');
    assert.ok(lines.every((l) => l.length <= 80), 'no line past the width');
    // Every line of the pipe, re-joined from the screen: the same words, cut only at spaces.
    const report = piped.stdout.trimEnd().split('\n');
    const rejoined = [];
    for (const l of lines) {
      if (/^ {22}\S/.test(l) && !/^ {22}fix: /.test(l) && rejoined.length) rejoined[rejoined.length - 1] += ` ${l.trim()}`;
      else if (/^ {27}\S/.test(l) && rejoined.length) rejoined[rejoined.length - 1] += ` ${l.trim()}`;
      else rejoined.push(l);
    }
    assert.ok(report.some((l) => l.length > 80), 'the report has lines to wrap');
    for (const l of report) assert.ok(rejoined.includes(l), `"${l}" is on the screen, wrapped at spaces:\n${lines.join('\n')}`);
  } finally {
    await t.stop();
  }
  void op;
});

test('doctor reports ANTHROPIC_API_KEY and a wrong ANTHROPIC_BASE_URL both; fixes never repeat the detail', async () => {
  const { env } = await setup({ keyring: false });
  const e = {
    ...env, MLAUTH_API_BASE: 'http://127.0.0.1:9/proxy/anthropic',
    ANTHROPIC_API_KEY: 'sk-ant-test-not-a-real-key', ANTHROPIC_BASE_URL: 'http://127.0.0.1:8/elsewhere',
  };
  const r = await run(['doctor', '--json'], { env: e });
  const o = JSON.parse(r.stdout);
  const envs = o.checks.filter((c) => c.name === 'environment');
  assert.deepEqual(envs.map((c) => c.status), ['warn', 'warn']);
  assert.match(envs[0].detail, /^ANTHROPIC_API_KEY is set/);
  assert.match(envs[1].detail, /^ANTHROPIC_BASE_URL is http:\/\/127\.0\.0\.1:8\/elsewhere, not api_base/);
  assert.ok(!r.stdout.includes('sk-ant-test-not-a-real-key'));
  for (const c of o.checks) {
    if (c.fix) assert.ok(!c.detail.includes(c.fix), `${c.name}: the fix repeats the detail: ${c.detail} / ${c.fix}`);
  }
  // The session check names the advice once: not logged in, with the fix on its own line.
  const { env: kenv } = await setup();
  const k = JSON.parse((await run(['doctor', '--json'], { env: { ...kenv, MLAUTH_API_BASE: 'http://127.0.0.1:9/x' } })).stdout);
  const s = k.checks.find((c) => c.name === 'session');
  assert.equal(s.detail, 'not logged in (profile default)');
  assert.equal(s.fix, 'run mlauth login');
});

// ---- the small ones (item 8) --------------------------------------------------------------

test('help help, help version and version answer; -o with an unknown key lists the valid ones', async () => {
  const home = tmpEnv();
  let r = await run(['help', 'help'], { env: home.env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage: mlauth help \[COMMAND\]\n/);
  r = await run(['help', 'version'], { env: home.env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^usage: mlauth version\n/);
  r = await run(['version'], { env: home.env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^mlauth \d+\.\d+\.\d+\n$/);
  assert.equal(r.stdout, (await run(['--version'], { env: home.env })).stdout);
  r = await run(['--help'], { env: home.env });
  assert.match(r.stdout, /^ {2}version +print the version$/m);
  r = await run(['versoin'], { env: home.env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /did you mean 'version'/);
  r = await run(['-o', 'foo=bar', 'config'], { env: home.env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^mlauth: unknown setting 'foo' \(valid settings: issuer, client_id, scope, api_base, .*timeout.*\)\n$/);
});

test('-m is --min-valid wherever it exists: send takes --model only', async () => {
  const home = tmpEnv();
  const h = await run(['send', '--help'], { env: home.env });
  assert.match(h.stdout, /^ {6}--model MODEL/m);
  assert.doesNotMatch(h.stdout, /-m,/);
  for (const cmd of ['token', 'exec', 'env']) {
    const c = await run([cmd, '--help'], { env: home.env });
    assert.match(c.stdout, /-m, --min-valid/, cmd);
  }
  const r = await run(['send', '-m', 'x', 'hi'], { env: home.env });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '-m'/);
});

test('login: says it opens the browser; greets in two short lines; status names the user the same way', async () => {
  const { op, env } = await setup({ keyring: false });
  const bin = join(tmpEnv().dir, 'bin');
  mkdirSync(bin);
  const opened = join(bin, 'opened');
  writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$1" > ${opened}.new && mv ${opened}.new ${opened}\n`, { mode: 0o755 });
  const e = { ...env, MLAUTH_STORE: 'file', DISPLAY: ':99', PATH: `${bin}:${process.env.PATH}` };
  const h = spawnMlauth(['login'], { env: e });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await h.waitFor(/^Opening the link in your browser \(--no-browser: never\)\.$/m, { stream: 'stderr' });
  await until(() => existsSync(opened), 'xdg-open to be run');
  assert.ok(readFileSync(opened, 'utf8').includes(m[1]), 'the browser got the link with the code');
  await op.approve(m[1]);
  const r = await h.done;
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2, r.stdout);
  for (const l of lines) assert.ok(l.length <= 80, `${l.length} characters: ${l}`);
  assert.match(lines[0], /^Logged in as Alice Example \(alice@example\.test\) to 127\.0\.0\.1:\d+\/realms\/test$/);
  const s = await run(['status'], { env: e });
  assert.match(s.stdout, /^User: +Alice Example \(alice@example\.test\)$/m);
  assert.match(s.stdout, /^Username: +alice$/m);
});

test('at 40 columns the countdown is what stays on the status line', async () => {
  const { op, env } = await setup({ keyring: false });
  const t = await terminal(['login', '--no-browser'], { ...env, MLAUTH_STORE: 'file', TERM: 'xterm-256color' }, { cols: 40, rows: 30 });
  try {
    const m = await t.waitFor(/^\S Waiting; expires in \d+:\d\d$/m);
    assert.ok(m[0].length < 40, m[0]);
    const code = (await t.waitFor(/shows the code (\S+)/))[1];
    await op.approve(code);
    assert.equal(await t.dead(), 0);
  } finally {
    await t.stop();
  }
});

test('fish completes each profile with its own description', async () => {
  const home = tmpEnv();
  mkdirSync(join(home.env.XDG_CONFIG_HOME, 'mlauth'), { recursive: true });
  writeFileSync(join(home.env.XDG_CONFIG_HOME, 'mlauth', 'config'),
    '[default]\nmin_valid = 600\n[staging]\nissuer = https://kc.example.com/realms/s\n[ci]\nstore = file\n');
  const r = await tool('fish', ['-c', 'source $argv[1]; and complete -C $argv[2]', join(REPO, 'completions/mlauth.fish'), 'mlauth -p '], home.env);
  assert.equal(r.code, 0, r.err);
  const rows = r.out.trim().split('\n').sort();
  assert.deepEqual(rows, ['ci\tProfile ci', 'default\tProfile default', 'staging\tProfile staging: https://kc.example.com/realms/s']);
});
