#!/usr/bin/env node
// A real OpenID Provider (npm oidc-provider) dressed as the studio's Keycloak realm, for the
// end-to-end tests of mlauth.
//
//   node tests/peers/op/server.js [--port N] [--access-ttl S] [--refresh-ttl S] [--device-ttl S]
//                                 [--interval S] [--no-rotate] [--realm NAME] [--watch-stdin]
//
// Prints one line on stdout when listening: {"ready":true,"port":P,"issuer":"…"}; logs go to
// stderr. Listens on 127.0.0.1 only. SIGTERM/SIGINT (or, with --watch-stdin, the end of stdin,
// i.e. the parent test process is gone) close it.
//
// What Keycloak does and oidc-provider does not, added here so the client meets the real
// thing's shapes: the /realms/NAME mount and /protocol/openid-connect/* routes, JWT access
// tokens with Keycloak's claims and header, `refresh_expires_in` in token answers, refresh
// tokens without offline_access (bound to an SSO-session lifetime), `interval` in the device
// authorization answer. Test-only controls live under /test/ at the server root.

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as jose from 'jose';
import Provider from 'oidc-provider';
import TestAdapter, { pendingDeviceCode, revokeAll, stats } from './adapter.js';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    'access-ttl': { type: 'string', default: '7200' },
    // Lifetime of a refresh token without offline_access (Keycloak: "SSO Session Idle").
    'refresh-ttl': { type: 'string', default: '1800' },
    'device-ttl': { type: 'string', default: '600' },
    interval: { type: 'string', default: '1' },
    'no-rotate': { type: 'boolean', default: false },
    realm: { type: 'string', default: 'test' },
    'watch-stdin': { type: 'boolean', default: false },
  },
});

const CLIENT_ID = 'MLAAS-CLI-API';
const SCOPES = ['openid', 'offline_access', 'email', 'profile'];
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
// The resource server the access tokens are for. oidc-provider only mints JWT access tokens
// for a resource indicator; the client never sends one, so this is the default for everyone.
const RESOURCE = 'urn:mlaas:api';
const OFFLINE_TTL = 30 * 24 * 3600; // Keycloak's default offline session idle
const PREFIX = `/realms/${args.realm}`;
const ROUTES = {
  authorization: '/protocol/openid-connect/auth',
  device_authorization: '/protocol/openid-connect/auth/device',
  token: '/protocol/openid-connect/token',
  revocation: '/protocol/openid-connect/revoke',
  jwks: '/protocol/openid-connect/certs',
  userinfo: '/protocol/openid-connect/userinfo',
  end_session: '/protocol/openid-connect/logout',
  introspection: '/protocol/openid-connect/token/introspect',
  pushed_authorization_request: '/protocol/openid-connect/ext/par/request',
  code_verification: '/device',
};

const ACCOUNTS = {
  'alice-id': {
    sub: 'alice-id',
    preferred_username: 'alice',
    email: 'alice@example.test',
    email_verified: true,
    name: 'Alice Example',
    given_name: 'Alice',
    family_name: 'Example',
  },
};

// Everything a test may change at run time through POST /test/set.
const knobs = {
  accessTtl: int(args['access-ttl']),
  refreshTtl: int(args['refresh-ttl']),
  deviceTtl: int(args['device-ttl']),
  interval: int(args.interval),
  rotate: !args['no-rotate'],
  slowDown: 0,
  discoveryIssuer: null,
  tokenDelayMs: 0,
  // Holds token requests of one grant ('refresh_token' or 'device_code') until the client
  // hangs up: { grant, when: 'before' } drops the request unprocessed (as if it never came),
  // { grant, when: 'after' } processes it and keeps a 200 answer from the client (the answer
  // lost on the way back). `held` counts them, so a test kills its client on that event
  // rather than after a guessed delay.  Clearing it (hold: null) lets what is held go on,
  // to clients that still wait (mlauth's detached refresh does; a killed process does not).
  hold: null,
  // A refresh answer without a refresh_token (RFC 6749 section 6: the client keeps its own).
  omitRefreshToken: false,
  dateSkew: 0,
  scopeRejectOffline: false,
  // Keycloak (to 26.7) with a client lacking the offline_access scope: the scope is
  // dropped from device authorization requests without an error (an online session).
  dropOffline: false,
  // Keycloak with a user lacking the offline_access role: an approved device code that
  // asked for it gets not_allowed from the token endpoint, and is spent.
  offlineNotAllowed: false,
  // Keycloak polled while the consent just given is still being saved: this many approved
  // device codes get invalid_scope "Client no longer has requested consent", and are spent.
  consentRace: 0,
  // A forged ID token in device-flow token answers: one of FORGERIES' names, or null.
  idTokenFault: null,
  // The key set at jwks_uri: 'other-key' = a stranger's key under the real key's kid,
  // 'unavailable' = HTTP 503.
  jwksFault: null,
  // The next refresh is answered with this OAuth error ({ error, error_description, status }).
  refreshError: null,
  // The next N device-code polls fail: pollFailure 'close' hangs up, a number is that status.
  pollFailures: 0,
  pollFailure: 503,
};

