#!/usr/bin/env node
// A hostile (or merely broken) identity provider and messages API, for the e2e tests that
// check mlauth survives what a bad server can do: endless and huge bodies, a stall in the
// middle of an answer, deeply nested JSON, invalid UTF-8, the wrong content type,
// redirects, token answers that make no sense, a closed connection, TLS with a self-signed
// certificate, and (as a forward proxy in front of the real provider) an answer lost after
// the provider sent it.
//
// Used in-process by the tests:
//   import { startHostile, startSink } from '../peers/hostile/server.js';
//   const h = await startHostile({ tls: { key, cert } });   // tls optional
//   h.set({ discovery: { kind: 'endless' } });              // one behaviour per route
//   ... h.log, h.secrets, h.count('token'), await h.close()
// or on its own (for a person poking at mlauth by hand):
//   node tests/peers/hostile/server.js [--port N] [--tls-cert F --tls-key F] [--watch-stdin]
// which prints {"ready":true,"port":P,"issuer":…,"base":…} and takes the same behaviours as
// JSON at POST /test/set; GET /test/log, GET /test/secrets, POST /test/reset.
//
// It listens on loopback addresses only and forwards (as a proxy) to loopback targets only.
// Every loop is bounded: endless bodies stop at MAX_ENDLESS bytes or when the client leaves,
// stalls end after holdMs at the latest.
//
// Routes (OP role under /realms/hostile, messages role under /proxy/anthropic):
//   discovery  GET  /realms/hostile/.well-known/openid-configuration
//   device     POST /realms/hostile/device           (device authorization)
//   device_token, refresh   POST /realms/hostile/token   (by grant_type)
//   revoke     POST /realms/hostile/revoke
//   certs      GET  /realms/hostile/certs              (the JWKS its ID tokens are signed with)
//   messages   POST /proxy/anthropic/v1/messages    (SSE when the body says stream: true)
//   proxy      any absolute-form request (http_proxy=…): forwarded to its loopback target
// By default every route answers like a good provider or API would; the device flow is
// approved on the first poll. A behaviour replaces that answer:
//   { kind: 'good', patch?, status?, headers? }  the good answer with members patched
//                                                 (null deletes one)
//   { kind: 'json', status?, body, headers? }     any JSON value
//   { kind: 'raw', status?, body, contentType?, headers? }   body: string or Buffer
//   { kind: 'endless', contentType?, chunk? }     a chunked body that never ends
//   { kind: 'huge', size, contentType? }          Content-Length: size, and that many bytes
//   { kind: 'stall', prefix?, contentType?, holdMs? }   headers and a prefix, then silence
//   { kind: 'close' }                             hang up without a word
//   { kind: 'closeMid', prefix? }                 hang up halfway through the body
//   { kind: 'redirect', status?, location }
//   { kind: 'nested', depth? }                    [[[[…  deeper than any parser should go
//   { kind: 'sse', events?, endless?, line?, pauseMs?, contentType? }   an event stream:
//        events (raw frames or {event,data}), then, with endless, text deltas forever;
//        line: one line that never ends
//   { kind: 'delay', ms, then }                   wait, then behave as `then`
//   { kind: 'path', map: { path: behaviour }, else }   by request path (an endpoint that moved)
//   proxy: { dropRefresh: N }                     forward, but after the provider answered
//        the next N refresh requests, cut the client's connection instead of answering

import http from 'node:http';
import https from 'node:https';
import { generateKeyPairSync, randomBytes, sign as cryptoSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

const LOOPBACK = new Set(['127.0.0.1', '127.0.0.2', '::1', '[::1]', 'localhost']);
const REALM = '/realms/hostile';
const API = '/proxy/anthropic';
const CLIENT_ID = 'MLAAS-CLI-API';
const BODY_LIMIT = 1024 * 1024;
const MAX_ENDLESS = 256 * 1024 * 1024; // far past any client cap, still finite
const MAX_HOLD_MS = 120_000;
const SECRET_KEYS = ['access_token', 'refresh_token', 'id_token', 'device_code'];

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });
const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const rand = (n) => randomBytes(n).toString('base64url');

function assertLoopback(host) {
  if (!LOOPBACK.has(host)) throw new Error(`not a loopback address: ${host}`);
}

