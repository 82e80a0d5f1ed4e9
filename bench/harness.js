// The measuring side of make bench: interleaved timing rounds, peak RSS, system calls and
// instruction counts, and the statistics over them. Sections (bench/bench.js and others)
// call these and never time anything themselves.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tool } from '../tests/e2e/fixtures.js';

export const QUICK = process.env.BENCH_QUICK === '1';
let RT = false;
let ROUNDS_BIN = null;

/** Where the rounds harness is, and whether to run it under SCHED_FIFO (see bench.js). */
export function configure({ rounds, rt }) {
  ROUNDS_BIN = rounds;
  RT = rt;
}

/** Runs cmd with exactly env (plus PATH and LANG); resolves { code, out, err }. */
export function exec(cmd, args, env = {}, input = '') {
  return tool(cmd, args, { LANG: 'C.UTF-8', ...env }, input);
}

const median = (sorted) => {
  const n = sorted.length;
  return n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
};
/** Nearest-rank percentile of sorted values. */
export const pct = (sorted, p) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
const round3 = (x) => Math.round(x * 1000) / 1000;

/**
 * Times commands ({ name, argv }, argv[0] an absolute path) interleaved: every round runs each
 * once, in a freshly shuffled order (bench/rounds.c), so load from elsewhere falls on all of
 * them alike. Returns { [name]: { median_ms, p10_ms, p90_ms, mean_ms, min_ms, minflt,
 * user_ms, system_ms, runs } }. A command that failed even once is an error.
 */
export async function interleave(commands, { env, rounds, warmup = 10 }) {
  if (QUICK) rounds = Math.max(10, Math.floor(rounds / 10));
  for (const c of commands) {
    if (!c.argv[0].startsWith('/')) throw new Error(`${c.argv[0]}: an absolute path, please`);
    if (c.argv.some((a) => /[\t\n]/.test(a))) throw new Error(`${c.name}: a tab or newline in its argv`);
  }
  const spec = `${commands.map((c) => c.argv.join('\t')).join('\n')}\n`;
  const seed = String(Date.now() % 2 ** 31);
  const args = [String(rounds), String(warmup), seed];
  const r = await (RT ? exec('chrt', ['-f', '1', ROUNDS_BIN, ...args], env, spec) : exec(ROUNDS_BIN, args, env, spec));
  if (r.code !== 0) throw new Error(`rounds failed (${r.code}): ${r.err}`);
  const res = JSON.parse(r.out);
  const out = {};
  commands.forEach((c, i) => {
    const m = res.commands[i];
    if (m.failed) throw new Error(`${c.name} failed ${m.failed} of ${rounds + warmup} runs: ${m.first_error.trim()}`);
    const t = m.wall_ns.map((x) => x / 1e6).sort((a, b) => a - b);
    const sum = (a) => a.reduce((x, y) => x + y, 0);
    out[c.name] = {
      median_ms: round3(median(t)), p10_ms: round3(pct(t, 10)), p90_ms: round3(pct(t, 90)),
      mean_ms: round3(sum(t) / t.length), min_ms: round3(t[0]),
      minflt: median([...m.minflt].sort((a, b) => a - b)),
      user_ms: round3(sum(m.utime_us) / m.utime_us.length / 1000),
      system_ms: round3(sum(m.stime_us) / m.stime_us.length / 1000),
      runs: t.length,
    };
  });
  return out;
}

/** Peak RSS in kB of argv, from /usr/bin/time, over n runs: { median_kb, max_kb }. */
export async function peakRss(argv, env, n = QUICK ? 3 : 15) {
  const kb = [];
  for (let i = 0; i < n; i++) {
    const r = await exec('/usr/bin/time', ['-f', '%M', ...argv], env);
    const m = /(\d+)\s*$/.exec(r.err);
    if (r.code !== 0 || !m) throw new Error(`/usr/bin/time ${argv.join(' ')} failed (${r.code}): ${r.err}`);
    kb.push(Number(m[1]));
  }
  kb.sort((a, b) => a - b);
  return { median_kb: median(kb), max_kb: kb[kb.length - 1], runs: n };
}

/** System calls of one run of argv and everything it starts (strace -f -c): { total, errors }. */
export async function syscalls(argv, env, scratch) {
  const file = join(scratch, `strace-${process.hrtime.bigint()}.txt`);
  const r = await exec('strace', ['-f', '-qq', '-c', '-o', file, ...argv], env);
  if (r.code !== 0) throw new Error(`strace ${argv.join(' ')} failed (${r.code}): ${r.err}`);
  const m = /^\s*100\.00\s+\S+\s+\S+\s+(\d+)\s+(\d+)?\s*total$/m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new Error(`strace ${argv.join(' ')}: no total in its summary`);
  return { total: Number(m[1]), errors: Number(m[2] || 0) };
}

/**
 * Instructions executed by one run of argv and the processes it executes (callgrind, which
 * counts them whatever the load): a number, or null with why when valgrind cannot run it.
 */
export async function instructions(argv, env) {
  const r = await exec('timeout', ['300', 'valgrind', '--tool=callgrind', '--callgrind-out-file=/dev/null',
    '--trace-children=yes', ...argv], env);
  const all = [...r.err.matchAll(/Collected : (\d+)/g)].map((m) => Number(m[1]));
  if (r.code !== 0 || all.length === 0) return { count: null, why: `valgrind exit ${r.code}` };
  return { count: all.reduce((a, b) => a + b, 0) };
}

/** Path of a tool on PATH, or an error naming the Debian package. */
export async function which(name, pkg) {
  const r = name.startsWith('/') ? { code: 0, out: name } : await exec('which', [name]);
  if (r.code !== 0 || !existsSync(r.out.trim())) throw new Error(`${name} not found: apt-get install ${pkg}`);
  return r.out.trim();
}
