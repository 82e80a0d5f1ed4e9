// A real terminal for the e2e tests: tmux, detached, on a private socket in a temp dir (-S),
// with a config file of its own. mlauth runs in it through a wrapper script in which env -i
// execs it with exactly the test's environment; the screen is read with capture-pane.
// Each server is stopped with kill-server on its own socket, and by its PID as a safety net.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MLAUTH_BIN } from './rig.js';
import { sleep } from './fixtures.js';

// ---- a terminal: tmux on a private socket ---------------------------------------------

const servers = new Set(); // { pid, dir } of every tmux server still up
process.on('exit', () => {
  for (const s of servers) {
    try { process.kill(s.pid, 'SIGKILL'); } catch { /* gone */ }
    rmSync(s.dir, { recursive: true, force: true });
  }
});
/** Stops every terminal still running (for an after() hook). */
export async function stopTerminals() {
  await Promise.all([...servers].map((s) => s.stop()));
}

const shq = (s) => `'${String(s).replace(/'/g, "'\\''")}'`;

function tmux(sock, args) {
  return new Promise((resolve) => {
    execFile('tmux', ['-S', sock, ...args], {
      env: { PATH: process.env.PATH, LANG: 'C.UTF-8' },
    }, (error, stdout, stderr) => resolve({ code: error ? error.code ?? 1 : 0, stdout, stderr }));
  });
}

/**
 * Runs `mlauth ARGS` (or `command ARGS`) in a terminal of cols x rows (default 100x40) with
 * exactly env (plus PATH and LANG, as the rig gives every child).
 * Returns { screen({escapes, join}), output(), waitFor(re), dead(), alive(), keys(k), stop() }.
 * waitFor and dead wait for what they wait for; their timeouts only guard against a hang.
 */
export async function terminal(args, env, { cols = 100, rows = 40, command = MLAUTH_BIN } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mlauth-tty-'));
  const sock = join(dir, 'tmux.sock');
  const conf = join(dir, 'tmux.conf');
  const script = join(dir, 'run.sh');
  const statusFile = join(dir, 'status');
  const go = join(dir, 'go');
  const log = join(dir, 'output');
  const words = Object.entries({ PATH: process.env.PATH, LANG: 'C.UTF-8', ...env })
    .map(([k, v]) => shq(`${k}=${v}`));
  // The script outlives mlauth to write down its exit status: tmux 3.3 loses it when the
  // terminal closes before the child is reaped. Its trap is reset in mlauth by exec, so
  // Ctrl-C reaches mlauth as it would from an interactive shell, and the script survives it.
  writeFileSync(script, [
    '#!/bin/sh',
    'trap : INT',
    // tmux 3.3 scrolls a dead pane up a line to show "Pane is dead": a blank line to lose.
    'echo',
    // mlauth starts once everything it writes is copied to the output file (pipe-pane).
    `while [ ! -e ${shq(go)} ]; do sleep 0.01; done`,
    `env -i ${words.join(' ')} ${shq(command)} ${args.map(shq).join(' ')}`,
    `echo $? >${shq(`${statusFile}.new`)} && mv ${shq(`${statusFile}.new`)} ${shq(statusFile)}`,
    '',
  ].join('\n'), { mode: 0o700 });
  // The pane stays after mlauth exits, so its last screen and exit status can be read.
  writeFileSync(conf, 'set -g remain-on-exit on\nset -g history-limit 0\n');
  const started = await tmux(sock, ['-f', conf, 'new-session', '-d', '-s', 'term', '-x', String(cols), '-y', String(rows), script]);
  assert.equal(started.code, 0, `tmux did not start: ${started.stderr}`);
  const pid = Number((await tmux(sock, ['display-message', '-p', '-t', 'term', '#{pid}'])).stdout);
  const piped = await tmux(sock, ['pipe-pane', '-t', 'term', `cat >>${shq(log)}`]);
  assert.equal(piped.code, 0, `tmux pipe-pane: ${piped.stderr}`);
  writeFileSync(go, '');
  const server = {
    pid,
    dir,
    async stop() {
      if (!servers.has(server)) return;
      servers.delete(server);
      await tmux(sock, ['kill-server']);
      for (let i = 0; i < 50; i++) {
        try { process.kill(pid, 0); } catch { break; }
        await sleep(20);
      }
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone, as it should be */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  servers.add(server);

  // join: lines the terminal wrapped come back as one (tmux -J); false: as on the screen.
  const screen = async ({ escapes = false, join: joined = true } = {}) => {
    const r = await tmux(sock, ['capture-pane', '-p', ...(joined ? ['-J'] : []), ...(escapes ? ['-e'] : []), '-t', 'term']);
    return r.stdout;
  };
  return {
    screen,
    /** Every byte mlauth wrote to the terminal so far, escapes and redrawn lines included. */
    output: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''),
    async waitFor(re, timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs;
      let text = '';
      while (Date.now() < end) {
        text = await screen();
        const m = re.exec(text);
        if (m) return m;
        await sleep(50);
      }
      throw new Error(`timed out waiting for ${re} on the screen:\n${text}`);
    },
    /** mlauth's exit status (as the shell reports it: 130 for SIGINT), once it ended. */
    async dead(timeoutMs = 120_000) {
      const end = Date.now() + timeoutMs;
      while (Date.now() < end) {
        // The pane is dead once tmux read the terminal to its end: all output is on screen.
        const r = await tmux(sock, ['display-message', '-p', '-t', 'term', '#{pane_dead}']);
        if (r.stdout.trim() === '1' && existsSync(statusFile))
          return Number(readFileSync(statusFile, 'utf8'));
        await sleep(50);
      }
      throw new Error(`mlauth still running:\n${await screen()}`);
    },
    /** Whether mlauth is still running (its pane not dead yet). */
    async alive() {
      const r = await tmux(sock, ['display-message', '-p', '-t', 'term', '#{pane_dead}']);
      return r.stdout.trim() === '0';
    },
    keys: (...k) => tmux(sock, ['send-keys', '-t', 'term', ...k]),
    stop: () => server.stop(),
  };
}

