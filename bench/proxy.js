// make bench, the proxy's part: what `mlauth proxy` adds to a request, beside curl straight
// to the API, and what 100 open streams cost it.
//
// Starts the rig's OpenID Provider and messages API (loopback, stopped by PID at the end),
// logs in (file store), starts `mlauth proxy`, then:
//   - latency: curl's time to first byte and to last byte, for a JSON answer and for a
//     streamed (SSE) one, straight to the API with a bearer token and through the proxy with
//     its key, the two interleaved; the proxy's added latency is the difference of the medians
//     (goal: <= 1 ms at p50 on loopback);
//   - 100 concurrent streams through the proxy: all complete with every event, none fails;
//     the proxy's resident memory while they are open, less its idle size, per stream.
// Prints a table; the same goes to bench/out/proxy-latest.json. A benchmark, not a test: a
// missed goal is reported, never an error; non-zero only when something could not be measured.
//
// Environment: MLAUTH_BIN (default ./mlauth), BENCH_QUICK=1 (fewer runs).

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { run, spawnMlauth, stopAll } = await import('../tests/e2e/rig.js');
const { loggedInWithAPI, tool } = await import('../tests/e2e/fixtures.js');

const QUICK = process.env.BENCH_QUICK === '1';
const RUNS = QUICK ? 20 : 150;
const STREAMS = 100;
const GOAL_MS = 1;
const OUT_DIR = join(REPO, 'bench/out');
const log = (s) => process.stderr.write(`bench proxy: ${s}\n`);

const BODY = { model: 'claude-opus-4-6', max_tokens: 64, messages: [{ role: 'user', content: 'Hello, bench' }] };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))];

/**
 * One curl request: { first, last } in ms (curl's time_starttransfer and time_total). The
 * headers come on stdin (-H @-), so neither the token nor the key is on a command line.
 */
async function curlOnce(url, headerLines, bodyFile) {
  const r = await tool('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{time_starttransfer} %{time_total}',
    '-H', '@-', '--data-binary', `@${bodyFile}`, url], {}, headerLines.join('\n'));
  const [code, first, total] = r.out.trim().split(' ');
  if (r.code !== 0 || code !== '200') throw new Error(`curl ${url}: exit ${r.code}, HTTP ${code}: ${r.err}`);
  return { first: Number(first) * 1000, last: Number(total) * 1000 };
}

async function latency(direct, proxied, bodyFile, label) {
  const d = { first: [], last: [] };
  const p = { first: [], last: [] };
  for (let i = 0; i < 5; i++) { await curlOnce(...direct, bodyFile); await curlOnce(...proxied, bodyFile); } // warm-up
  for (let i = 0; i < RUNS; i++) {
    // Interleaved, and the order alternating: drift on a shared machine hits both alike.
    const pair = i % 2 ? [direct, proxied] : [proxied, direct];
    for (const [target, into] of pair.map((t) => [t, t === direct ? d : p])) {
      const r = await curlOnce(...target, bodyFile);
      into.first.push(r.first);
      into.last.push(r.last);
    }
  }
  log(`${label}: ${RUNS} requests each way`);
  return {
    label,
    direct: { first_p50: median(d.first), last_p50: median(d.last), last_p90: pct(d.last, 0.9) },
    proxy: { first_p50: median(p.first), last_p50: median(p.last), last_p90: pct(p.last, 0.9) },
    added_first_p50: median(p.first) - median(d.first),
    added_last_p50: median(p.last) - median(d.last),
  };
}

function rssKiB(pid) {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}
const threads = (pid) => Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

