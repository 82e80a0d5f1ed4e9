// mlauth send against the rig's messages API, which checks the provider's JWTs for real.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, spawnMlauth, startAPI, stopAll } from './rig.js';
import { login, setup } from './fixtures.js';

after(stopAll);

/** A logged-in user (file store: the keyring has its own suite) and a messages API. */
async function ready(opOptions = {}) {
  const s = await setup({ keyring: false, op: opOptions });
  const api = await startAPI({ issuer: s.op.issuer });
  s.env.MLAUTH_API_BASE = api.base;
  s.env.MLAUTH_STORE = 'file';
  const r = await login(s.env, s.op);
  assert.equal(r.code, 0, r.stderr);
  return { ...s, api };
}

const tokenOf = async (env) => (await run(['token'], { env })).stdout.trimEnd();

test('send posts an Anthropic body with the right headers and prints the text', async () => {
  const { env, api } = await ready();
  const r = await run(['send', 'Hello,', 'world'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello! You said: Hello, world\n');
  assert.equal(r.stderr, '');
  const [req] = await api.requests();
  assert.equal(req.method, 'POST');
  assert.equal(req.path, '/proxy/anthropic/v1/messages');
  assert.equal(req.headers.authorization, `Bearer ${await tokenOf(env)}`);
  assert.equal(req.headers['content-type'], 'application/json');
  assert.equal(req.headers.accept, 'application/json');
  assert.equal(req.headers['anthropic-version'], '2023-06-01');
  assert.equal(req.headers['x-application-name'], 'mlauth');
  assert.match(req.headers['user-agent'], /^mlauth\/\d/);
  assert.deepEqual(JSON.parse(req.body), {
    model: 'claude-opus-4-6', max_tokens: 1024,
    messages: [{ role: 'user', content: 'Hello, world' }],
  });
});

test('options and settings shape the body: model, max tokens, system, temperature, app name', async () => {
  const { env, api } = await ready();
  const r = await run(['-o', 'application_name=ci-check', 'send', '--model', 'claude-x',
    '--max-tokens', '50', '--system', 'Be brief.', '--temperature', '0.5', 'hi'], { env });
  assert.equal(r.code, 0, r.stderr);
  const [req] = await api.requests();
  const body = JSON.parse(req.body);
  assert.equal(body.model, 'claude-x');
  assert.equal(body.max_tokens, 50);
  assert.equal(body.system, 'Be brief.');
  assert.equal(body.temperature, 0.5);
  assert.equal(body.stream, undefined);
  assert.equal(req.headers['x-application-name'], 'ci-check');
});

test('the message can come from stdin, with - or through a pipe', async () => {
  const { env, api } = await ready();
  let r = await run(['send', '-'], { env, input: 'from "stdin"\nline two' });
  assert.equal(r.code, 0, r.stderr);
  r = await run(['send'], { env, input: 'piped' });
  assert.equal(r.code, 0, r.stderr);
  const reqs = await api.requests();
  assert.equal(JSON.parse(reqs[0].body).messages[0].content, 'from "stdin"\nline two');
  assert.equal(JSON.parse(reqs[1].body).messages[0].content, 'piped');
  r = await run(['send'], { env, input: '' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /empty/);
});

test('--json prints the body exactly as the API sent it', async () => {
  const { env, api } = await ready();
  const raw = '{"id":"msg_1","type":"message","role":"assistant","model":"m",\n' +
    '  "content":[{"type":"text","text":"caf\\u00e9 ☕"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":2}}';
  await api.script([{ status: 200, body: raw, headers: { 'Content-Type': 'application/json' } }]);
  const r = await run(['send', '--json', 'x'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, raw);
});

test('-v reports model, stop reason, usage and request id on stderr only', async () => {
  const { env } = await ready();
  const r = await run(['-v', 'send', 'x'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello! You said: x\n');
  assert.match(r.stderr, /model claude-opus-4-6, stop reason end_turn, tokens in \d+ out \d+, request id req_/);
});

test('--stream prints the first delta before the API has sent the last one', async () => {
  const { env, api } = await ready();
  const ev = (event, data) => ({ event, data: { type: event, ...data } });
  await api.script([{
    status: 200,
    pauseMs: 1500,
    stream: [
      ev('message_start', { message: { id: 'msg_s', model: 'm', usage: { input_tokens: 3 } } }),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'First ' } }),
      ev('ping', {}),
      ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'last.' } }),
      ev('message_delta', { delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 2 } }),
      ev('message_stop', {}),
    ],
  }]);
  const h = spawnMlauth(['send', '--stream', 'x'], { env });
  await h.waitFor(/First /, { stream: 'stdout' });
  assert.ok(!h.stdout.includes('last.'), 'the rest has not been sent yet');
  const r = await h.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'First last.\n');
  const [req] = await api.requests();
  assert.equal(JSON.parse(req.body).stream, true);
});