const COUNTER_NAMES = ['discovery', 'device_authorization', 'token', 'device_token', 'refresh',
  'revocation', 'refresh_errors', 'held', 'jwks'];
let counters = zeroCounters();

function int(s) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) die(`not a non-negative integer: ${s}`);
  return n;
}

function die(msg) {
  process.stderr.write(`op: ${msg}\n`);
  process.exit(2);
}

function log(msg) {
  process.stderr.write(`op: ${msg}\n`);
}

function zeroCounters() {
  return Object.fromEntries(COUNTER_NAMES.map((n) => [n, 0]));
}

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

// ---- the provider ------------------------------------------------------------------------

const b64json = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

// ID tokens a client must refuse (OIDC Core 3.1.3.7), made from a real one. `keys` holds the
// provider's private key and public JWK and a stranger's key pair.
const FORGERIES = {
  signature: (tok) => {
    const [h, p, s] = tok.split('.');
    const sig = Buffer.from(s, 'base64url');
    sig[sig.length >> 1] ^= 1;
    return `${h}.${p}.${sig.toString('base64url')}`;
  },
  aud: (tok, k, h, p) => resign(k.key, h, { ...p, aud: 'another-client' }),
  iss: (tok, k, h, p) => resign(k.key, h, { ...p, iss: 'http://127.0.0.1:1/realms/other' }),
  azp: (tok, k, h, p) => resign(k.key, h, { ...p, aud: [p.aud].flat().concat('x'), azp: 'another-client' }),
  expired: (tok, k, h, p) => {
    const now = Math.floor(Date.now() / 1000);
    return resign(k.key, h, { ...p, iat: now - 7200, exp: now - 3600 });
  },
  'unknown-kid': (tok, k, h, p) => resign(k.key, { ...h, kid: 'no-such-key' }, p),
  'other-key': (tok, k, h, p) => resign(k.strangerKey, h, p),
  none: (tok, k, h, p) => `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(p)}.`,
  // The provider's public key used as an HMAC secret: the classic algorithm confusion.
  hs256: async (tok, k, h, p) => new jose.SignJWT(p).setProtectedHeader({ ...h, alg: 'HS256' })
    .sign(Buffer.from(k.publicPem)),
};

function resign(key, header, payload) {
  return new jose.SignJWT(payload).setProtectedHeader(header).sign(key);
}

async function forge(token, fault, keys) {
  const make = FORGERIES[fault];
  if (!make) throw new Error(`unknown idTokenFault ${fault}`);
  const [h, p] = token.split('.').slice(0, 2).map((s) => JSON.parse(Buffer.from(s, 'base64url')));
  return make(token, keys, h, p);
}

/**
 * A confidential client (HTTP Basic at the token endpoint), for peers such as oidc-agent that
 * send client credentials: OP_CONFIDENTIAL_CLIENT=ID and OP_CONFIDENTIAL_SECRET=SECRET in the
 * environment (a secret never goes on a command line), minted by whoever starts us.
 */
function confidentialClients() {
  const id = process.env.OP_CONFIDENTIAL_CLIENT;
  const secret = process.env.OP_CONFIDENTIAL_SECRET;
  if (!id || !secret) return [];
  return [{
    client_id: id,
    client_secret: secret,
    client_name: 'confidential test client',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [DEVICE_GRANT, 'refresh_token'],
    response_types: [],
    redirect_uris: [],
  }];
}

