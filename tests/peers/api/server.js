#!/usr/bin/env node
// A stand-in for the MLaaS messages API (shapes from shared/PROXY.md): FastAPI-style errors,
// Anthropic message objects and SSE streams, and bearer JWTs checked for real against the
// OpenID Provider's keys.
//
//   node tests/peers/api/server.js --issuer URL [--audience AUD] [--port N] [--stream-pause-ms MS] [--watch-stdin]
//
// Prints one line on stdout when listening: {"ready":true,"port":P,"base":"…/proxy/anthropic"};
// logs go to stderr. Listens on 127.0.0.1 only.
//
// Test controls (JSON in and out), at the server root:
//   POST /test/script  [entry, …]  each entry answers one later messages request, then normal
//                      behaviour resumes. entry = {status, headers?, body? (object → JSON,
//                      string → raw), delayMs?, hold?, truncate?, stream? [event…], pauseMs?,
//                      skipAuth?}; hold: true answers only after POST /test/release.
//                      A stream event is {event?, data (object → JSON)} or a raw string;
//                      {hold: true} sends nothing and waits there for POST /test/release.
//   POST /test/release   let every answer and stream waiting at a hold go on
//   GET  /test/requests  every messages request seen: {method, path, headers, body, authorized}
//   POST /test/reset     forget requests and script, restore settings
//   POST /test/set       {streamPauseMs?, dateSkew?}

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as jose from 'jose';

const { values: args } = parseArgs({
  options: {
    issuer: { type: 'string' },
    audience: { type: 'string' },
    port: { type: 'string', default: '0' },
    'stream-pause-ms': { type: 'string', default: '50' },
    'watch-stdin': { type: 'boolean', default: false },
  },
});
if (!args.issuer) {
  process.stderr.write('usage: server.js --issuer URL [--port N] [--stream-pause-ms MS]\n');
  process.exit(2);
}

// A test peer talks to this machine only.
const LOOPBACK = new Set(['127.0.0.1', '[::1]', 'localhost']);
function assertLoopback(url) {
  if (!LOOPBACK.has(new URL(url).hostname)) throw new Error(`not a loopback URL: ${url}`);
}
assertLoopback(args.issuer);

const BASE_PATH = '/proxy/anthropic';
const MESSAGES_PATH = `${BASE_PATH}/v1/messages`;
const BODY_LIMIT = 1024 * 1024;
const DEFAULTS = { streamPauseMs: Number(args['stream-pause-ms']), dateSkew: 0 };

let settings = { ...DEFAULTS };
let script = [];
let requests = [];

const log = (msg) => process.stderr.write(`api: ${msg}\n`);
const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
const newId = (prefix) => `${prefix}_${randomBytes(12).toString('hex')}`;

// ---- bearer tokens ----------------------------------------------------------------------

// The keys are found the way a resource server finds them: through the issuer's discovery.
// Looked up at start-up, so the OP's discovery counter is not disturbed later on, and again
// on use after a failure, so the API may also start before the OP.
let jwks;
async function keySet() {
  if (!jwks) {
    const res = await fetch(`${args.issuer}/.well-known/openid-configuration`);
    if (!res.ok) throw new Error(`discovery answered ${res.status}`);
    const { jwks_uri: uri } = await res.json();
    assertLoopback(uri);
    jwks = jose.createRemoteJWKSet(new URL(uri));
  }
  return jwks;
}

/** null when the request carries a valid token, else the 401 detail to answer with. */
async function authProblem(req) {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization || '');
  if (!m) return 'Not authenticated';
  try {
    await jose.jwtVerify(m[1], await keySet(), {
      issuer: args.issuer,
      ...(args.audience ? { audience: args.audience } : {}),
      algorithms: ['RS256'],
      requiredClaims: ['exp', 'sub'],
    });
    return null;
  } catch (err) {
    if (err instanceof jose.errors.JWTExpired) return 'Token has expired';
    if (err.code?.startsWith('ERR_J')) return `Invalid token: ${err.message}`;
    jwks = undefined; // discovery or JWKS fetch failed: try again next time
    log(`key lookup failed: ${err.message}`);
    return 'Could not validate credentials';
  }
}

