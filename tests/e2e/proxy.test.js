// mlauth proxy with real clients (the official Anthropic SDK, curl) against the rig's
// provider and messages API, which checks every bearer JWT for real.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import { run, spawnMlauth, stopAll } from './rig.js';
import { loggedInWithAPI, setup, tool } from './fixtures.js';

after(stopAll);

const SDK_CLIENT = fileURLToPath(new URL('./sdk-client.mjs', import.meta.url));

const ready = loggedInWithAPI;

/** `mlauth proxy` running, with the URL and key that `mlauth proxy --env` gives. */
async function startProxy(env, args = []) {
  const h = spawnMlauth(['proxy', ...args], { env });
  const [, url] = await h.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/, { stream: 'stderr' });
  const e = await run(['proxy', '--env'], { env });
  assert.equal(e.code, 0, e.stderr);
  const base = /^export ANTHROPIC_BASE_URL='([^']*)'$/m.exec(e.stdout)?.[1];
  const key = /^export ANTHROPIC_API_KEY='([^']*)'$/m.exec(e.stdout)?.[1];
  assert.equal(base, url);
  assert.match(key, /^mlauth-proxy-[0-9a-f]{64}$/);
  assert.equal(/^export ANTHROPIC_AUTH_TOKEN='([^']*)'$/m.exec(e.stdout)?.[1], key);
  return { h, url, key };
}

const client = (url, key, opts = {}) => new Anthropic({ baseURL: url, apiKey: key, maxRetries: 0, ...opts });
const ask = (c, text, extra = {}) => c.messages.create({
  model: 'claude-opus-4-6', max_tokens: 64, messages: [{ role: 'user', content: text }], ...extra,
});