async function makeProvider(issuer) {
  // A fresh signing key per run: nothing to commit, nothing to leak.
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  jwk.kid = await jose.calculateJwkThumbprint(jwk);
  Object.assign(jwk, { alg: 'RS256', use: 'sig' });
  const stranger = await jose.generateKeyPair('RS256', { extractable: true });
  const { d, p, q, dp, dq, qi, ...publicJwk } = jwk;
  const keys = {
    key: privateKey,
    strangerKey: stranger.privateKey,
    publicPem: await jose.exportSPKI(await jose.importJWK(publicJwk, 'RS256')),
    strangerJwks: { keys: [{ ...(await jose.exportJWK(stranger.publicKey)), kid: jwk.kid, alg: 'RS256', use: 'sig' }] },
  };

  const provider = new Provider(issuer, {
    adapter: TestAdapter,
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    routes: ROUTES,
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name', 'preferred_username', 'given_name', 'family_name'],
    },
    clients: [{
      client_id: CLIENT_ID,
      client_name: 'MLaaS CLI',
      token_endpoint_auth_method: 'none',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      application_type: 'native',
    }, ...confidentialClients()],
    async findAccount(ctx, sub) {
      const account = ACCOUNTS[sub];
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ ...account }) };
    },
    features: {
      devInteractions: { enabled: false }, // nobody logs in through a browser here
      deviceFlow: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        // Without this, a scope containing `openid` yields an opaque token for userinfo.
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (resource !== RESOURCE) throw new Error(`unknown resource ${resource}`);
          return {
            scope: SCOPES.join(' '),
            audience: CLIENT_ID,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    // Keycloak's access token claims.
    async extraTokenClaims(ctx, token) {
      const account = ACCOUNTS[token.accountId];
      if (!account) return undefined;
      const { sub, ...profile } = account;
      return {
        typ: 'Bearer',
        azp: token.clientId,
        sid: token.sid || token.grantId, // one login = one Keycloak session
        acr: '1',
        realm_access: { roles: ['offline_access', 'default-roles-test'] },
        ...profile,
      };
    },
    formats: {
      customizers: {
        // Keycloak's header says typ "JWT" (not RFC 9068's at+jwt), its aud is a list and it
        // has no client_id claim for user tokens.
        jwt(ctx, token, jwt) {
          jwt.header = { typ: 'JWT' };
          jwt.payload.aud = [CLIENT_ID, 'account'];
          delete jwt.payload.client_id;
        },
      },
    },
    // Like Keycloak: a refresh token for every login; offline_access only changes its life.
    issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: () => false,
    rotateRefreshToken: () => knobs.rotate,
    ttl: {
      AccessToken: () => knobs.accessTtl,
      IdToken: () => knobs.accessTtl,
      DeviceCode: () => knobs.deviceTtl,
      RefreshToken: (ctx, token) => (token.scopes.has('offline_access') ? OFFLINE_TTL : knobs.refreshTtl),
      Grant: () => OFFLINE_TTL,
      Session: () => OFFLINE_TTL,
      Interaction: () => 600,
    },
    renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  });

  // Answers oidc-provider leaves out but Keycloak (or RFC 8628) has.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.status !== 200 || !ctx.body || typeof ctx.body !== 'object') return;
    const route = ctx.oidc?.route;
    if (route === 'discovery' && knobs.discoveryIssuer) {
      ctx.body = { ...ctx.body, issuer: knobs.discoveryIssuer };
    } else if (route === 'device_authorization') {
      ctx.body = { ...ctx.body, interval: knobs.interval };
    } else if (route === 'jwks') {
      counters.jwks += 1;
      if (knobs.jwksFault === 'other-key') ctx.body = keys.strangerJwks;
      if (knobs.jwksFault === 'unavailable') {
        ctx.status = 503;
        ctx.body = { error: 'temporarily_unavailable' };
      }
    }
    if (route === 'token' && ctx.body.id_token && knobs.idTokenFault &&
        ctx.oidc.params.grant_type === DEVICE_GRANT) {
      ctx.body = { ...ctx.body, id_token: await forge(ctx.body.id_token, knobs.idTokenFault, keys) };
    }
    if (route === 'token' && ctx.body.refresh_token) {
      const rt = ctx.oidc.entities.RefreshToken;
      ctx.body = {
        ...ctx.body,
        // Keycloak: 0 = offline token (no fixed end); else the SSO session's remaining life.
        refresh_expires_in: rt.scopes.has('offline_access') ? 0 : rt.remainingTTL,
        'not-before-policy': 0,
        session_state: rt.grantId,
      };
      if (knobs.omitRefreshToken && ctx.oidc.params.grant_type === 'refresh_token') {
        const { refresh_token: omitted, refresh_expires_in: alsoOmitted, ...rest } = ctx.body;
        ctx.body = rest;
      }
    }
  });

  provider.on('server_error', (ctx, err) => log(`server_error: ${err.stack || err}`));
  return provider;
}

