// The user documentation: the man page renders without a warning, the bash, zsh and fish
// completions load and complete what they should, every command and option of
// `mlauth help` is in the man page and the completions, and `make install` / `make uninstall`
// put every file in place and take it away again, with an installed mlauth that finds its
// helper under libexec.
//
// Every child runs with a minimal environment (PATH, LANG and a private HOME/XDG_*), so
// nothing of the caller's shell, man or fish configuration leaks in; `make` alone keeps the
// caller's environment, so that under `make e2e` / `make asan` it sees the same build tree
// and flags as the run that built the binaries.
import assert from 'node:assert/strict';
import {
  chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync,
  statSync, utimesSync, writeFileSync,
} from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { execProgram, sleep } from './fixtures.js';
import { REPO, run, stopAll, tmpEnv } from './rig.js';
import { stopTerminals, terminal } from './tty.js';

after(async () => {
  await stopTerminals();
  await stopAll();
});

const MAN = join(REPO, 'man/mlauth.1');
const BASH = join(REPO, 'completions/mlauth.bash');
const ZSH = join(REPO, 'completions/_mlauth');
const FISH = join(REPO, 'completions/mlauth.fish');
const DEFAULT_ISSUER = 'https://kcpro.virtuosgames.com/realms/Virtuos';

const exec = (cmd, args, opts = {}) => execProgram(cmd, args, { cwd: REPO, ...opts });