/** A request without the SDK: status, headers and body text as the client sees them. */
async function raw(url, { method = 'POST', headers = {}, body } = {}) {
  const res = await fetch(`${url}/v1/messages`, {
    method,
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const HELLO = { model: 'claude-opus-4-6', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] };

test('the SDK through the proxy: answers and streams, the key swapped for the real token', async () => {
  const { env, api } = await ready();
  const { h, url, key } = await startProxy(env);
  const c = client(url, key);
  const msg = await ask(c, 'Hello, proxy');
  assert.equal(msg.content[0].text, 'Hello! You said: Hello, proxy');

  let text = '';
  const stream = c.messages.stream({ model: 'claude-opus-4-6', max_tokens: 64,
    messages: [{ role: 'user', content: 'stream this please' }] });
  stream.on('text', (t) => { text += t; });
  const final = await stream.finalMessage();
  assert.equal(text, 'Hello! You said: stream this please');
  assert.equal(final.stop_reason, 'end_turn');

  const token = (await run(['token'], { env })).stdout.trimEnd();
  const reqs = await api.requests();
  assert.equal(reqs.length, 2);
  for (const r of reqs) {
    assert.equal(r.authorized, true);
    assert.equal(r.headers.authorization, `Bearer ${token}`);
    // The key never leaves the proxy, in any header.
    assert.ok(!JSON.stringify(r.headers).includes(key), 'the per-run key went upstream');
    assert.equal(r.headers['x-api-key'], undefined);
    // The SDK's own anthropic-version, once: the proxy adds one only when a client sends none.
    assert.match(r.headers['anthropic-version'], /^\d{4}-\d{2}-\d{2}$/);
    assert.equal(r.headers['x-application-name'], 'mlauth');
    assert.match(r.headers['user-agent'], /^Anthropic\/JS /); // the client's, unchanged
  }
  h.kill('SIGTERM');
  const done = await h.done;
  assert.equal(done.code, 0, done.stderr);
  assert.ok(!done.stderr.includes(key) && !done.stderr.includes(token), 'no secret on stderr');
});

test('requests without the key, or with another, get 401 in the API\'s shape', async () => {
  const { env, api } = await ready();
  const { h, url, key } = await startProxy(env);
  for (const headers of [{}, { 'x-api-key': 'mlauth-proxy-0000' }, { authorization: 'Bearer nope' },
    { 'x-api-key': `${key}x` }, { authorization: `Basic ${key}` }]) {
    const r = await raw(url, { headers, body: HELLO });
    assert.equal(r.status, 401, JSON.stringify(headers));
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.match(JSON.parse(r.text).detail, /^mlauth proxy: .*key/);
  }
  // The SDK's own error class for it, and nothing went upstream.
  await assert.rejects(ask(client(url, 'wrong'), 'hi'), Anthropic.AuthenticationError);
  assert.equal((await api.requests()).length, 0);
  // The key as a bearer token (ANTHROPIC_AUTH_TOKEN) works as well as x-api-key.
  const viaBearer = new Anthropic({ baseURL: url, authToken: key, apiKey: null, maxRetries: 0 });
  assert.equal((await ask(viaBearer, 'bearer')).content[0].text, 'Hello! You said: bearer');
  h.kill('SIGTERM');
  assert.equal((await h.done).code, 0);
});

test('status, headers and error bodies pass through unchanged; 422 for a system role', async () => {
  const { env, api } = await ready();
  const { h, url, key } = await startProxy(env);
  await api.script([{ status: 429, headers: { 'retry-after': '7', 'x-custom': 'kept' },
    body: { detail: 'Rate limit exceeded' } }]);
  const r = await raw(url, { headers: { 'x-api-key': key }, body: HELLO });
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('retry-after'), '7');
  assert.equal(r.headers.get('x-custom'), 'kept');
  assert.match(r.headers.get('request-id'), /^req_/);
  assert.deepEqual(JSON.parse(r.text), { detail: 'Rate limit exceeded' });

  // A streamed answer keeps its own status and headers too (not "200" for any 2xx).
  // (Two events 500 ms apart: the headers go out while the answer is still coming.)
  await api.script([{ status: 203, headers: { 'x-stream-header': 'also kept' }, pauseMs: 500,
    stream: [{ event: 'ping', data: { type: 'ping' } }, { event: 'ping', data: { type: 'ping' } }] }]);
  const st = await raw(url, { headers: { 'x-api-key': key }, body: { ...HELLO, stream: true } });
  assert.equal(st.status, 203);
  assert.equal(st.headers.get('x-stream-header'), 'also kept');
  assert.match(st.headers.get('content-type'), /^text\/event-stream/);
  assert.equal(st.text, 'event: ping\ndata: {"type":"ping"}\n\n'.repeat(2));

  // What Claude Code's default model sends: the gateway validates roles, as FastAPI would.
  const sys = await raw(url, { headers: { 'x-api-key': key }, body: {
    ...HELLO, messages: [{ role: 'system', content: 'x' }, { role: 'user', content: 'hi' }] } });
  assert.equal(sys.status, 422);
  assert.equal(JSON.parse(sys.text).detail[0].msg, "Input should be 'user' or 'assistant'");
  await assert.rejects(ask(client(url, key), 'hi', { messages: [{ role: 'system', content: 'x' }] }),
    Anthropic.UnprocessableEntityError);
  // The query string and the client's own headers reach the API as sent.
  await fetch(`${url}/v1/messages?beta=true`, { method: 'POST', body: JSON.stringify(HELLO),
    headers: { 'x-api-key': key, 'content-type': 'application/json', 'anthropic-beta': 'b-1',
      'x-application-name': 'my-tool' } }).then((res) => res.text());
  const last = (await api.requests()).at(-1);
  assert.equal(last.path, '/proxy/anthropic/v1/messages?beta=true');
  assert.equal(last.headers['anthropic-beta'], 'b-1');
  assert.equal(last.headers['x-application-name'], 'my-tool');
  h.kill('SIGTERM');
  assert.equal((await h.done).code, 0);
});

/**
 * Reads the SSE body into state.text until `done(text)` holds (or, with no `done`, to its
 * end); rejects if it ends first. Only a hang guard has a clock: what arrives when is decided
 * by the API's hold, never by a delay.
 */
async function readUntil(reader, state, done, what) {
  const decoder = new TextDecoder();
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not seen in 120 s; got ${JSON.stringify(state.text)}`)), 120_000);
  });
  try {
    while (!done?.(state.text)) {
      const r = await Promise.race([reader.read().catch(() => ({ done: true })), guard]);
      if (r.done) {
        if (done) throw new Error(`${what}: the stream ended first; got ${JSON.stringify(state.text)}`);
        return;
      }
      state.text += decoder.decode(r.value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
}

const pings = (text) => (text.match(/^event: ping$/gm) || []).length;

test('a stream passes through as it is generated, not buffered', async () => {
  const { env, api } = await ready();
  const { h, url, key } = await startProxy(env);
  // Two events, then the API holds the rest back until the test lets it go on: a proxy that
  // buffers would pass nothing on while the API holds.
  const ping = (i) => ({ event: 'ping', data: { type: 'ping', i } });
  await api.script([{ stream: [ping(0), ping(1), { hold: true }, ping(2), ping(3)], pauseMs: 0 }]);
  const res = await fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': key,
    'content-type': 'application/json' }, body: JSON.stringify({ ...HELLO, stream: true }) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/event-stream/);
  const reader = res.body.getReader();
  const state = { text: '' };
  await readUntil(reader, state, (t) => pings(t) >= 2, 'the events sent before the hold');
  assert.equal(pings(state.text), 2, 'nothing past the hold');
  assert.deepEqual((await api.release()).released, 1);
  await readUntil(reader, state, null, 'the end of the stream');
  assert.deepEqual([...state.text.matchAll(/"i":(\d)/g)].map((m) => Number(m[1])), [0, 1, 2, 3]);
  h.kill('SIGTERM');
  assert.equal((await h.done).code, 0);
});

test('a 401 from the API: one refresh and the same request again; a failed refresh answers, no hang', async () => {
  const { env, api, op } = await ready();
  const { h, url, key } = await startProxy(env);
  const c = client(url, key);
  await ask(c, 'warm up');
  await op.resetCounters();
  await api.script([{ status: 401, body: { detail: 'Token has been revoked' }, skipAuth: true }]);
  const msg = await ask(c, 'after the 401');
  assert.equal(msg.content[0].text, 'Hello! You said: after the 401');
  assert.equal((await op.counters()).refresh, 1);
  const reqs = await api.requests();
  assert.equal(reqs.at(-1).body, reqs.at(-2).body, 'the same body sent again');
  assert.notEqual(reqs.at(-1).headers.authorization, reqs.at(-2).headers.authorization);

  // The session is gone at the provider: the refresh fails and the client hears why.
  await op.revokeAll();
  await api.script([{ status: 401, body: { detail: 'Token has been revoked' }, skipAuth: true }]);
  const err = await ask(c, 'no session').then(() => null, (e) => e);
  assert.ok(err instanceof Anthropic.AuthenticationError, String(err));
  assert.match(JSON.stringify(err.error), /mlauth proxy: .*mlauth login/);
  h.kill('SIGTERM');
  assert.equal((await h.done).code, 0);
});

test('mlauth exec --proxy: an SDK job over five token lifetimes sees no 401, about one refresh per lifetime', async () => {
  const TTL = 8;
  const { env, op, api } = await ready({ accessTtl: TTL });
  await op.resetCounters();
  const stop = join(env.HOME, 'sdk-stop');
  const started = Date.now();
  // A leftover token and key in the environment must not get in the way.  The job runs until
  // it has outlived four of its tokens (four refreshes at the provider), however long that
  // takes here; 240 s only guards against a hang.
  const job = run(['exec', '--proxy', '--min-valid', '1', '--', process.execPath, SDK_CLIENT, '240'],
    { env: { ...env, ANTHROPIC_AUTH_TOKEN: 'stale', ANTHROPIC_API_KEY: 'old', SDK_STOP_FILE: stop },
      timeoutMs: 300_000 });
  await op.until('refresh', 4, { unless: job });
  writeFileSync(stop, '');
  const r = await job;
  const elapsed = (Date.now() - started) / 1000;
  assert.equal(r.code, 0, r.stderr);
  const { requests, errors } = JSON.parse(r.stdout);
  assert.deepEqual(errors, []);
  const { refresh, refresh_errors: refreshErrors } = await op.counters();
  assert.equal(refreshErrors, 0);
  // A refresh when a token has less than --min-valid left: one per (TTL - 1) s at most, and
  // one bearer token per refresh (and the first), never one per request.
  assert.ok(refresh <= Math.ceil(elapsed / (TTL - 1)) + 1, `${refresh} refreshes in ${elapsed} s`);
  const seen = await api.requests();
  const tokens = new Set(seen.map((q) => q.headers.authorization));
  assert.ok(tokens.size <= refresh + 1, `${tokens.size} tokens, ${refresh} refreshes`);
  assert.ok(requests > tokens.size, `${requests} requests, ${tokens.size} tokens`);
  // Whatever the API refused (a token expiring in flight) was retried, never passed on.
  const unauthorized = seen.filter((q) => !q.authorized).length;
  assert.ok(unauthorized <= refresh, `${unauthorized} requests refused upstream`);
  assert.equal(seen.length - unauthorized, requests);
  assert.ok(seen.every((q) => q.headers['x-api-key'] === undefined && !/stale|old/.test(q.headers.authorization)));
});

test('exec --proxy: CMD gets the proxy and its key, its status comes back, the proxy ends with it', async () => {
  const { env } = await ready();
  const print = 'printf "%s\\n%s\\n%s\\n" "$ANTHROPIC_BASE_URL" "$ANTHROPIC_API_KEY" "$ANTHROPIC_AUTH_TOKEN"; exit 7';
  const r = await run(['exec', '--proxy', '--', 'sh', '-c', print], { env: { ...env, ANTHROPIC_AUTH_TOKEN: 'stale' } });
  assert.equal(r.code, 7, r.stderr);
  const [url, key, tok] = r.stdout.split('\n');
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(key, /^mlauth-proxy-[0-9a-f]{64}$/);
  assert.equal(tok, key, 'the key, not the leftover token');
  // Gone with CMD: nothing listens there any more.
  await assert.rejects(fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': key } }));
  // Each run its own key.
  const again = await run(['exec', '--proxy', '--', 'sh', '-c', print], { env });
  assert.notEqual(again.stdout.split('\n')[1], key);
  // Not logged in: CMD never starts.
  const s = await setup({ keyring: false });
  const out = await run(['exec', '--proxy', '--', 'sh', '-c', 'echo started'], { env: { ...s.env, MLAUTH_STORE: 'file' } });
  assert.equal(out.code, 3);
  assert.equal(out.stdout, '');
});

test('doctor: the environment of a running proxy (mlauth proxy --env) is fine', async () => {
  const { env } = await ready();
  const { h, url, key } = await startProxy(env);
  const d = await run(['doctor', '--json'], { env: { ...env, ANTHROPIC_BASE_URL: url, ANTHROPIC_API_KEY: key,
    ANTHROPIC_AUTH_TOKEN: key } });
  const e = JSON.parse(d.stdout).checks.find((c) => c.name === 'environment');
  assert.equal(e.status, 'ok', e.detail);
  assert.match(e.detail, /the running mlauth proxy/);
  assert.ok(!d.stdout.includes(key));
  h.kill('SIGTERM');
  assert.equal((await h.done).code, 0);
});

test('SIGTERM and Ctrl-C stop it at once, open streams included', async () => {
  const { env, api } = await ready();
  for (const sig of ['SIGTERM', 'SIGINT']) {
    const { h, url, key } = await startProxy(env);
    // The API sends one event and then holds the stream open until released: a proxy that
    // waited for open streams to end would never exit.
    await api.script([{ stream: [{ event: 'ping', data: { type: 'ping', i: 0 } }, { hold: true },
      { event: 'ping', data: { type: 'ping', i: 1 } }] }]);
    const res = await fetch(`${url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': key,
      'content-type': 'application/json' }, body: JSON.stringify({ ...HELLO, stream: true }) });
    const reader = res.body.getReader();
    const state = { text: '' };
    await readUntil(reader, state, (t) => pings(t) >= 1, 'the first event');
    h.kill(sig);
    const done = await h.done;
    assert.equal(done.code, 0, done.stderr);
    // The client's stream ends, cut before the held event: it does not hang.
    await readUntil(reader, state, null, 'the end of the cut stream');
    assert.equal(pings(state.text), 1);
    await api.release();
    // Gone: the address file no longer names a proxy.
    const e = await run(['proxy', '--env'], { env });
    assert.equal(e.code, 1);
    assert.match(e.stderr, /no proxy is running for profile default/);
  }
});