// ---- approving a device code as the person at the browser would -------------------------

async function decide(provider, userCode, approve) {
  const wanted = userCode === undefined ? undefined : normalizeUserCode(userCode);
  const pending = pendingDeviceCode(wanted);
  if (!pending) return null;
  const code = await provider.DeviceCode.findByUserCode(pending.userCode);
  if (!code) return null;

  if (!approve) {
    code.error = 'access_denied';
    code.errorDescription = 'End-User aborted interaction';
    await code.save();
    return { user_code: code.userCode, denied: true };
  }

  const requested = (code.params.scope || 'openid').split(' ').filter((s) => SCOPES.includes(s));
  const scope = requested.join(' ');
  const grant = new provider.Grant({ accountId: 'alice-id', clientId: code.clientId });
  grant.addOIDCScope(scope);
  grant.addResourceScope(RESOURCE, scope);
  const grantId = await grant.save();

  Object.assign(code, {
    accountId: 'alice-id',
    grantId,
    scope,
    resource: RESOURCE,
    authTime: Math.floor(Date.now() / 1000),
  });
  await code.save();
  return { user_code: code.userCode, approved: true, scope };
}

// Users type codes with or without the dash, in any case; oidc-provider stores them bare.
function normalizeUserCode(s) {
  return String(s).toUpperCase().replace(/\W/g, '');
}

// ---- HTTP plumbing ----------------------------------------------------------------------

const BODY_LIMIT = 64 * 1024;

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

// dateSkew pretends the server's clock is off: every response's Date header moves.
function skewDateHeader(res) {
  const writeHead = res.writeHead.bind(res);
  res.writeHead = (...a) => {
    if (knobs.dateSkew) {
      res.setHeader('Date', new Date(Date.now() + knobs.dateSkew * 1000).toUTCString());
    }
    return writeHead(...a);
  };
}

async function control(provider, req, res, path) {
  const body = req.method === 'POST' ? JSON.parse((await readBody(req)) || '{}') : undefined;
  const route = `${req.method} ${path}`;
  switch (route) {
    case 'POST /test/approve':
    case 'POST /test/deny': {
      const result = await decide(provider, body.user_code, route === 'POST /test/approve');
      if (!result) return sendJson(res, 404, { error: 'no such pending device code' });
      return sendJson(res, 200, result);
    }
    case 'GET /test/counters':
      return sendJson(res, 200, counters);
    case 'POST /test/reset-counters':
      counters = zeroCounters();
      return sendJson(res, 200, counters);
    case 'GET /test/state':
      return sendJson(res, 200, { ...stats(), knobs });
    case 'POST /test/revoke-all':
      revokeAll();
      return sendJson(res, 200, stats());
    case 'POST /test/set': {
      const unknown = Object.keys(body).filter((k) => !(k in knobs));
      if (unknown.length) return sendJson(res, 400, { error: `unknown setting ${unknown.join(', ')}` });
      Object.assign(knobs, body);
      if ('hold' in body && !body.hold) releaseHeld();
      return sendJson(res, 200, knobs);
    }
    default:
      return sendJson(res, 404, { error: `no test route ${route}` });
  }
}

const HOLD_GRANTS = { refresh_token: 'refresh_token', device_code: DEVICE_GRANT };

// Keeps a successful answer from the client (which is then killed): the grant is processed
// and its tokens spent, the bytes never sent. Other answers (authorization_pending) pass.
// Called when a test clears `hold`: held requests go on, held answers are sent (to a
// client that still listens; one killed meanwhile is gone, its answer with it).
let onRelease = [];
function releaseHeld() {
  const fns = onRelease;
  onRelease = [];
  for (const f of fns) f();
}

function holdAnswer(res) {
  const end = res.end.bind(res);
  res.end = (...a) => {
    if (res.statusCode !== 200) return end(...a);
    counters.held += 1;
    onRelease.push(() => { if (!res.socket?.destroyed) end(...a); });
    return res;
  };
}

function oauthError(res, status, error, description) {
  sendJson(res, status, { error, error_description: description });
}