const report = (r) => `exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** A private HOME and XDG_* (removed by stopAll), with PATH and LANG: a clean environment. */
function cleanEnv(extra = {}) {
  const home = tmpEnv();
  return {
    home,
    env: {
      PATH: process.env.PATH || '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', ...home.env, ...extra,
    },
  };
}

// ---- the man page ---------------------------------------------------------------------

test('the man page renders without a warning', async () => {
  const { env } = cleanEnv();
  const r = await exec('man', ['--warnings', '-E', 'UTF-8', '-l', 'man/mlauth.1'], { env });
  assert.equal(r.code, 0, report(r));
  assert.equal(r.stderr, '', report(r));
  // It did render: the sections are there.
  for (const s of ['NAME', 'SYNOPSIS', 'COMMANDS', 'FILES', 'STORAGE', 'EXIT STATUS', 'EXAMPLES'])
    assert.match(r.stdout, new RegExp(`^${s}$`, 'm'));
});

/** The man page's source with its escapes for hyphens, breaks and non-hyphenation undone. */
function manSource() {
  return readFileSync(MAN, 'utf8').replace(/\\-/g, '-').replace(/\\[%:&]/g, '');
}

test('the man page documents env, exec, doctor, login --qr, the cache and the helper', () => {
  const man = manSource();
  // The examples.
  assert.match(man, /^eval "\$\(mlauth env\)"$/m);
  assert.match(man, /^mlauth exec -- python script\.py$/m);
  assert.match(man, /^mlauth doctor$/m);
  // login --qr, and the terminal manners.
  assert.match(man, /^\.B --qr$/m);
  assert.match(man, /^\.B NO_COLOR$/m);
  assert.match(man, /Waiting for approval\.\.\./);
  // The kernel keyring cache and the helper.
  assert.match(man, /^\.SS The kernel keyring cache$/m);
  assert.match(man, /^\.BI mlauth: profile : client_id : issuer$/m);
  assert.match(man, /^\.B \/usr\/local\/libexec\/mlauth\/mlauth-helper$/m);
  // Claude Code's trap, which doctor reports.
  assert.match(man, /ANTHROPIC_API_KEY/);
});

// ---- every command and option is documented --------------------------------------------

/** { command: [{ short, long }] } from `mlauth --help` and `mlauth help COMMAND`. */
async function commandsAndOptions() {
  const { env } = cleanEnv();
  const top = await run(['--help'], { env });
  assert.equal(top.code, 0, report(top));
  const list = top.stdout.split('\nCommands:\n')[1].split('\n\n')[0];
  const commands = [...list.matchAll(/^ {2}([a-z]+) /gm)].map((m) => m[1]).filter((c) => c !== 'help');
  assert.ok(commands.length >= 9, `commands in mlauth --help: ${commands}`);
  const out = {};
  for (const c of commands) {
    const h = await run(['help', c], { env });
    assert.equal(h.code, 0, report(h));
    const section = h.stdout.split('\nOptions:\n')[1]?.split('\n\n')[0] ?? '';
    out[c] = [...section.matchAll(/^ +(?:-([A-Za-z]), )?--([a-z][a-z-]*)/gm)]
      .map((m) => ({ short: m[1] ?? null, long: m[2] }));
  }
  return out;
}

/**
 * The top-level entries of the man page's COMMANDS section, { name: text }: each begins with
 * a .TP outside any .RS/.RE and runs to the next one (the checks of doctor, say, are nested).
 */
function manCommands(man) {
  const section = man.split(/^\.SH COMMANDS$/m)[1].split(/^\.SH /m)[0].split('\n');
  const entries = {};
  let depth = 0;
  let current = null;
  for (let i = 0; i < section.length; i++) {
    const line = section[i];
    if (/^\.RS\b/.test(line)) depth++;
    else if (/^\.RE\b/.test(line)) depth--;
    else if (line === '.TP' && depth === 0) {
      const m = /^\.BR? (\S+)/.exec(section[i + 1] ?? '');
      current = m ? m[1] : null;
      if (current !== null) entries[current] = '';
    }
    if (current !== null) entries[current] += `${line}\n`;
  }
  return entries;
}

/** The text between `start` (a regex matching a line) and the first match of `end` after it. */
function slice(text, start, end) {
  const m = start.exec(text);
  if (!m) return null;
  const rest = text.slice(m.index + m[0].length);
  const e = end.exec(rest);
  return e ? rest.slice(0, e.index) : rest;
}

test('every command and option of mlauth help is in the man page and the completions', async () => {
  const cmds = await commandsAndOptions();
  const man = manSource();
  const entries = manCommands(man);
  const bash = readFileSync(BASH, 'utf8');
  const zsh = readFileSync(ZSH, 'utf8');
  const fish = readFileSync(FISH, 'utf8');
  const missing = [];

  for (const [c, opts] of Object.entries(cmds)) {
    const manEntry = entries[c] ?? null;
    const bashEntry = slice(bash, new RegExp(`^\\t\\t${c}\\)`, 'm'), /;;/);
    const zshEntry = slice(zsh, new RegExp(`^ +\\(${c}\\)$`, 'm'), /;;/);
    const fishEntry = fish.split('\n').filter((l) => l.includes(`__mlauth_using ${c}`)).join('\n');

    if (manEntry === null) missing.push(`man page: no entry for ${c}`);
    if (!new RegExp(`^.SY "mlauth ${c}"$`, 'm').test(man)) missing.push(`man page: ${c} not in SYNOPSIS`);
    if (!new RegExp(`^_mlauth_commands=".*\\b${c}\\b`, 'm').test(bash)) missing.push(`bash: command ${c}`);
    if (bashEntry === null) missing.push(`bash: no case for ${c}`);
    if (!zsh.includes(`'${c}:`)) missing.push(`zsh: command ${c}`);
    if (zshEntry === null) missing.push(`zsh: no case for ${c}`);
    if (!new RegExp(`-n __mlauth_needs_command -a ${c} `).test(fish)) missing.push(`fish: command ${c}`);

    for (const { short, long } of opts) {
      const lo = new RegExp(`--${long}(?![a-z-])`);
      if (manEntry !== null && !lo.test(manEntry)) missing.push(`man page: ${c} --${long}`);
      if (bashEntry !== null && !lo.test(bashEntry)) missing.push(`bash: ${c} --${long}`);
      if (zshEntry !== null && !lo.test(zshEntry)) missing.push(`zsh: ${c} --${long}`);
      if (!new RegExp(`-l ${long}(?![a-z-])`).test(fishEntry)) missing.push(`fish: ${c} --${long}`);
      if (short === null) continue;
      const so = new RegExp(`(?:^|[^\\w-])-${short}(?![\\w-])`);
      if (manEntry !== null && !so.test(manEntry)) missing.push(`man page: ${c} -${short}`);
      if (bashEntry !== null && !so.test(bashEntry)) missing.push(`bash: ${c} -${short}`);
      if (zshEntry !== null && !so.test(zshEntry)) missing.push(`zsh: ${c} -${short}`);
      if (!new RegExp(`-s ${short} `).test(fishEntry)) missing.push(`fish: ${c} -${short}`);
    }
  }
  assert.deepEqual(missing, [], `undocumented:\n${missing.join('\n')}`);
});

