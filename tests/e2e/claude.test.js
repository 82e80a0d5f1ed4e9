// The real Claude Code CLI (npm @anthropic-ai/claude-code, print mode) against the rig's
// provider and messages API: the apiKeyHelper recipe of the README, and mlauth exec --proxy.
// Loopback only: every URL it is given is the rig's, and its other traffic is turned off.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { MLAUTH_BIN, run, stopAll } from './rig.js';
import { loggedInWithAPI, tool } from './fixtures.js';

after(stopAll);

const require = createRequire(import.meta.url);
// The native binary of the platform package (what the wrapper's postinstall copies).
const CLAUDE = [`@anthropic-ai/claude-code-${process.platform}-${process.arch}/claude`,
  '@anthropic-ai/claude-code/bin/claude.exe']
  .map((p) => { try { return require.resolve(p); } catch { return null; } })
  .find((p) => p && existsSync(p));
const PATH = `${dirname(MLAUTH_BIN)}:${process.env.PATH || '/usr/bin:/bin'}`;
const QUIET = {
  DISABLE_AUTOUPDATER: '1', DISABLE_TELEMETRY: '1', DISABLE_ERROR_REPORTING: '1',
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', DISABLE_NON_ESSENTIAL_MODEL_CALLS: '1',
};

const ready = loggedInWithAPI;

/** ~/.claude/settings.json of the private home. */
function settings(env, obj) {
  mkdirSync(join(env.HOME, '.claude'), { recursive: true, mode: 0o700 });
  writeFileSync(join(env.HOME, '.claude', 'settings.json'), JSON.stringify(obj));
}

const claudeEnv = (env, extra = {}) => ({ ...env, ...QUIET, PATH, ...extra });
const prompt = (tag) => `Reply to ${tag}`;
// The API peer echoes the last user message; Claude Code puts its own reminders first.
const answered = (out, tag) => out.includes('Hello! You said:') && out.includes(prompt(tag));

test('print mode through apiKeyHelper, model pinned: the answer, with the helper\'s token', { skip: !CLAUDE }, async () => {
  const { env, api } = await ready();
  settings(env, { apiKeyHelper: 'mlauth token', model: 'claude-opus-4-6',
    env: { ANTHROPIC_BASE_URL: api.base } });
  const r = await tool(CLAUDE, ['-p', prompt('helper')], claudeEnv(env));
  assert.equal(r.code, 0, r.out + r.err);
  assert.ok(answered(r.out, 'helper'), r.out);
  const token = (await run(['token'], { env })).stdout.trimEnd();
  const reqs = await api.requests();
  assert.ok(reqs.length >= 1);
  for (const q of reqs) {
    assert.equal(q.authorized, true);
    assert.equal(q.headers.authorization, `Bearer ${token}`);
    // Claude Code sends the helper's output as x-api-key too.
    assert.equal(q.headers['x-api-key'], token);
    assert.ok(JSON.parse(q.body).messages.every((m) => m.role === 'user' || m.role === 'assistant'));
  }
});

test('what the README warns about: no model pinned gets 422, a leftover ANTHROPIC_API_KEY leaks', { skip: !CLAUDE }, async () => {
  const { env, api } = await ready();
  // Its default model puts role "system" messages in the list; the gateway validates roles.
  settings(env, { apiKeyHelper: 'mlauth token', env: { ANTHROPIC_BASE_URL: api.base } });
  const r = await tool(CLAUDE, ['-p', prompt('default model')], claudeEnv(env));
  assert.notEqual(r.code, 0);
  assert.match(r.out + r.err, /422/);
  const [first] = await api.requests();
  assert.ok(JSON.parse(first.body).messages.some((m) => m.role === 'system'));

  // A leftover key does not replace the helper's token: it goes to the API beside it.
  await api.reset();
  settings(env, { apiKeyHelper: 'mlauth token', model: 'claude-opus-4-6',
    env: { ANTHROPIC_BASE_URL: api.base } });
  const leftover = 'sk-ant-api03-leftover-0123456789';
  const l = await tool(CLAUDE, ['-p', prompt('leftover')], claudeEnv(env, { ANTHROPIC_API_KEY: leftover }));
  assert.equal(l.code, 0, l.out + l.err);
  const [q] = await api.requests();
  assert.equal(q.headers['x-api-key'], leftover);
  assert.equal(q.authorized, true);
  // ... which is what mlauth doctor says.
  const d = await run(['doctor', '--json'], { env: { ...env, ANTHROPIC_API_KEY: leftover } });
  const e = JSON.parse(d.stdout).checks.find((c) => c.name === 'environment');
  assert.equal(e.status, 'warn');
  assert.match(e.detail, /ANTHROPIC_API_KEY is set: Claude Code sends it as x-api-key/);
  assert.ok(!d.stdout.includes(leftover));
});

test('mlauth exec --proxy -- claude: five token lifetimes of print-mode runs, no 401 seen', { skip: !CLAUDE }, async () => {
  const TTL = 8;
  const { env, api, op } = await ready({ accessTtl: TTL });
  settings(env, { model: 'claude-opus-4-6' });
  await op.resetCounters();
  // One proxy for the whole job; Claude Code is started again and again inside it, at least
  // twice, until the job has outlived four of its tokens (four refreshes at the provider),
  // however long that takes here.
  const script = `n=0
    while [ "$n" -lt 2 ] || [ ! -e "$STOP" ]; do
      n=$((n + 1)); "$CLAUDE" -p "Reply to run $n" >"$OUT/run-$n" 2>&1 || { echo "run $n failed"; cat "$OUT/run-$n"; exit 1; }
    done; echo "runs=$n"`;
  const out = join(env.HOME, 'runs');
  mkdirSync(out);
  const stop = join(env.HOME, 'stop');
  const started = Date.now();
  const job = run(['exec', '--proxy', '--min-valid', '1', '--', 'sh', '-c', script],
    { env: claudeEnv(env, { CLAUDE, OUT: out, STOP: stop }), timeoutMs: 600_000 });
  await op.until('refresh', 4, { unless: job });
  writeFileSync(stop, '');
  const r = await job;
  const elapsed = (Date.now() - started) / 1000;
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const runs = Number(/runs=(\d+)/.exec(r.stdout)[1]);
  assert.ok(runs >= 2, r.stdout);
  const reqs = await api.requests();
  assert.ok(reqs.length >= runs);
  // Every request reached the API with a real token, none with the proxy's key.
  for (const q of reqs) {
    assert.match(q.headers.authorization, /^Bearer eyJ/);
    assert.equal(q.headers['x-api-key'], undefined);
  }
  const { refresh } = await op.counters();
  assert.ok(refresh <= Math.ceil(elapsed / (TTL - 1)) + 1, `${refresh} refreshes in ${elapsed} s`);
  const refused = reqs.filter((q) => !q.authorized).length;
  assert.ok(refused <= refresh, `${refused} requests refused upstream, ${refresh} refreshes`);
});