async function handle(provider, callback, req, res) {
  skewDateHeader(res);
  const path = req.url.split('?')[0];
  if (path.startsWith('/test/')) return control(provider, req, res, path);
  if (path !== PREFIX && !path.startsWith(`${PREFIX}/`)) {
    return sendJson(res, 404, { error: 'RESTEASY003210: Could not find resource for full path' });
  }
  const sub = path.slice(PREFIX.length) || '/';

  if (sub === '/.well-known/openid-configuration') counters.discovery += 1;
  if (sub === ROUTES.revocation) counters.revocation += 1;

  // The token and device authorization bodies are read here, before oidc-provider, so the
  // switches below can act on grant_type and scope. oidc-provider then takes the body from
  // req.body (its documented fallback for an upstream body parser; it warns once).
  const isToken = sub === ROUTES.token;
  const isDeviceAuth = sub === ROUTES.device_authorization;
  if (req.method === 'POST' && (isToken || isDeviceAuth)) {
    req.body = await readBody(req);
    const params = new URLSearchParams(req.body);
    if (isDeviceAuth) {
      counters.device_authorization += 1;
      const scope = (params.get('scope') || '').split(' ');
      if (knobs.scopeRejectOffline && scope.includes('offline_access')) {
        return oauthError(res, 400, 'invalid_scope', `Invalid scopes: ${params.get('scope')}`);
      }
      if (knobs.dropOffline && scope.includes('offline_access')) {
        params.set('scope', scope.filter((x) => x !== 'offline_access').join(' '));
        req.body = params.toString();
      }
    } else {
      counters.token += 1;
      const grantType = params.get('grant_type');
      if (grantType === DEVICE_GRANT) counters.device_token += 1;
      if (grantType === 'refresh_token') {
        counters.refresh += 1;
        res.on('finish', () => { if (res.statusCode !== 200) counters.refresh_errors += 1; });
      }
      if (knobs.tokenDelayMs) await sleep(knobs.tokenDelayMs);
      if (knobs.hold && grantType === HOLD_GRANTS[knobs.hold.grant]) {
        if (knobs.hold.when === 'before') {
          counters.held += 1;
          // Until the client hangs up, or the test lets go (hold: null): then the request
          // is served after all, as a slow provider would, if its client still waits.
          const released = await new Promise((r) => {
            if (req.socket.destroyed) return r(false);
            res.once('close', () => r(false));
            onRelease.push(() => r(true));
            return undefined;
          });
          if (!released || req.socket.destroyed) return undefined;
        } else {
          holdAnswer(res);
        }
      }
      if (grantType === 'refresh_token' && knobs.refreshError) {
        const e = knobs.refreshError;
        knobs.refreshError = null;
        return oauthError(res, e.status || 400, e.error, e.error_description);
      }
      if (grantType === DEVICE_GRANT && knobs.pollFailures > 0) {
        knobs.pollFailures -= 1;
        if (knobs.pollFailure === 'close') return req.socket.destroy();
        return sendJson(res, knobs.pollFailure, { error: 'server_error', error_description: 'Down for maintenance' });
      }
      if (grantType === DEVICE_GRANT && (knobs.offlineNotAllowed || knobs.consentRace > 0)) {
        const code = await provider.DeviceCode.find(params.get('device_code') || '');
        const offline = code && (code.scope || '').split(' ').includes('offline_access');
        if (code && code.accountId && knobs.consentRace > 0) {
          knobs.consentRace -= 1;
          await code.destroy();
          return oauthError(res, 400, 'invalid_scope', 'Client no longer has requested consent from user');
        }
        if (code && code.accountId && offline && knobs.offlineNotAllowed) {
          await code.destroy();
          return oauthError(res, 400, 'not_allowed', 'Offline tokens not allowed for the user or client');
        }
      }
      if (grantType === DEVICE_GRANT && knobs.slowDown > 0) {
        knobs.slowDown -= 1;
        return oauthError(res, 400, 'slow_down', 'Slow down');
      }
    }
  }

  // Mount under /realms/NAME: oidc-provider routes on req.url and derives the mount path
  // (for the URLs it prints) from req.originalUrl.
  req.originalUrl = req.url;
  req.url = req.url.slice(PREFIX.length) || '/';
  return callback(req, res);
}

// ---- start and stop ---------------------------------------------------------------------

async function main() {
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(int(args.port), '127.0.0.1', resolve);
  });
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}${PREFIX}`;
  const provider = await makeProvider(issuer);
  const callback = provider.callback();

  server.on('request', (req, res) => {
    handle(provider, callback, req, res).catch((err) => {
      log(`error: ${err.stack || err}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err.message) });
      else res.destroy();
    });
  });

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

  process.stdout.write(`${JSON.stringify({ ready: true, port, issuer })}\n`);
}

main().catch((err) => die(err.stack || String(err)));