// ---- bash ---------------------------------------------------------------------------------

// Sources the completion file and completes the words given as arguments, the last being
// the word under the cursor; prints COMPREPLY one per line.
const BASH_DRIVER = `
source "$1" || exit 1
shift
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=\${#COMP_LINE}
_mlauth mlauth "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD - 1]}" || exit 1
(( \${#COMPREPLY[@]} )) && printf '%s\\n' "\${COMPREPLY[@]}"
exit 0
`;

async function bashComplete(words, env) {
  const r = await exec('bash', ['--norc', '--noprofile', '-c', BASH_DRIVER, 'bash', BASH, ...words], { env });
  assert.equal(r.code, 0, report(r));
  return r.stdout.split('\n').filter(Boolean);
}

/** A private environment with a config file of three profiles, and a command on PATH. */
function completionEnv() {
  const { home, env } = cleanEnv();
  mkdirSync(join(env.XDG_CONFIG_HOME, 'mlauth'), { mode: 0o700 });
  writeFileSync(join(env.XDG_CONFIG_HOME, 'mlauth', 'config'),
    '# profiles\n[default]\nmin_valid = 600\n\n[staging]\nissuer = https://kc.example.com/realms/s\n' +
    '  [ci.build-2]  \nstore = file\n');
  const bin = join(home.dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'mlauthdocs-tool'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  env.PATH = `${bin}:${env.PATH}`;
  return env;
}

test('bash: commands, profiles from the config file, options', async () => {
  const env = completionEnv();
  assert.deepEqual(await bashComplete(['mlauth', 'to'], env), ['token']);
  assert.deepEqual(await bashComplete(['mlauth', 'e'], env), ['env', 'exec']);
  assert.deepEqual(await bashComplete(['mlauth', '-p', ''], env), ['default', 'staging', 'ci.build-2']);
  assert.deepEqual(await bashComplete(['mlauth', '--profile', 's'], env), ['staging']);
  assert.deepEqual(await bashComplete(['mlauth', '-q', '-p', 'staging', 'd'], env), ['doctor']);
  assert.deepEqual(await bashComplete(['mlauth', 'login', '--q'], env), ['--qr', '--quiet']);
  const after = ['-p', '--profile', '-c', '--config', '-o', '--option', '-v', '--verbose', '-q', '--quiet',
    '--no-color'];
  assert.deepEqual(await bashComplete(['mlauth', 'doctor', '-'], env), ['-j', '--json', '-h', '--help', ...after]);
  // The global options after the command too, as mlauth takes them there, with their values.
  assert.deepEqual(await bashComplete(['mlauth', 'token', '--q'], env), ['--quiet']);
  assert.deepEqual(await bashComplete(['mlauth', 'status', '-p', ''], env), ['default', 'staging', 'ci.build-2']);
  assert.deepEqual(await bashComplete(['mlauth', 'config', '-p', 'staging', 'sc'], env), ['scope']);
  assert.deepEqual(await bashComplete(['mlauth', 'help', '-q', 'ex'], env), ['exec']);
  assert.deepEqual(await bashComplete(['mlauth', 'env', '--shell', ''], env), ['sh', 'fish']);
  assert.deepEqual(await bashComplete(['mlauth', 'env', '--s'], env), ['--shell']);
  assert.deepEqual(await bashComplete(['mlauth', 'help', 'ex'], env), ['exec']);
});

test('bash: exec completes its options, then the command to run, then files', async () => {
  const env = completionEnv();
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '--m'], env), ['--min-valid']);
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '-m', ''], env), []);
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '--', 'mlauthdocs-t'], env), ['mlauthdocs-tool']);
  assert.deepEqual(await bashComplete(['mlauth', 'exec', 'mlauthdocs-t'], env), ['mlauthdocs-tool']);
  assert.deepEqual(await bashComplete(['mlauth', '-p', 'staging', 'exec', '-m', '900', '--', 'mlauthdocs-t'], env),
    ['mlauthdocs-tool']);
  // Global options among exec's own, not taken for the command to run.
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '-p', ''], env), ['default', 'staging', 'ci.build-2']);
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '-p', 'staging', 'mlauthdocs-t'], env), ['mlauthdocs-tool']);
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '--q'], env), ['--quiet']);
  // After the command: its arguments, file names here (no bash-completion loaded).
  const dir = join(env.HOME, 'data-dir');
  mkdirSync(dir);
  writeFileSync(join(dir, 'input.txt'), '');
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '--', 'mlauthdocs-tool', `${dir}/in`], env),
    [`${dir}/input.txt`]);
  // An option of the command is not mistaken for one of exec's.
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '--', 'mlauthdocs-tool', '--m'], env), []);
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '--', 'mlauthdocs-tool', '--q'], env), []);
});