// The signing key of the ID tokens, published at jwks_uri like a good provider's: one per
// process (an RSA key takes a while to make on a loaded machine).
let signing;
function signingKey() {
  if (!signing) {
    const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jwks = { keys: [{ ...keys.publicKey.export({ format: 'jwk' }), kid: 'hostile', alg: 'RS256', use: 'sig' }] };
    signing = { keys, jwks };
  }
  return signing;
}

/**
 * A JWT (header.payload.signature): signed RS256 with key (a KeyObject) when given, as the
 * server's ID tokens must be (login checks them against its JWKS); else a random signature.
 */
export function fakeJwt(claims, key) {
  const head = `${b64url({ alg: 'RS256', typ: 'JWT', kid: 'hostile' })}.${b64url(claims)}`;
  return `${head}.${key ? cryptoSign('sha256', Buffer.from(head), key).toString('base64url') : rand(64)}`;
}

// Resolves once res has been flushed (or the client left); false when the client left.
function writeAsync(res, chunk) {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(chunk)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok) => {
      res.removeListener('drain', onDrain);
      res.removeListener('close', onClose);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

function waitClose(res, ms) {
  return new Promise((resolve) => {
    if (res.destroyed) { resolve(); return; }
    const t = setTimeout(resolve, Math.min(ms, MAX_HOLD_MS));
    res.once('close', () => { clearTimeout(t); resolve(); });
  });
}

function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function patched(obj, patch) {
  const out = { ...obj };
  for (const [k, v] of Object.entries(patch || {})) {
    if (v === null) delete out[k];
    else out[k] = v;
  }
  return out;
}

function sseFrame(ev) {
  if (typeof ev === 'string') return ev;
  const data = typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data);
  return `${ev.event ? `event: ${ev.event}\n` : ''}data: ${data}\n\n`;
}

const delta = (text) => ({
  event: 'content_block_delta',
  data: { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } },
});

function goodEvents(text) {
  return [
    { event: 'message_start', data: { type: 'message_start', message: { id: 'msg_h', type: 'message', role: 'assistant', model: 'm', content: [], usage: { input_tokens: 1, output_tokens: 1 } } } },
    { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } },
    delta(text),
    { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
    { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 2 } } },
    { event: 'message_stop', data: { type: 'message_stop' } },
  ];
}

/**
 * Starts a hostile server on a loopback address.
 * options: { host = '127.0.0.1', port = 0, tls: { key, cert } (PEM) for https,
 *            accessTtl = 3600, rotate = true }
 */