// ---- request validation, FastAPI (pydantic v2) style ------------------------------------

const typeName = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
const isObject = (v) => typeName(v) === 'object';

/** Returns a list of pydantic-style error items; empty when the body is acceptable. */
function validate(raw) {
  if (raw.trim() === '') {
    return [{ type: 'missing', loc: ['body'], msg: 'Field required', input: null }];
  }
  let body;
  try {
    body = JSON.parse(raw);
  } catch (err) {
    return [{
      type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error', input: {},
      ctx: { error: err.message },
    }];
  }
  if (!isObject(body)) {
    return [{
      type: 'model_attributes_type', loc: ['body'],
      msg: 'Input should be a valid dictionary or object to extract fields from', input: body,
    }];
  }
  const errors = [];
  const missing = (field) => errors.push({
    type: 'missing', loc: ['body', field], msg: 'Field required', input: body,
  });
  if (!('model' in body)) missing('model');
  else if (typeof body.model !== 'string') {
    errors.push({ type: 'string_type', loc: ['body', 'model'], msg: 'Input should be a valid string', input: body.model });
  }
  if (!('max_tokens' in body)) missing('max_tokens');
  else if (!Number.isInteger(body.max_tokens)) {
    errors.push({
      type: 'int_parsing', loc: ['body', 'max_tokens'],
      msg: 'Input should be a valid integer, unable to parse string as an integer', input: body.max_tokens,
    });
  }
  if (!('messages' in body)) missing('messages');
  else if (!Array.isArray(body.messages)) {
    errors.push({ type: 'list_type', loc: ['body', 'messages'], msg: 'Input should be a valid list', input: body.messages });
  } else {
    body.messages.forEach((m, i) => {
      const loc = ['body', 'messages', i];
      if (!isObject(m)) {
        errors.push({ type: 'model_type', loc, msg: 'Input should be a valid dictionary or instance of MessageParam', input: m });
        return;
      }
      if (!('role' in m)) errors.push({ type: 'missing', loc: [...loc, 'role'], msg: 'Field required', input: m });
      else if (m.role !== 'user' && m.role !== 'assistant') {
        errors.push({
          type: 'literal_error', loc: [...loc, 'role'], msg: "Input should be 'user' or 'assistant'",
          input: m.role, ctx: { expected: "'user' or 'assistant'" },
        });
      }
      if (!('content' in m)) errors.push({ type: 'missing', loc: [...loc, 'content'], msg: 'Field required', input: m });
      else if (typeof m.content !== 'string' && !Array.isArray(m.content)) {
        errors.push({ type: 'string_type', loc: [...loc, 'content'], msg: 'Input should be a valid string', input: m.content });
      }
    });
  }
  if ('stream' in body && typeof body.stream !== 'boolean') {
    errors.push({ type: 'bool_parsing', loc: ['body', 'stream'], msg: 'Input should be a valid boolean, unable to interpret input', input: body.stream });
  }
  return errors;
}

// ---- answers ----------------------------------------------------------------------------

function textOf(content) {
  if (typeof content === 'string') return content;
  return content.filter((b) => b?.type === 'text').map((b) => b.text).join('');
}

const countTokens = (s) => Math.max(1, s.split(/\s+/).filter(Boolean).length);

function usage(input, output) {
  return {
    input_tokens: input,
    output_tokens: output,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 0 },
    server_tool_use: null,
    service_tier: 'standard',
    inference_geo: 'global',
  };
}