test('bash: options end at the first operand, as mlauth parses them', async () => {
  const env = completionEnv();
  const other = join(env.HOME, 'other.conf');
  writeFileSync(other, '[elsewhere]\nstore = file\n');
  // After the message text, everything is text: no option, no global's value.
  assert.deepEqual(await bashComplete(['mlauth', 'send', 'hello', '-'], env), []);
  assert.deepEqual(await bashComplete(['mlauth', 'send', 'hello', '-p', ''], env), []);
  assert.deepEqual(await bashComplete(['mlauth', 'send', '--', '--s'], env), []);
  assert.deepEqual(await bashComplete(['mlauth', 'config', 'issuer', '-'], env), []);
  // An option's value is no operand: the options go on after it.
  assert.deepEqual(await bashComplete(['mlauth', 'send', '--model', 'opus', '--s'], env), ['--system', '--stream']);
  assert.deepEqual(await bashComplete(['mlauth', 'token', '-jm', '60', '--q'], env), ['--quiet']);
  // A value given inside the bundle (-s with "ys") leaves the next word an operand.
  assert.deepEqual(await bashComplete(['mlauth', 'send', '-sys', 'hello', '-'], env), []);
  // -c FILE after exec's -m SECS still names the file the profiles come from.
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '-m', '60', '-c', other, '-p', ''], env),
    ['default', 'elsewhere']);
  assert.deepEqual(await bashComplete(['mlauth', 'exec', '-m', '60', '-c', other, 'mlauthdocs-t'], env),
    ['mlauthdocs-tool']);
});

// ---- zsh ----------------------------------------------------------------------------------

test('zsh: the completion loads with compinit and registers for mlauth', async () => {
  const { env } = cleanEnv();
  const r = await exec('zsh', ['-fc', 'autoload -U compinit; compinit -u; source completions/_mlauth'], { env });
  assert.equal(r.code, 0, report(r));
  assert.equal(r.stderr, '', report(r));

  const s = await exec('zsh', ['-fc', 'autoload -U compinit; compinit -u; source completions/_mlauth; ' +
    'print -r -- $_comps[mlauth]; (( $+functions[_mlauth_profiles] )) && print profiles'], { env });
  assert.equal(s.code, 0, report(s));
  assert.equal(s.stdout, '_mlauth\nprofiles\n', report(s));
});