export async function startHostile(options = {}) {
  const { host = '127.0.0.1', port = 0, tls = null } = options;
  assertLoopback(host);
  let behaviours = {};
  const log = [];
  const secrets = new Set();
  const issued = new Map(); // refresh token -> still usable
  const knobs = { accessTtl: options.accessTtl ?? 3600, rotate: options.rotate ?? true };
  const { keys, jwks } = signingKey();
  let proxyDrops = 0;
  let origin;
  let issuer;

  const keep = (...values) => { for (const v of values) if (typeof v === 'string' && v) secrets.add(v); };

  function tokens(scope = 'openid offline_access') {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      iss: issuer, sub: 'mallory-id', aud: [CLIENT_ID, 'account'], azp: CLIENT_ID,
      typ: 'Bearer', preferred_username: 'mallory', email: 'mallory@example.test',
      name: 'Mallory Example', scope, iat: now, exp: now + knobs.accessTtl, jti: rand(12),
    };
    const t = {
      access_token: fakeJwt(claims),
      expires_in: knobs.accessTtl,
      refresh_expires_in: 0,
      refresh_token: `rt.${rand(48)}`,
      token_type: 'Bearer',
      id_token: fakeJwt({ ...claims, typ: 'ID', aud: CLIENT_ID, nonce: undefined }, keys.privateKey),
      scope,
    };
    issued.set(t.refresh_token, true);
    keep(t.access_token, t.refresh_token, t.id_token);
    return t;
  }

  function goodAnswer(route, params, body) {
    switch (route) {
      case 'discovery':
        return {
          issuer,
          device_authorization_endpoint: `${issuer}/device`,
          token_endpoint: `${issuer}/token`,
          revocation_endpoint: `${issuer}/revoke`,
          jwks_uri: `${issuer}/certs`,
          grant_types_supported: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
        };
      case 'device': {
        const dc = `dc.${rand(40)}`;
        keep(dc);
        return {
          device_code: dc,
          user_code: 'HOST-ILE1',
          verification_uri: `${origin}/device`,
          verification_uri_complete: `${origin}/device?user_code=HOST-ILE1`,
          expires_in: 60,
          interval: 1,
        };
      }
      case 'device_token':
        return tokens(params.get('scope') || undefined);
      case 'refresh': {
        const rt = params.get('refresh_token');
        if (!issued.get(rt)) return { status: 400, body: { error: 'invalid_grant', error_description: 'Token is not active' } };
        if (knobs.rotate) issued.set(rt, false);
        const t = tokens();
        if (!knobs.rotate) delete t.refresh_token;
        return t;
      }
      case 'revoke':
        return {};
      case 'certs':
        return jwks;
      case 'messages':
        return {
          id: 'msg_h', type: 'message', role: 'assistant', model: body?.model || 'm',
          content: [{ type: 'text', text: 'Hello from a hostile server' }],
          stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 5 },
        };
      default:
        return { status: 404, body: { error: 'not_found' } };
    }
  }

  async function play(res, beh, route, params, body, entry) {
    const kind = beh?.kind || 'good';
    const status = beh?.status ?? 200;
    const ct = beh?.contentType ?? 'application/json';
    switch (kind) {
      case 'good': {
        if (route === 'messages' && body?.stream) {
          return play(res, { ...beh, kind: 'sse' }, route, params, body, entry);
        }
        let answer = goodAnswer(route, params, body);
        let st = status;
        if (answer && answer.status && answer.body) { st = answer.status; answer = answer.body; }
        return sendJson(res, st, patched(answer, beh?.patch), beh?.headers);
      }
      case 'json':
        return sendJson(res, status, beh.body, beh.headers);
      case 'raw': {
        const buf = Buffer.isBuffer(beh.body) ? beh.body : Buffer.from(String(beh.body ?? ''), beh.encoding || 'utf8');
        res.writeHead(status, { 'Content-Type': ct, 'Content-Length': buf.length, ...beh.headers });
        return res.end(buf);
      }
      case 'endless': {
        res.writeHead(status, { 'Content-Type': ct, ...beh.headers }); // chunked
        const chunk = Buffer.from(beh.chunk ?? `{"pad":"${'x'.repeat(16370)}",`);
        entry.bytesSent = 0;
        while (entry.bytesSent < MAX_ENDLESS && (await writeAsync(res, chunk))) entry.bytesSent += chunk.length;
        if (!res.destroyed) res.end();
        return undefined;
      }
      case 'huge': {
        const size = Math.min(beh.size ?? 64 * 1024 * 1024, MAX_ENDLESS);
        res.writeHead(status, { 'Content-Type': ct, 'Content-Length': size, ...beh.headers });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        entry.bytesSent = 0;
        while (entry.bytesSent < size) {
          const piece = chunk.subarray(0, Math.min(chunk.length, size - entry.bytesSent));
          if (!(await writeAsync(res, piece))) break;
          entry.bytesSent += piece.length;
        }
        if (!res.destroyed) res.end();
        return undefined;
      }
      case 'stall': {
        res.writeHead(status, { 'Content-Type': ct, ...beh.headers });
        res.write(beh.prefix ?? '{"issuer":"');
        const started = Date.now();
        await waitClose(res, beh.holdMs ?? 60_000);
        entry.heldMs = Date.now() - started;
        if (!res.destroyed) res.destroy();
        return undefined;
      }
      case 'close':
        res.socket?.destroy();
        return undefined;
      case 'closeMid': {
        const prefix = Buffer.from(beh.prefix ?? '{"access_token":"eyJ');
        res.writeHead(status, { 'Content-Type': ct, 'Content-Length': prefix.length + 1000 });
        res.write(prefix);
        await sleep(50);
        res.destroy();
        return undefined;
      }
      case 'redirect':
        res.writeHead(beh.status ?? 302, { Location: beh.location, 'Content-Length': 0 });
        return res.end();
      case 'nested': {
        const depth = beh.depth ?? 100_000;
        const text = `${'['.repeat(depth)}${']'.repeat(depth)}`;
        res.writeHead(status, { 'Content-Type': ct, 'Content-Length': text.length });
        return res.end(text);
      }
      case 'sse': {
        res.writeHead(status, { 'Content-Type': beh.contentType ?? 'text/event-stream', 'Cache-Control': 'no-cache', ...beh.headers });
        const events = beh.events ?? (beh.endless || beh.line ? goodEvents('').slice(0, 2) : goodEvents('Hello from a hostile stream'));
        for (const ev of events) {
          if (!(await writeAsync(res, sseFrame(ev)))) return undefined;
          if (beh.pauseMs) await sleep(beh.pauseMs);
        }
        entry.bytesSent = 0;
        if (beh.line) {
          // "data: yyyy…" and never a newline.
          const first = `data: ${'y'.repeat(16384)}`;
          const more = 'y'.repeat(16384);
          while (entry.bytesSent < MAX_ENDLESS && (await writeAsync(res, entry.bytesSent ? more : first))) entry.bytesSent += 16384;
        } else if (beh.endless) {
          const frame = sseFrame(delta('spam '.repeat(200)));
          while (entry.bytesSent < MAX_ENDLESS && (await writeAsync(res, frame))) entry.bytesSent += frame.length;
        }
        if (!res.destroyed) res.end();
        return undefined;
      }
      case 'delay':
        await sleep(beh.ms ?? 0);
        return play(res, beh.then, route, params, body, entry);
      case 'path': // { map: { '/realms/hostile/token': behaviour }, else: behaviour }
        return play(res, beh.map?.[entry.url.split('?')[0]] ?? beh.else, route, params, body, entry);
      default:
        return sendJson(res, 500, { error: `unknown behaviour ${kind}` });
    }
  }

  async function readBody(req) {
    const chunks = [];
    let size = 0;
    for await (const chunk of req) {
      size += chunk.length;
      if (size > BODY_LIMIT) throw new Error('request body too large');
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  function collect(text) {
    try {
      const o = JSON.parse(text);
      if (o && typeof o === 'object') for (const k of SECRET_KEYS) keep(o[k]);
    } catch {
      const p = new URLSearchParams(text);
      for (const k of [...SECRET_KEYS, 'token']) keep(p.get(k));
    }
  }

  // Forward proxy (absolute-form request line), to loopback targets only.
  async function proxy(req, res, raw, entry) {
    const target = new URL(req.url);
    assertLoopback(target.hostname);
    collect(raw);
    const grant = new URLSearchParams(raw).get('grant_type');
    entry.grant = grant;
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    headers.host = target.host;
    headers.connection = 'close';
    const upstream = await new Promise((resolve, reject) => {
      const u = http.request({
        host: target.hostname, port: target.port, method: req.method,
        path: target.pathname + target.search, headers, agent: false,
      }, (r) => {
        const chunks = [];
        r.on('data', (c) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode, headers: r.headers, body: Buffer.concat(chunks) }));
        r.on('error', reject);
      });
      u.on('error', reject);
      u.end(raw);
    });
    entry.upstreamStatus = upstream.status;
    collect(upstream.body.toString('utf8'));
    if (grant === 'refresh_token' && proxyDrops > 0) {
      // The provider answered (and maybe rotated the refresh token); the client never hears.
      proxyDrops -= 1;
      entry.dropped = true;
      req.socket.destroy();
      return;
    }
    const h = { ...upstream.headers };
    delete h['transfer-encoding'];
    delete h.connection;
    h['content-length'] = upstream.body.length;
    res.writeHead(upstream.status, h);
    res.end(upstream.body);
  }

  function routeOf(path, method, params) {
    if (path === `${REALM}/.well-known/openid-configuration`) return 'discovery';
    if (path === `${REALM}/device` && method === 'POST') return 'device';
    if (path.startsWith(`${REALM}/token`) && method === 'POST') { // token, token-moved, …
      return params.get('grant_type') === 'refresh_token' ? 'refresh' : 'device_token';
    }
    if (path === `${REALM}/revoke` && method === 'POST') return 'revoke';
    if (path === `${REALM}/certs` && method === 'GET') return 'certs';
    if (path === `${API}/v1/messages` && method === 'POST') return 'messages';
    return 'other';
  }

  async function handle(req, res) {
    const raw = await readBody(req);
    const entry = { method: req.method, url: req.url, at: Date.now(), clientClosed: false };
    res.once('close', () => { entry.clientClosed = !res.writableFinished; entry.closedAt = Date.now(); });
    if (/^https?:\/\//i.test(req.url)) {
      entry.route = 'proxy';
      entry.headers = req.headers;
      log.push(entry);
      return proxy(req, res, raw, entry);
    }
    const path = req.url.split('?')[0];
    if (path.startsWith('/test/')) return control(req, res, path, raw);
    const params = new URLSearchParams(raw);
    const route = routeOf(path, req.method, params);
    entry.route = route;
    entry.headers = req.headers;
    entry.body = raw;
    log.push(entry);
    let body;
    if (route === 'messages') {
      try { body = JSON.parse(raw); } catch { body = undefined; }
    }
    const beh = behaviours[route];
    return play(res, beh, route, params, body, entry);
  }

  // Control routes, for the stand-alone mode.
  function control(req, res, path, raw) {
    const route = `${req.method} ${path}`;
    if (route === 'POST /test/set') { api.set(JSON.parse(raw || '{}')); return sendJson(res, 200, behaviours); }
    if (route === 'POST /test/reset') { api.reset(); return sendJson(res, 200, {}); }
    if (route === 'GET /test/log') return sendJson(res, 200, log);
    if (route === 'GET /test/secrets') return sendJson(res, 200, [...secrets]);
    return sendJson(res, 404, { error: 'no such test route' });
  }

  const onRequest = (req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, { error: 'server_error', error_description: String(err.message) });
      else res.destroy();
    });
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, onRequest) : http.createServer(onRequest);
  server.on('clientError', (err, socket) => socket.destroy());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = server.address().port;
  origin = `${tls ? 'https' : 'http'}://${host}:${bound}`;
  issuer = `${origin}${REALM}`;

  const api = {
    port: bound,
    origin,
    issuer,
    base: `${origin}${API}`,
    proxy: `http://${host}:${bound}`,
    log,
    secrets,
    knobs,
    /** Replaces the behaviour of the routes named (the others keep theirs). */
    set(b) {
      for (const [route, beh] of Object.entries(b)) {
        if (route === 'proxy') proxyDrops = beh?.dropRefresh ?? 0;
        else if (route === 'accessTtl' || route === 'rotate') knobs[route] = beh;
        else behaviours[route] = beh;
      }
    },
    reset() { behaviours = {}; proxyDrops = 0; log.length = 0; },
    count: (route) => log.filter((e) => e.route === route).length,
    last: (route) => [...log].reverse().find((e) => e.route === route),
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
    },
  };
  return api;
}