function reply(body) {
  const lastUser = [...body.messages].reverse().find((m) => m.role === 'user');
  const text = `Hello! You said: ${lastUser ? textOf(lastUser.content) : ''}`;
  const input = body.messages.reduce((n, m) => n + countTokens(textOf(m.content)), 0)
    + (body.system ? countTokens(typeof body.system === 'string' ? body.system : textOf(body.system)) : 0);
  return { text, input, output: countTokens(text) };
}

function messageObject(body) {
  const { text, input, output } = reply(body);
  return {
    id: newId('msg'),
    type: 'message',
    role: 'assistant',
    model: body.model,
    content: [{ type: 'text', text, citations: null }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: usage(input, output),
  };
}

/** The events Anthropic sends for one text answer, with the text cut into a few deltas. */
function streamEvents(body) {
  const { text, input, output } = reply(body);
  const msg = messageObject(body);
  const pieces = text.match(/.{1,8}/gs) || [''];
  return [
    { event: 'message_start', data: { type: 'message_start', message: { ...msg, content: [], stop_reason: null, usage: usage(input, 1) } } },
    { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '', citations: null } } },
    { event: 'ping', data: { type: 'ping' } },
    ...pieces.map((p) => ({ event: 'content_block_delta', data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: p } } })),
    { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
    { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: output } } },
    { event: 'message_stop', data: { type: 'message_stop' } },
  ];
}

function sseFrame(ev) {
  if (typeof ev === 'string') return ev; // raw, so tests can send broken framing
  const data = typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data);
  return `${ev.event ? `event: ${ev.event}\n` : ''}data: ${data}\n\n`;
}

function baseHeaders(extra = {}) {
  const h = { 'request-id': newId('req'), ...extra };
  if (settings.dateSkew) h.Date = new Date(Date.now() + settings.dateSkew * 1000).toUTCString();
  return h;
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...baseHeaders(headers),
  });
  res.end(text);
}

// Answers and streams waiting at a hold: what a test sees while the rest is not yet sent
// is what a client gets before the API has more, whatever the machine's speed.
let holds = [];
function holdUntilReleased(res) {
  return new Promise((resolve) => {
    holds.push(resolve);
    res.once('close', () => {
      holds = holds.filter((go) => go !== resolve);
      resolve();
    });
  });
}

async function sendStream(res, status, events, pauseMs, { headers = {}, truncate = false } = {}) {
  res.writeHead(status, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    ...baseHeaders(headers),
  });
  for (const [i, ev] of events.entries()) {
    if (res.destroyed) return; // the client went away (e.g. Ctrl-C during a stream)
    if (i > 0 && pauseMs) await sleep(pauseMs);
    if (ev?.hold === true) await holdUntilReleased(res);
    else res.write(sseFrame(ev));
  }
  if (truncate) res.destroy(); // no terminating chunk: the client sees a cut stream
  else res.end();
}

/** Answer one scripted entry. */
async function playEntry(res, entry) {
  if (entry.delayMs) await sleep(entry.delayMs);
  if (entry.hold) await holdUntilReleased(res);
  if (res.destroyed) return;
  const status = entry.status ?? 200;
  if (entry.stream) {
    await sendStream(res, status, entry.stream, entry.pauseMs ?? settings.streamPauseMs, entry);
    return;
  }
  const isRaw = typeof entry.body === 'string';
  const payload = Buffer.from(isRaw ? entry.body : JSON.stringify(entry.body ?? {}));
  const headers = baseHeaders({
    ...(isRaw ? {} : { 'Content-Type': 'application/json' }),
    ...entry.headers,
  });
  if (entry.truncate) {
    // Promise more than we send, then hang up halfway through.
    headers['Content-Length'] = payload.length + 100;
    res.writeHead(status, headers);
    res.write(payload.subarray(0, Math.floor(payload.length / 2)));
    setTimeout(() => res.destroy(), 20);
    return;
  }
  headers['Content-Length'] = payload.length;
  res.writeHead(status, headers);
  res.end(payload);
}