// An interactive zsh in a real terminal (tmux), with compinit and the completion from the
// tree. Its Tab runs the completion as usual, and records every match offered (compadd
// wrapped, as zsh's own completion test helpers do) in a file, then writes a second file to
// say it is done: the test waits for that, not for a clock.
const ZSHRC = `
PS1='zsh-ready> '
fpath=(\${REPO_COMPLETIONS} $fpath)
autoload -U compinit && compinit -u -d "$ZDOTDIR/.zcompdump"
compadd() {
  # Asked for its matches only (-O, -A, -D): nothing is offered, so nothing to record.
  local a
  for a in "$@"; do
    [[ $a == (-|--) ]] && break
    if [[ $a == -[OAD] ]]; then
      builtin compadd "$@"
      return
    fi
  done
  local -a offered
  builtin compadd -O offered "$@"
  (( $#offered )) && print -rl -- $offered >>"$ZDOTDIR/matches"
  builtin compadd "$@"
}
_mlauthdocs_tab() {
  : >|"$ZDOTDIR/matches"
  zle complete-word
  : >|"$ZDOTDIR/done"
}
zle -N _mlauthdocs_tab
bindkey '^I' _mlauthdocs_tab
`;

async function zshTerminal(env) {
  const zdot = join(env.HOME, 'zdot');
  mkdirSync(zdot);
  writeFileSync(join(zdot, '.zshrc'), ZSHRC.replace('\${REPO_COMPLETIONS}', join(REPO, 'completions')));
  const t = await terminal(['-d', '-i'], { ...env, ZDOTDIR: zdot, TERM: 'screen' }, { command: 'zsh' });
  await t.waitFor(/zsh-ready> $/m);
  const done = join(zdot, 'done');
  /** The matches zsh offers for line (Tab at its end), sorted. */
  const complete = async (line) => {
    rmSync(done, { force: true });
    await t.keys('C-u');
    await t.keys('-l', line);
    await t.keys('Tab');
    for (let i = 0; !existsSync(done); i++) {
      if (i > 6000) throw new Error(`zsh did not complete ${line}:\n${await t.screen()}`);
      await sleep(10);
    }
    return [...new Set(readFileSync(join(zdot, 'matches'), 'utf8').split('\n').filter(Boolean))].sort();
  };
  return { complete, stop: () => t.stop() };
}

test('zsh: in a terminal, commands, profiles, global options after the command, options ending at the first operand', async () => {
  const env = completionEnv();
  const other = join(env.HOME, 'other.conf');
  writeFileSync(other, '[elsewhere]\nstore = file\n');
  const z = await zshTerminal(env);
  try {
    assert.deepEqual(await z.complete('mlauth to'), ['token']);
    assert.deepEqual(await z.complete('mlauth -p '), ['ci.build-2', 'default', 'staging']);
    assert.deepEqual(await z.complete('mlauth status -p '), ['ci.build-2', 'default', 'staging']);
    // -c before the command or after it names the file the profiles come from.
    assert.deepEqual(await z.complete(`mlauth -c ${other} status -p `), ['default', 'elsewhere']);
    assert.deepEqual(await z.complete(`mlauth exec -m 60 -c ${other} -p `), ['default', 'elsewhere']);
    assert.deepEqual(await z.complete('mlauth token --qu'), ['--quiet']);
    assert.deepEqual(await z.complete('mlauth token -jm 60 --qu'), ['--quiet']);
    assert.deepEqual(await z.complete('mlauth config -q sc'), ['scope']);
    assert.deepEqual(await z.complete('mlauth help -q ex'), ['exec']);
    assert.deepEqual(await z.complete('mlauth send --model opus --st'), ['--stream']);
    // After an operand everything is an operand: no option, no global's value.
    assert.deepEqual(await z.complete('mlauth send hello -'), []);
    assert.deepEqual(await z.complete('mlauth send hello -p '), []);
    assert.deepEqual(await z.complete('mlauth config issuer -'), []);
    assert.deepEqual(await z.complete('mlauth exec -m 60 mlauthdocs-t'), ['mlauthdocs-tool']);
    // After "--" too: the command to run, then that command's own completion.
    assert.deepEqual(await z.complete('mlauth exec -- mlauthdocs-t'), ['mlauthdocs-tool']);
    assert.ok((await z.complete('mlauth exec -- ls --colo')).includes('--color'));
    assert.deepEqual(await z.complete('mlauth exec -- mlauthdocs-tool --q'), []);
  } finally {
    await z.stop();
  }
});