test('--stream against the normal API prints the whole text', async () => {
  const { env } = await ready();
  const r = await run(['send', '--stream', 'stream me please'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello! You said: stream me please\n');
});

test('--stream --json prints the raw events', async () => {
  const { env } = await ready();
  const r = await run(['send', '--stream', '--json', 'x'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^event: message_start\ndata: \{/);
  assert.match(r.stdout, /event: message_stop\ndata: \{"type":"message_stop"\}\n\n$/);
});

test('a stream cut off mid-answer is a network error, the partial text kept', async () => {
  const { env, api } = await ready();
  await api.script([{
    // The pause lets the first event reach mlauth before the connection is cut.
    status: 200, pauseMs: 300, truncate: true,
    stream: [
      { event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'partial' } } },
      { event: 'ping', data: { type: 'ping' } },
    ],
  }]);
  const r = await run(['send', '--stream', 'x'], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.equal(r.stdout, 'partial\n');
  assert.match(r.stderr, /^mlauth: the answer was cut off before it ended: /);
  assert.equal((await api.requests()).length, 1, 'no retry once text was printed');
});

test('a stream that closes without message_stop is an API error', async () => {
  const { env, api } = await ready();
  await api.script([{
    status: 200, pauseMs: 0,
    stream: [{ event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'half' } } }],
  }]);
  const r = await run(['send', '--stream', 'x'], { env });
  assert.equal(r.code, 5, r.stderr);
  assert.equal(r.stdout, 'half\n');
  assert.match(r.stderr, /message_stop/);
});

test('an error event in a stream is reported, exit 5', async () => {
  const { env, api } = await ready();
  await api.script([{
    status: 200, pauseMs: 0,
    stream: [{ event: 'error', data: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }],
  }]);
  const r = await run(['send', '--stream', 'x'], { env });
  assert.equal(r.code, 5);
  assert.match(r.stderr, /overloaded_error: Overloaded/);
});

test('429 with Retry-After: 1 is retried after the wait, then succeeds', async () => {
  const { env, api } = await ready();
  await api.script([{ status: 429, headers: { 'Retry-After': '1' }, body: { detail: 'Rate limit exceeded' } }]);
  const started = Date.now();
  const r = await run(['send', 'x'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello! You said: x\n');
  assert.equal((await api.requests()).length, 2);
  assert.ok(Date.now() - started >= 1000, 'Retry-After was honoured');
});

test('502 three times exhausts the retries: exit 5 with the detail', async () => {
  const { env, api } = await ready();
  const bad = { status: 502, body: { detail: 'Upstream not responding' } };
  await api.script([bad, bad, bad]);
  const r = await run(['send', 'x'], { env: { ...env } });
  assert.equal(r.code, 5);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^mlauth: HTTP 502: Upstream not responding \(.*retry later\)\n$/);
  assert.equal((await api.requests()).length, 3);
});

test('a 401 refreshes the token once and retries', async () => {
  const { env, api, op } = await ready();
  const before = await tokenOf(env);
  await op.resetCounters();
  await api.script([{ status: 401, body: { detail: 'Token has been revoked' } }]);
  const r = await run(['send', 'x'], { env });
  assert.equal(r.code, 0, r.stderr);
  const reqs = await api.requests();
  assert.equal(reqs.length, 2);
  assert.equal(reqs[0].headers.authorization, `Bearer ${before}`);
  assert.notEqual(reqs[1].headers.authorization, `Bearer ${before}`);
  assert.equal(reqs[1].headers.authorization, `Bearer ${await tokenOf(env)}`);
  assert.equal((await op.counters()).refresh, 1);
});

test('a second 401 is not retried again: exit 5 with what to do', async () => {
  const { env, api } = await ready();
  const no = { status: 401, body: { detail: 'Not authenticated' } };
  await api.script([no, no]);
  const r = await run(['send', 'x'], { env });
  assert.equal(r.code, 5);
  assert.match(r.stderr, /HTTP 401: Not authenticated/);
  assert.equal((await api.requests()).length, 2);
});

test('403 and 422 are not retried and read clearly', async () => {
  const { env, api } = await ready();
  await api.script([{ status: 403, body: { detail: 'Not allowed for this route' } }]);
  let r = await run(['send', 'x'], { env });
  assert.equal(r.code, 5);
  assert.match(r.stderr, /HTTP 403: Not allowed for this route \(not authorized for this route: ask for access\)/);
  assert.equal((await api.requests()).length, 1);

  await api.reset();
  r = await run(['send', '--body', '-'], { env, input: '{"model":"m","max_tokens":5}' });
  assert.equal(r.code, 5);
  assert.match(r.stderr, /HTTP 422: body\.messages: Field required/);
  assert.equal((await api.requests()).length, 1);
});

test("Anthropic's error shape is one clear line", async () => {
  const { env, api } = await ready();
  await api.script([{ status: 400, body: { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: too large' } } }]);
  const r = await run(['send', 'x'], { env });
  assert.equal(r.code, 5);
  assert.match(r.stderr, /^mlauth: HTTP 400: invalid_request_error: max_tokens: too large/);
  assert.equal(r.stderr.split('\n').length, 2);
});

test('garbage and truncated bodies are clear errors, never a crash', async () => {
  const { env, api } = await ready();
  await api.script([{ status: 200, body: '<html>oops</html>', headers: { 'Content-Type': 'text/html' } }]);
  let r = await run(['send', 'x'], { env });
  assert.equal(r.code, 5);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'mlauth: the reply is an HTML page, not JSON\n');

  await api.script([{ status: 500, body: '\u0000\u0001binary\u001b[31m' }]);
  r = await run(['send', '--retries', '0', 'x'], { env });
  assert.equal(r.code, 5);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'mlauth: HTTP 500: ??binary?[31m (the service or its upstream failed: retry later)\n');

  // The connection broke halfway through a 200: a network failure (4), not a bad answer (5).
  await api.reset();
  await api.script([{ status: 200, body: { type: 'message', content: [] }, truncate: true }]);
  r = await run(['send', '--retries', '0', 'x'], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.equal(r.stdout, '');
  // The API was reached: no advice to check that it is up.
  assert.match(r.stderr, /^mlauth: cannot reach http:\/\/127\.0\.0\.1:\d+: transfer closed with \d+ bytes remaining to read\n$/);
  assert.equal(r.stderr.split('\n').length, 2, 'one line');
  assert.equal((await api.requests()).length, 1);
});

test('503, 504 and 529 are retried, each, until the answer comes', async () => {
  const { env, api } = await ready();
  await api.script([
    { status: 503, body: { detail: 'Service Unavailable' } },
    { status: 504, body: { detail: 'Gateway Timeout' } },
    { status: 529, body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } },
  ]);
  const r = await run(['-v', 'send', '--retries', '3', 'x'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Hello! You said: x\n');
  assert.match(r.stderr, /^mlauth: HTTP 503: Service Unavailable .*; retry 1 of 3 in \d+\.\ds$/m);
  assert.match(r.stderr, /^mlauth: HTTP 504: Gateway Timeout .*; retry 2 of 3 in \d+\.\ds$/m);
  assert.match(r.stderr, /^mlauth: HTTP 529: overloaded_error: Overloaded.*; retry 3 of 3 in \d+\.\ds$/m);
  assert.equal((await api.requests()).length, 4);
});

test('Retry-After as an HTTP date is the wait; a longer one is capped at 60 s, and Ctrl-C ends it', async () => {
  const { env, api } = await ready();
  // Two seconds ahead at one-second resolution: a wait of 1-2 s, shown as such.
  const when = new Date(Date.now() + 2000).toUTCString();
  await api.script([{ status: 503, headers: { 'Retry-After': when }, body: { detail: 'Maintenance' } }]);
  const started = Date.now();
  let r = await run(['-v', 'send', 'x'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /; retry 1 of 2 in [12]\.0s$/m);
  assert.ok(Date.now() - started >= 1000, 'the date was waited for'); // a floor
  assert.equal((await api.requests()).length, 2);

  // An hour asked for: 60 s at most, and an interrupt stops the wait at once.
  await api.reset();
  await api.script([{ status: 429, headers: { 'Retry-After': '3600' }, body: { detail: 'Rate limit exceeded' } }]);
  const h = spawnMlauth(['-v', 'send', 'x'], { env });
  await h.waitFor(/; retry 1 of 2 in 60\.0s$/m, { stream: 'stderr' });
  h.kill('SIGINT');
  r = await h.done;
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /interrupted\n$/);
  assert.equal((await api.requests()).length, 1, 'nothing sent after the interrupt');
});

test('--retries takes 0 to 10, nothing else', async () => {
  const { env, api } = await ready();
  for (const bad of ['11', '-1', 'two', '', '3x']) {
    const r = await run(['send', '--retries', bad, 'x'], { env });
    assert.equal(r.code, 2, `--retries ${bad}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^mlauth send: --retries needs a whole number from 0 to 10/, bad);
  }
  assert.equal((await api.requests()).length, 0);
  const bad = { status: 502, body: { detail: 'Bad Gateway' }, headers: { 'Retry-After': '0' } };
  await api.script(Array(10).fill(bad));
  const r = await run(['send', '--retries', '10', 'x'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await api.requests()).length, 11);
});

test('--body sends the file byte for byte', async () => {
  const { env, api } = await ready();
  const dir = mkdtempSync(join(tmpdir(), 'mlauth-body-'));
  const raw = '{ "model": "claude-opus-4-6",\n  "max_tokens": 7,\n  "messages": [{"role": "user", "content": "raw \\u00e9"}] }\n';
  writeFileSync(join(dir, 'body.json'), raw);
  const r = await run(['send', '--body', join(dir, 'body.json')], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await api.requests())[0].body, raw);
  const nostream = await run(['send', '--stream', '--body', join(dir, 'body.json')], { env });
  assert.equal(nostream.code, 2);
  assert.match(nostream.stderr, /put "stream": true in it/);
  assert.equal((await api.requests()).length, 1, 'nothing sent');
  const missing = await run(['send', '--body', join(dir, 'nope.json')], { env });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /cannot open .*nope\.json/);
});

test('send without a session exits 3 before any request', async () => {
  const s = await setup({ keyring: false });
  const api = await startAPI({ issuer: s.op.issuer });
  const r = await run(['send', 'x'], { env: { ...s.env, MLAUTH_API_BASE: api.base } });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /run mlauth login/);
  assert.equal((await api.requests()).length, 0);
});

test('Ctrl-C during a slow answer stops at once with exit 130', async () => {
  const { env, api } = await ready();
  // An answer ten minutes away: only the interrupt can end this run before the hang guard.
  await api.script([{ status: 200, delayMs: 600_000, body: { type: 'message', content: [] } }]);
  const h = spawnMlauth(['send', 'x'], { env });
  while ((await api.requests()).length === 0) {
    assert.equal(h.child.exitCode, null, `send ended before its request: ${h.stderr}`);
    await new Promise((res) => { setTimeout(res, 20); });
  }
  h.kill('SIGINT');
  const guard = setTimeout(() => h.kill('SIGKILL'), 120_000);
  const r = await h.done;
  clearTimeout(guard);
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /interrupted/);
});