/** A server that only counts what reaches it: the target of a redirect that must not be followed. */
export async function startSink(host = '127.0.0.2') {
  assertLoopback(host);
  const hits = [];
  const server = http.createServer((req, res) => {
    hits.push({ method: req.method, url: req.url, authorization: req.headers.authorization });
    sendJson(res, 200, { issuer: 'http://sink.invalid', access_token: 'sink' });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return {
    url: `http://${host}:${server.address().port}`,
    hits,
    close: () => new Promise((resolve) => { server.close(() => resolve()); server.closeAllConnections?.(); }),
  };
}

// ---- stand-alone ----------------------------------------------------------------------

async function main() {
  const { values: args } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'watch-stdin': { type: 'boolean', default: false },
    },
  });
  const tls = args['tls-cert'] ? { cert: readFileSync(args['tls-cert']), key: readFileSync(args['tls-key']) } : null;
  const h = await startHostile({ host: args.host, port: Number(args.port), tls });
  const stop = () => { h.close().then(() => process.exit(0)); setTimeout(() => process.exit(0), 2000).unref(); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (args['watch-stdin']) process.stdin.on('end', stop).on('error', stop).resume();
  process.stdout.write(`${JSON.stringify({ ready: true, port: h.port, issuer: h.issuer, base: h.base })}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err) => {
    process.stderr.write(`hostile: ${err.stack || err}\n`);
    process.exit(1);
  });
}