// ---- fish ---------------------------------------------------------------------------------

async function fishComplete(line, env) {
  const r = await exec('fish', ['-c', 'source $argv[1]; and complete -C $argv[2]', FISH, line], { env });
  assert.equal(r.code, 0, report(r));
  return r.stdout.split('\n').filter(Boolean).map((l) => l.split('\t')[0]);
}

test('fish: the completion parses, and completes commands, profiles and exec', async () => {
  const env = completionEnv();
  const r = await exec('fish', ['-n', 'completions/mlauth.fish'], { env });
  assert.equal(r.code, 0, report(r));
  assert.equal(r.stderr, '', report(r));

  assert.deepEqual(await fishComplete('mlauth to', env), ['token']);
  assert.deepEqual((await fishComplete('mlauth -p ', env)).sort(), ['ci.build-2', 'default', 'staging']);
  assert.deepEqual((await fishComplete('mlauth env --shell ', env)).sort(), ['fish', 'sh']);
  assert.ok((await fishComplete('mlauth login --', env)).includes('--qr'));
  assert.ok((await fishComplete('mlauth doctor --', env)).includes('--json'));
  assert.deepEqual(await fishComplete('mlauth exec -- mlauthdocs-t', env), ['mlauthdocs-tool']);
  assert.deepEqual(await fishComplete('mlauth exec -m 900 mlauthdocs-t', env), ['mlauthdocs-tool']);
  assert.ok((await fishComplete('mlauth exec --', env)).includes('--min-valid'));
  // The global options after the command too, with their values; not among exec's CMD.
  assert.deepEqual(await fishComplete('mlauth token --q', env), ['--quiet']);
  assert.deepEqual((await fishComplete('mlauth status -p ', env)).sort(), ['ci.build-2', 'default', 'staging']);
  assert.ok((await fishComplete('mlauth doctor --', env)).includes('--profile'));
  assert.deepEqual(await fishComplete('mlauth config -p staging sc', env), ['scope']);
  assert.deepEqual(await fishComplete('mlauth exec -p staging mlauthdocs-t', env), ['mlauthdocs-tool']);
  assert.ok((await fishComplete('mlauth exec --', env)).includes('--quiet'));
  assert.deepEqual(await fishComplete('mlauth exec -- mlauthdocs-tool --q', env), []);
});

test('fish: options end at the first operand, as mlauth parses them', async () => {
  const env = completionEnv();
  const other = join(env.HOME, 'other.conf');
  writeFileSync(other, '[elsewhere]\nstore = file\n');
  assert.deepEqual(await fishComplete('mlauth send hello -', env), []);
  assert.deepEqual(await fishComplete('mlauth send hello -p ', env), []);
  assert.deepEqual(await fishComplete('mlauth send -- --s', env), []);
  assert.deepEqual(await fishComplete('mlauth config issuer -', env), []);
  assert.deepEqual(await fishComplete('mlauth help exec ', env), []);
  assert.deepEqual((await fishComplete('mlauth send --model opus --s', env)).sort(), ['--stream', '--system']);
  assert.deepEqual(await fishComplete('mlauth config -j sc', env), ['scope']);
  assert.deepEqual(await fishComplete('mlauth send --model opus hello -', env), []);
  assert.deepEqual(await fishComplete('mlauth send -sys hello -', env), []);
  assert.deepEqual(await fishComplete('mlauth token -jm 60 --q', env), ['--quiet']);
  assert.deepEqual((await fishComplete(`mlauth exec -m 60 -c ${other} -p `, env)).sort(), ['default', 'elsewhere']);
});

// ---- make install / uninstall -------------------------------------------------------------

// `make` keeps the caller's environment: under `make e2e` or `make asan`, MAKEFLAGS names the
// build tree and flags the binaries were built with, so `all` is the same no-op there.
function make(args) {
  return exec('make', ['-s', ...args], { env: { ...process.env }, timeoutMs: 600_000 });
}