test('one proxy per profile; --env without one says how to start it; usage errors', async () => {
  const { env } = await ready();
  const none = await run(['proxy', '--env'], { env });
  assert.equal(none.code, 1);
  assert.equal(none.stdout, '');
  assert.match(none.stderr, /no proxy is running for profile default: start one with mlauth proxy/);
  const { h } = await startProxy(env);
  const second = await run(['proxy'], { env });
  assert.equal(second.code, 2);
  assert.match(second.stderr, /a proxy for profile default is already running/);
  const fish = await run(['proxy', '--env', '--shell', 'fish'], { env });
  assert.match(fish.stdout, /^set -gx ANTHROPIC_BASE_URL 'http:\/\/127\.0\.0\.1:\d+';\nset -gx ANTHROPIC_API_KEY '(mlauth-proxy-[0-9a-f]{64})';\nset -gx ANTHROPIC_AUTH_TOKEN '\1';\n$/);
  h.kill('SIGTERM');
  assert.equal((await h.done).code, 0);
  for (const [args, re] of [[['proxy', '--port', '0'], /--port needs a port number/],
    [['proxy', '--shell', 'sh'], /--shell goes with --env/], [['proxy', 'extra'], /unexpected argument/]]) {
    const r = await run(args, { env });
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, re);
  }
  // Not logged in: it says so at start, not on every request.
  const s = await setup({ keyring: false });
  const out = await run(['proxy'], { env: { ...s.env, MLAUTH_STORE: 'file' } });
  assert.equal(out.code, 3);
  assert.match(out.stderr, /mlauth login/);
});

test('another local user is refused, even with the key', async (t) => {
  const who = await tool('id', ['-u', 'nobody'], {});
  if (who.code !== 0) return t.skip('no user nobody on this machine');
  const { env } = await ready();
  const { h, url, key } = await startProxy(env);
  // Headers from stdin (-H @-): the key never goes on a command line.
  const asNobody = (headers) => tool('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'curl',
    '-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', '@-', '--data-raw', JSON.stringify(HELLO),
    `${url}/v1/messages`], {}, ['content-type: application/json', ...headers].join('\n'));
  assert.equal((await asNobody([])).out, '401');
  // The key is a secret given to this user's processes; another user gets 403 even so.
  const k = await asNobody([`x-api-key: ${key}`]);
  assert.equal(k.out, '403', k.err);
  h.kill('SIGTERM');
  assert.equal((await h.done).code, 0);
});