async function messages(req, res, raw) {
  const record = { method: req.method, path: req.url, headers: req.headers, body: raw, authorized: false };
  requests.push(record);

  const scripted = script[0];
  const problem = await authProblem(req);
  record.authorized = problem === null;
  // An unauthorized request gets the normal 401 and leaves the script alone, unless the
  // entry says it does not care about authentication.
  if (scripted && (scripted.skipAuth || !problem)) {
    script.shift();
    await playEntry(res, scripted);
    return;
  }
  if (problem) {
    sendJson(res, 401, { detail: problem }, { 'WWW-Authenticate': 'Bearer' });
    return;
  }

  const errors = validate(raw);
  if (errors.length) {
    sendJson(res, 422, { detail: errors });
    return;
  }
  const body = JSON.parse(raw);
  if (body.messages.length === 0) {
    // Passed the gateway's schema, rejected upstream: Anthropic's own error shape.
    sendJson(res, 400, {
      type: 'error',
      error: { type: 'invalid_request_error', message: 'messages: at least one message is required' },
    });
    return;
  }
  if (body.stream) {
    await sendStream(res, 200, streamEvents(body), settings.streamPauseMs);
    return;
  }
  sendJson(res, 200, messageObject(body));
}

// ---- HTTP plumbing ----------------------------------------------------------------------

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > BODY_LIMIT) throw Object.assign(new Error('request body too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function control(req, res, path, raw) {
  const route = `${req.method} ${path}`;
  const body = req.method === 'POST' && raw ? JSON.parse(raw) : undefined;
  switch (route) {
    case 'POST /test/script':
      if (!Array.isArray(body)) return sendJson(res, 400, { detail: 'script must be a JSON array' });
      script.push(...body);
      return sendJson(res, 200, { queued: script.length });
    case 'GET /test/requests':
      return sendJson(res, 200, requests);
    case 'POST /test/release': {
      const n = holds.length;
      for (const go of holds) go();
      holds = [];
      return sendJson(res, 200, { released: n });
    }
    case 'POST /test/reset':
      script = [];
      requests = [];
      settings = { ...DEFAULTS };
      return sendJson(res, 200, { ok: true });
    case 'POST /test/set': {
      const unknown = Object.keys(body ?? {}).filter((k) => !(k in DEFAULTS));
      if (unknown.length) return sendJson(res, 400, { detail: `unknown setting ${unknown.join(', ')}` });
      Object.assign(settings, body);
      return sendJson(res, 200, settings);
    }
    default:
      return sendJson(res, 404, { detail: 'Not Found' });
  }
}

async function handle(req, res) {
  const path = req.url.split('?')[0];
  const raw = await readBody(req);
  if (path.startsWith('/test/')) return control(req, res, path, raw);
  if (path === MESSAGES_PATH) {
    if (req.method !== 'POST') return sendJson(res, 405, { detail: 'Method Not Allowed' });
    return messages(req, res, raw);
  }
  return sendJson(res, 404, { detail: 'Not Found' });
}

async function main() {
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      log(`error: ${err.stack || err}`);
      if (!res.headersSent) sendJson(res, err.status || 500, { detail: err.message });
      else res.destroy();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(args.port), '127.0.0.1', resolve);
  });
  const { port } = server.address();
  await keySet().catch((err) => log(`issuer not reachable yet: ${err.message}`));

  let stopping = false;
  const stop = (why) => {
    if (stopping) return;
    stopping = true;
    log(`stopping (${why})`);
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (args['watch-stdin']) {
    process.stdin.on('end', () => stop('stdin closed')).on('error', () => stop('stdin error')).resume();
  }

  process.stdout.write(`${JSON.stringify({ ready: true, port, base: `http://127.0.0.1:${port}${BASE_PATH}` })}\n`);
}

main().catch((err) => {
  process.stderr.write(`api: ${err.stack || err}\n`);
  process.exit(1);
});