/** Every regular file under dir, as paths relative to it. */
function filesUnder(dir, prefix = '') {
  const out = [];
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...filesUnder(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

const mode = (p) => statSync(p).mode & 0o7777;

/** A variable of the Makefile as this run's make sees it (B, BIN, ...). */
async function makeVar(name) {
  const r = await make(['--no-print-directory', '--eval', `mlauth-print-var: ; @echo $(${name})`, 'mlauth-print-var']);
  assert.equal(r.code, 0, report(r));
  return r.stdout.trim();
}

test('make install puts every file in place; the installed mlauth runs its libexec helper; uninstall removes them',
  { timeout: 900_000 }, async (t) => {
    const { home, env } = cleanEnv();
    const dest = join(home.dir, 'destdir');

    // Bring the build up to date with its usual flags first, then copy its tree (times
    // kept): installing for another prefix rebuilds the front, and must do so in the copy,
    // not under the tests that run the tree's binaries meanwhile.
    let r = await make(['all']);
    assert.equal(r.code, 0, report(r));
    const tree = join(home.dir, 'tree');
    const treeVars = [`B=${tree}`, `BIN=${tree}/mlauth`];
    cpSync(resolve(REPO, await makeVar('B')), tree, { recursive: true, preserveTimestamps: true });
    for (const v of ['BIN', 'HELPER', 'SECRET_MOD', 'JWT_MOD']) {
      const from = resolve(REPO, await makeVar(v));
      copyFileSync(from, join(tree, basename(from)));
      const { atime, mtime } = statSync(from);
      utimesSync(join(tree, basename(from)), atime, mtime);
    }
    r = await make(['-q', 'all', ...treeVars]);
    assert.equal(r.code, 0, `the build is not up to date after make all\n${report(r)}`);
    const vars = [...treeVars, `DESTDIR=${dest}`, 'PREFIX=/usr'];

    // Which binaries install copies: from its own dry run.
    r = await make(['-n', 'install', ...vars]);
    assert.equal(r.code, 0, report(r));
    const src = (target, perm = '0755') => {
      const m = new RegExp(`^install -m ${perm} (\\S+) \\S*${target}$`, 'm').exec(r.stdout);
      assert.ok(m, `no install line for ${target} in\n${r.stdout}`);
      return resolve(REPO, m[1]);
    };
    const built = {
      bin: src('/usr/bin/mlauth'),
      helper: src('/usr/libexec/mlauth/mlauth-helper'),
      module: src('/usr/libexec/mlauth/mlauth-secret.so', '0644'),
      jwtModule: src('/usr/libexec/mlauth/mlauth-jwt.so', '0644'),
    };
    const before = { bin: statSync(built.bin).mtimeMs, helper: statSync(built.helper).mtimeMs };

    r = await make(['install', ...vars]);
    assert.equal(r.code, 0, report(r));
    // The front has the helper's directory compiled in: built for /usr/local by the plain
    // make, rebuilt for /usr by this install.  Nothing else depends on the prefix.
    assert.notEqual(statSync(built.bin).mtimeMs, before.bin, 'make install PREFIX=/usr kept the front built for another prefix');
    assert.equal(statSync(built.helper).mtimeMs, before.helper, 'make install rebuilt mlauth-helper');
    const front = readFileSync(built.bin);
    assert.ok(front.includes('/usr/libexec\0'), 'the front looks for its helper under /usr/libexec');
    assert.ok(!front.includes('/usr/local/libexec'), 'no trace of the default prefix left in the front');
    r = await make(['-q', 'all', ...vars]);
    assert.equal(r.code, 0, `the same prefix again rebuilds nothing\n${report(r)}`);

    const installed = {
      'usr/bin/mlauth': { mode: 0o755, from: built.bin },
      'usr/libexec/mlauth/mlauth-helper': { mode: 0o755, from: built.helper },
      'usr/libexec/mlauth/mlauth-secret.so': { mode: 0o644, from: built.module },
      'usr/libexec/mlauth/mlauth-jwt.so': { mode: 0o644, from: built.jwtModule },
      'usr/share/man/man1/mlauth.1': { mode: 0o644, from: MAN },
      'usr/share/bash-completion/completions/mlauth': { mode: 0o644, from: BASH },
      'usr/share/zsh/site-functions/_mlauth': { mode: 0o644, from: ZSH },
      'usr/share/fish/vendor_completions.d/mlauth.fish': { mode: 0o644, from: FISH },
    };
    assert.deepEqual(filesUnder(dest), Object.keys(installed).sort());
    for (const [rel, want] of Object.entries(installed)) {
      const p = join(dest, rel);
      assert.equal(mode(p).toString(8), want.mode.toString(8), `mode of ${rel}`);
      assert.ok(readFileSync(p).equals(readFileSync(want.from)), `${rel} is a copy of ${want.from}`);
    }
    assert.equal(mode(join(dest, 'usr/libexec/mlauth')).toString(8), '755');

    // Only token is served by the front: config goes through the helper, found under
    // ../libexec/mlauth/ from the installed binary (the build tree is not on its way).
    const runEnv = { ...env };
    for (const k of ['ASAN_OPTIONS', 'LSAN_OPTIONS', 'UBSAN_OPTIONS'])
      if (process.env[k] !== undefined) runEnv[k] = process.env[k];
    const mlauth = join(dest, 'usr/bin/mlauth');
    r = await exec(mlauth, ['config', 'issuer'], { cwd: home.dir, env: runEnv });
    assert.equal(r.code, 0, report(r));
    assert.equal(r.stdout, `${DEFAULT_ISSUER}\n`);
    assert.equal(r.stderr, '');
    r = await exec(mlauth, ['--version'], { cwd: home.dir, env: runEnv });
    assert.equal(r.code, 0, report(r));
    assert.match(r.stdout, /^mlauth \d+\.\d+\.\d+\n$/);

    // Without its Secret Service module, the helper says so instead of writing tokens
    // to a file (store=auto would otherwise take a broken install for a keyring-less one).
    const mod = join(dest, 'usr/libexec/mlauth/mlauth-secret.so');
    renameSync(mod, `${mod}.away`);
    // (A bus address that leads nowhere: without one there is no keyring to load it for.)
    const busEnv = { ...runEnv, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(home.dir, 'no-bus')}` };
    r = await exec(mlauth, ['status'], { cwd: home.dir, env: busEnv });
    renameSync(`${mod}.away`, mod);
    assert.equal(r.code, 1, report(r));
    assert.match(r.stderr, /^mlauth: cannot load the Secret Service module: .*mlauth-secret\.so.*\(reinstall mlauth\)\n$/);
    r = await exec(mlauth, ['-o', 'store=file', 'status'], { cwd: home.dir, env: runEnv });
    assert.equal(r.code, 3, `store=file needs no module\n${report(r)}`);

    // Without an executable helper there, it says so; unless one is installed system-wide,
    // in the directory the front was built for, which it then runs: a visible skip.
    const systemWide = ['/usr/local/libexec', '/usr/libexec']
      .find((d) => existsSync(join(d, 'mlauth/mlauth-helper')));
    await t.test('without an executable helper the installed mlauth says so', {
      skip: systemWide && `a helper is installed system-wide in ${systemWide}/mlauth`,
    }, async () => {
      chmodSync(join(dest, 'usr/libexec/mlauth/mlauth-helper'), 0o644);
      r = await exec(mlauth, ['config', 'issuer'], { cwd: home.dir, env: runEnv });
      assert.equal(r.code, 1, report(r));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^mlauth: cannot run \/usr\/libexec\/mlauth\/mlauth-helper: /);
      chmodSync(join(dest, 'usr/libexec/mlauth/mlauth-helper'), 0o755);
    });

    r = await make(['uninstall', ...vars]);
    assert.equal(r.code, 0, report(r));
    assert.deepEqual(filesUnder(dest), [], 'files left behind by make uninstall');
  });