/** One streamed request through the proxy: resolves the number of SSE events received. */
function streamOnce(url, key, agent) {
  const data = JSON.stringify({ ...BODY, stream: true });
  return new Promise((resolveP, reject) => {
    const req = http.request(`${url}/v1/messages`, {
      method: 'POST', agent,
      headers: { 'x-api-key': key, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s) => { text += s; });
      res.on('end', () => (res.statusCode === 200 ? resolveP((text.match(/\n\n/g) || []).length)
        : reject(new Error(`HTTP ${res.statusCode}: ${text}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

async function concurrent(url, key, api, pid) {
  const EVENTS = 40;
  const PAUSE = 100; // each stream stays open about 4 s
  const events = Array.from({ length: EVENTS }, (_, i) => ({ event: 'ping', data: { type: 'ping', i } }));
  await api.script(Array.from({ length: STREAMS }, () => ({ stream: events, pauseMs: PAUSE })));
  const idle = rssKiB(pid);
  const idleThreads = threads(pid);
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const started = Date.now();
  const all = Promise.allSettled(Array.from({ length: STREAMS }, () => streamOnce(url, key, agent)));
  // Sample while they are open: the peak between the first and the last event.
  let peak = idle;
  let peakThreads = idleThreads;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssKiB(pid));
    peakThreads = Math.max(peakThreads, threads(pid));
  }, 100);
  const results = await all;
  clearInterval(sampler);
  const failed = results.filter((r) => r.status === 'rejected');
  const short = results.filter((r) => r.status === 'fulfilled' && r.value !== EVENTS);
  for (const f of failed.slice(0, 3)) log(`stream failed: ${f.reason.message}`);
  return {
    streams: STREAMS,
    completed: results.length - failed.length - short.length,
    failed: failed.length + short.length,
    seconds: (Date.now() - started) / 1000,
    rss_idle_kib: idle,
    rss_peak_kib: peak,
    kib_per_stream: (peak - idle) / STREAMS,
    threads_idle: idleThreads,
    threads_peak: peakThreads,
  };
}

async function main() {
  const { env, api } = await loggedInWithAPI();
  const token = (await run(['token'], { env })).stdout.trimEnd();
  const h = spawnMlauth(['proxy'], { env });
  const [, url] = await h.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, { stream: 'stderr' });
  const e = await run(['proxy', '--env'], { env });
  const key = /^export ANTHROPIC_API_KEY='([^']*)'$/m.exec(e.stdout)[1];

  const dir = mkdtempSync(join(os.tmpdir(), 'mlauth-bench-proxy-'));
  try {
    const plain = join(dir, 'plain.json');
    const streamed = join(dir, 'stream.json');
    writeFileSync(plain, JSON.stringify(BODY));
    writeFileSync(streamed, JSON.stringify({ ...BODY, stream: true }));
    const common = ['content-type: application/json', 'anthropic-version: 2023-06-01'];
    const direct = [`${api.base}/v1/messages`, [...common, `authorization: Bearer ${token}`]];
    const proxied = [`${url}/v1/messages`, [...common, `x-api-key: ${key}`]];
    const rows = [
      await latency(direct, proxied, plain, 'JSON answer'),
      await latency(direct, proxied, streamed, 'SSE stream'),
    ];
    const conc = await concurrent(url, key, api, h.pid);
    const requests = (await api.requests()).length;
    h.kill('SIGTERM');
    await h.done;

    const f = (x) => x.toFixed(2).padStart(8);
    const verdict = (x) => (x <= GOAL_MS ? 'ok' : 'over');
    const lines = [
      '',
      'mlauth proxy: added latency (curl, loopback; medians of ms; goal <= 1 ms at p50)',
      'answer        to             direct    proxy    added  goal',
      ...rows.flatMap((r) => [
        `${r.label.padEnd(13)} first byte  ${f(r.direct.first_p50)} ${f(r.proxy.first_p50)} ${f(r.added_first_p50)}  ${verdict(r.added_first_p50)}`,
        `${''.padEnd(13)} last byte   ${f(r.direct.last_p50)} ${f(r.proxy.last_p50)} ${f(r.added_last_p50)}  ${verdict(r.added_last_p50)}`,
      ]),
      '',
      `${conc.streams} concurrent streams: ${conc.completed} complete, ${conc.failed} failed `
        + `(${conc.seconds.toFixed(1)} s); proxy RSS ${(conc.rss_idle_kib / 1024).toFixed(1)} MiB idle, `
        + `${(conc.rss_peak_kib / 1024).toFixed(1)} MiB with them open: `
        + `${conc.kib_per_stream.toFixed(0)} KiB per stream (threads ${conc.threads_idle} -> ${conc.threads_peak})`,
      '',
    ];
    process.stdout.write(lines.join('\n'));
    mkdirSync(OUT_DIR, { recursive: true });
    writeFileSync(join(OUT_DIR, 'proxy-latest.json'), `${JSON.stringify({
      when: new Date().toISOString(), host: os.hostname(), cpus: os.cpus().length, runs: RUNS,
      latency: rows, concurrent: conc, upstream_requests: requests,
    }, null, 2)}\n`);
    return conc.failed === 0 ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let status = 1;
try {
  status = await main();
} catch (err) {
  log(`cannot measure: ${err.stack || err}`);
} finally {
  await stopAll();
}
process.exit(status);
