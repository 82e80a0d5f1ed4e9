// Proves the test peers answer for real, before any mlauth test leans on them: the OpenID
// Provider speaks Keycloak's dialect of OAuth, the messages API checks tokens and answers
// in the service's shapes, and the private keyring stores and returns secrets.
// Run: node --test tests/e2e/peers.test.js

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as jose from 'jose';
import {
  groupMembers, startAPI, startKeyring, startOP, stopAll, tmpEnv,
} from './rig.js';
import { tool } from './fixtures.js';

const CLIENT_ID = 'MLAAS-CLI-API';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const FULL_SCOPE = 'openid offline_access email profile';

let op;
let api;
let discovery;

before(async () => {
  op = await startOP({ accessTtl: 60, interval: 1 });
  api = await startAPI({ issuer: op.issuer });
  discovery = await (await fetch(`${op.issuer}/.well-known/openid-configuration`)).json();
});
after(stopAll);

async function form(url, params) {
  const res = await fetch(url, { method: 'POST', body: new URLSearchParams(params) });
  const text = await res.text(); // the revocation endpoint answers 200 with no body
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

const deviceAuthorization = (scope = FULL_SCOPE) => form(discovery.device_authorization_endpoint, { client_id: CLIENT_ID, scope });
const pollToken = (deviceCode) => form(discovery.token_endpoint, { client_id: CLIENT_ID, grant_type: DEVICE_GRANT, device_code: deviceCode });
const refresh = (refreshToken) => form(discovery.token_endpoint, { client_id: CLIENT_ID, grant_type: 'refresh_token', refresh_token: refreshToken });

/** A whole device login, as a person at a browser plus a polling client would do it. */
async function login(scope = FULL_SCOPE) {
  const da = await deviceAuthorization(scope);
  assert.equal(da.status, 200, JSON.stringify(da.body));
  await op.approve(da.body.user_code);
  const tok = await pollToken(da.body.device_code);
  assert.equal(tok.status, 200, JSON.stringify(tok.body));
  return tok.body;
}

function sendMessage(token, body, headers = {}) {
  return fetch(`${api.base}/v1/messages`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const hello = { model: 'claude-opus-4-6', max_tokens: 64, messages: [{ role: 'user', content: 'Hello, world' }] };

describe('OpenID Provider', () => {
  test('discovery has Keycloak paths and the issuer', () => {
    assert.match(op.issuer, /^http:\/\/127\.0\.0\.1:\d+\/realms\/test$/);
    assert.equal(discovery.issuer, op.issuer);
    const oidc = `${op.issuer}/protocol/openid-connect`;
    assert.equal(discovery.device_authorization_endpoint, `${oidc}/auth/device`);
    assert.equal(discovery.token_endpoint, `${oidc}/token`);
    assert.equal(discovery.revocation_endpoint, `${oidc}/revoke`);
    assert.equal(discovery.end_session_endpoint, `${oidc}/logout`);
    assert.equal(discovery.jwks_uri, `${oidc}/certs`);
    assert.equal(discovery.userinfo_endpoint, `${oidc}/userinfo`);
    assert.equal(discovery.authorization_endpoint, `${oidc}/auth`);
    assert.ok(discovery.grant_types_supported.includes(DEVICE_GRANT));
  });

  test('device flow yields a Keycloak-shaped RS256 JWT', async () => {
    const da = await deviceAuthorization();
    assert.equal(da.status, 200);
    assert.equal(da.body.interval, 1);
    assert.ok(da.body.device_code && da.body.user_code);
    assert.equal(da.body.verification_uri, `${op.issuer}/device`);
    assert.equal(da.body.verification_uri_complete,
      `${op.issuer}/device?user_code=${encodeURIComponent(da.body.user_code)}`);

    const pending = await pollToken(da.body.device_code);
    assert.equal(pending.status, 400);
    assert.equal(pending.body.error, 'authorization_pending');

    await op.approve(da.body.user_code);
    const tok = await pollToken(da.body.device_code);
    assert.equal(tok.status, 200, JSON.stringify(tok.body));
    assert.equal(tok.body.token_type, 'Bearer');
    assert.equal(tok.body.expires_in, 60);
    assert.equal(tok.body.refresh_expires_in, 0, 'offline tokens have no fixed end');
    assert.ok(tok.body.refresh_token);
    assert.ok(tok.body.id_token);
    assert.equal(tok.body.scope, FULL_SCOPE);
    assert.match(tok.headers.get('cache-control'), /no-store/);

    const header = jose.decodeProtectedHeader(tok.body.access_token);
    assert.equal(header.alg, 'RS256');
    assert.equal(header.typ, 'JWT');
    assert.ok(header.kid);
    const jwks = jose.createRemoteJWKSet(new URL(discovery.jwks_uri));
    const { payload: c } = await jose.jwtVerify(tok.body.access_token, jwks, { issuer: op.issuer });
    for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'azp', 'typ', 'scope',
      'preferred_username', 'email', 'name', 'sid']) {
      assert.ok(claim in c, `claim ${claim}`);
    }
    assert.equal(c.sub, 'alice-id');
    assert.equal(c.azp, CLIENT_ID);
    assert.equal(c.typ, 'Bearer');
    assert.ok(c.aud.includes(CLIENT_ID));
    assert.equal(c.preferred_username, 'alice');
    assert.equal(c.email, 'alice@example.test');
    assert.equal(c.name, 'Alice Example');
    assert.equal(c.exp - c.iat, 60);
    assert.deepEqual(c.scope.split(' ').sort(), FULL_SCOPE.split(' ').sort());

    // Polling again after success is an error (and, in oidc-provider, revokes the grant).
    const again = await pollToken(da.body.device_code);
    assert.equal(again.body.error, 'invalid_grant');
  });

  test('the API accepts its tokens and rejects tampered ones', async () => {
    const { access_token: at } = await login();
    const ok = await sendMessage(at, hello);
    assert.equal(ok.status, 200);
    assert.ok(ok.headers.get('request-id'));
    const msg = await ok.json();
    assert.equal(msg.type, 'message');
    assert.equal(msg.content[0].text, 'Hello! You said: Hello, world');

    const [h, p, s] = at.split('.');
    const claims = JSON.parse(Buffer.from(p, 'base64url'));
    claims.preferred_username = 'mallory';
    const forged = [h, Buffer.from(JSON.stringify(claims)).toString('base64url'), s].join('.');
    const bad = await sendMessage(forged, hello);
    assert.equal(bad.status, 401);
    assert.equal(typeof (await bad.json()).detail, 'string');

    const none = await sendMessage(undefined, hello);
    assert.equal(none.status, 401);
    assert.deepEqual(await none.json(), { detail: 'Not authenticated' });
  });

  test('refresh rotates; reusing a spent refresh token revokes the grant', async () => {
    const first = await login();
    const before = await op.state();
    const r1 = await refresh(first.refresh_token);
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    assert.notEqual(r1.body.refresh_token, first.refresh_token, 'rotated');
    assert.notEqual(r1.body.access_token, first.access_token);
    assert.equal(r1.body.refresh_expires_in, 0);

    const reuse = await refresh(first.refresh_token);
    assert.equal(reuse.status, 400);
    assert.equal(reuse.body.error, 'invalid_grant');
    // ...and the whole grant is gone, including the token handed out by the rotation.
    const r2 = await refresh(r1.body.refresh_token);
    assert.equal(r2.body.error, 'invalid_grant');
    const after = await op.state();
    assert.ok(after.revoked > before.revoked);
  });

  test('rotation can be switched off', async () => {
    await op.set({ rotate: false });
    try {
      const t = await login();
      const r1 = await refresh(t.refresh_token);
      assert.equal(r1.body.refresh_token, t.refresh_token);
      const r2 = await refresh(t.refresh_token);
      assert.equal(r2.status, 200);
    } finally {
      await op.set({ rotate: true });
    }
  });

  test('without offline_access the refresh token has a fixed life', async () => {
    const t = await login('openid email profile');
    assert.ok(t.refresh_token);
    assert.ok(t.refresh_expires_in > 0 && t.refresh_expires_in <= 1800, String(t.refresh_expires_in));
  });

  test('counters count each kind of request', async () => {
    await op.resetCounters();
    const t = await login();
    await refresh(t.refresh_token);
    await refresh('not-a-refresh-token');
    await form(discovery.revocation_endpoint, { client_id: CLIENT_ID, token: 'nope' });
    await fetch(`${op.issuer}/.well-known/openid-configuration`);
    assert.deepEqual(await op.counters(), {
      discovery: 1, device_authorization: 1, token: 3, device_token: 1, refresh: 2,
      revocation: 1, refresh_errors: 1, held: 0, jwks: 0,
    });
  });

  test('revocation shows in the state', async () => {
    const t = await login();
    const s1 = await op.state();
    assert.ok(s1.active_refresh_tokens >= 1);
    const rv = await fetch(discovery.revocation_endpoint, {
      method: 'POST',
      body: new URLSearchParams({ client_id: CLIENT_ID, token: t.refresh_token, token_type_hint: 'refresh_token' }),
    });
    assert.equal(rv.status, 200);
    const s2 = await op.state();
    assert.equal(s2.active_refresh_tokens, s1.active_refresh_tokens - 1);
    assert.equal(s2.revoked, s1.revoked + 1);
    assert.equal((await refresh(t.refresh_token)).body.error, 'invalid_grant');
  });

  test('revoke-all ends every session', async () => {
    const t = await login();
    await op.revokeAll();
    assert.equal((await op.state()).active_refresh_tokens, 0);
    assert.equal((await refresh(t.refresh_token)).body.error, 'invalid_grant');
  });

  test('slowDown answers the next polls with slow_down', async () => {
    const da = await deviceAuthorization();
    await op.set({ slowDown: 2 });
    assert.equal((await pollToken(da.body.device_code)).body.error, 'slow_down');
    assert.equal((await pollToken(da.body.device_code)).body.error, 'slow_down');
    assert.equal((await pollToken(da.body.device_code)).body.error, 'authorization_pending');
  });

  test('deny, and approving with no pending code', async () => {
    const da = await deviceAuthorization();
    const denied = await op.deny(); // {} = the most recent pending code
    assert.equal(denied.user_code, da.body.user_code.replace('-', ''));
    const tok = await pollToken(da.body.device_code);
    assert.equal(tok.status, 400);
    assert.equal(tok.body.error, 'access_denied');
    await assert.rejects(op.approve('ZZZZ-ZZZZ'), (err) => err.status === 404);
  });

  test('device codes and access tokens expire', async () => {
    let da;
    let t;
    try {
      // TTLs are whole seconds counted from a whole second, so "1" may be barely more
      // than 0: the login gets a normal device code, only the abandoned one is short.
      await op.set({ accessTtl: 1 });
      t = await login();
      await op.set({ deviceTtl: 1 });
      da = await deviceAuthorization();
    } finally {
      await op.set({ deviceTtl: 600, accessTtl: 60 });
    }
    assert.ok(da.body.expires_in <= 1);
    await new Promise((r) => { setTimeout(r, 1100); });
    assert.equal((await pollToken(da.body.device_code)).body.error, 'expired_token');
    const res = await sendMessage(t.access_token, hello);
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { detail: 'Token has expired' });
  });

  test('scopeRejectOffline, discoveryIssuer, dateSkew, tokenDelayMs, accessTtl', async () => {
    try {
      await op.set({ scopeRejectOffline: true });
      const rejected = await deviceAuthorization();
      assert.equal(rejected.status, 400);
      assert.equal(rejected.body.error, 'invalid_scope');
      assert.equal((await deviceAuthorization('openid')).status, 200);
      await op.set({ scopeRejectOffline: false });

      await op.set({ discoveryIssuer: 'http://127.0.0.1:1/realms/other', dateSkew: -3600 });
      const res = await fetch(`${op.issuer}/.well-known/openid-configuration`);
      assert.equal((await res.json()).issuer, 'http://127.0.0.1:1/realms/other');
      const skew = (Date.parse(res.headers.get('date')) - Date.now()) / 1000;
      assert.ok(Math.abs(skew + 3600) < 5, `skew ${skew}`);

      await op.set({ tokenDelayMs: 300, accessTtl: 30 });
      const started = Date.now();
      const t = await login();
      assert.ok(Date.now() - started >= 300);
      assert.equal(t.expires_in, 30);
    } finally {
      await op.set({ scopeRejectOffline: false, discoveryIssuer: null, dateSkew: 0, tokenDelayMs: 0, accessTtl: 60 });
    }
  });

  test('hold keeps a refresh unprocessed, or its answer unsent, until the client hangs up; omitRefreshToken', async () => {
    /** A refresh the client gives up on once the provider counts it as held. */
    async function abandoned(refreshToken) {
      const { held } = await op.counters();
      const ac = new AbortController();
      const req = fetch(discovery.token_endpoint, {
        method: 'POST', signal: ac.signal,
        body: new URLSearchParams({ client_id: CLIENT_ID, grant_type: 'refresh_token', refresh_token: refreshToken }),
      }).then(() => 'answered', (e) => e.name);
      await op.until('held', held + 1);
      ac.abort();
      assert.equal(await req, 'AbortError');
    }
    try {
      const t = await login();
      await op.set({ hold: { grant: 'refresh_token', when: 'before' } });
      await abandoned(t.refresh_token);
      await op.set({ hold: null });
      // Never processed: the refresh token is unspent, and rotation gives a new one.
      const r1 = await refresh(t.refresh_token);
      assert.equal(r1.status, 200, JSON.stringify(r1.body));

      await op.set({ hold: { grant: 'refresh_token', when: 'after' } });
      await abandoned(r1.body.refresh_token);
      await op.set({ hold: null });
      // Processed: that refresh token was spent, so presenting it again is reuse.
      const r2 = await refresh(r1.body.refresh_token);
      assert.equal(r2.status, 400);
      assert.equal(r2.body.error, 'invalid_grant');

      await op.set({ omitRefreshToken: true });
      const t2 = await login();
      const r3 = await refresh(t2.refresh_token);
      assert.equal(r3.status, 200, JSON.stringify(r3.body));
      assert.ok(r3.body.access_token);
      assert.equal(r3.body.refresh_token, undefined);
      assert.equal(r3.body.refresh_expires_in, undefined);
    } finally {
      await op.set({ hold: null, omitRefreshToken: false });
    }
  });
});

describe('messages API', () => {
  let token;
  before(async () => {
    token = (await login()).access_token;
  });

  test('answers an Anthropic message object', async () => {
    await api.reset();
    const res = await sendMessage(token, { ...hello, messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi there' }] }] }, { 'x-application-name': 'peers-test' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    const msg = await res.json();
    assert.deepEqual(Object.keys(msg), ['id', 'type', 'role', 'model', 'content', 'stop_reason', 'stop_sequence', 'usage']);
    assert.match(msg.id, /^msg_/);
    assert.equal(msg.role, 'assistant');
    assert.equal(msg.model, 'claude-opus-4-6');
    assert.deepEqual(msg.content, [{ type: 'text', text: 'Hello! You said: Hi there', citations: null }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.stop_sequence, null);
    assert.deepEqual(Object.keys(msg.usage), ['input_tokens', 'output_tokens', 'cache_creation_input_tokens',
      'cache_read_input_tokens', 'cache_creation', 'server_tool_use', 'service_tier', 'inference_geo']);

    const [seen] = await api.requests();
    assert.equal(seen.method, 'POST');
    assert.equal(seen.path, '/proxy/anthropic/v1/messages');
    assert.equal(seen.authorized, true);
    assert.equal(seen.headers['x-application-name'], 'peers-test');
    assert.equal(JSON.parse(seen.body).model, 'claude-opus-4-6');
  });

  test('validation errors in FastAPI shape', async () => {
    const noMessages = { model: 'claude-opus-4-6', max_tokens: 10 };
    const res = await sendMessage(token, noMessages);
    assert.equal(res.status, 422);
    assert.deepEqual(await res.json(), {
      detail: [{ type: 'missing', loc: ['body', 'messages'], msg: 'Field required', input: noMessages }],
    });
    const broken = await sendMessage(token, '{"model": ');
    assert.equal(broken.status, 422);
    assert.equal((await broken.json()).detail[0].type, 'json_invalid');
    const badRole = await sendMessage(token, { ...hello, messages: [{ role: 'robot', content: 'x' }] });
    assert.deepEqual((await badRole.json()).detail[0].loc, ['body', 'messages', 0, 'role']);
    const empty = await sendMessage(token, { ...hello, messages: [] });
    assert.equal(empty.status, 400);
    assert.equal((await empty.json()).error.type, 'invalid_request_error');
  });

  test('streams SSE events', async () => {
    await api.set({ streamPauseMs: 5 });
    const res = await sendMessage(token, { ...hello, stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const events = parseSse(await res.text());
    const names = events.map((e) => e.event);
    assert.deepEqual(names.slice(0, 3), ['message_start', 'content_block_start', 'ping']);
    assert.deepEqual(names.slice(-3), ['content_block_stop', 'message_delta', 'message_stop']);
    const deltas = events.filter((e) => e.event === 'content_block_delta');
    assert.ok(deltas.length >= 2);
    assert.equal(deltas.map((e) => e.data.delta.text).join(''), 'Hello! You said: Hello, world');
    assert.ok(events.find((e) => e.event === 'message_delta').data.usage.output_tokens > 0);
    await api.set({ streamPauseMs: 50 });
  });

  test('script entries answer the next requests, then normal service resumes', async () => {
    await api.reset();
    await api.script([
      { status: 429, headers: { 'retry-after': '1' }, body: { detail: 'Rate limit exceeded' } },
      { status: 502, body: 'Bad Gateway', headers: { 'content-type': 'text/plain' }, delayMs: 100 },
      { status: 401, body: { detail: 'forced' }, skipAuth: true },
      { status: 200, stream: [{ event: 'message_start', data: { type: 'message_start' } }, 'event: ping\ndata: {}\n\n'], pauseMs: 1 },
    ]);
    const r1 = await sendMessage(token, hello);
    assert.equal(r1.status, 429);
    assert.equal(r1.headers.get('retry-after'), '1');
    assert.deepEqual(await r1.json(), { detail: 'Rate limit exceeded' });

    const unauthorized = await sendMessage('garbage', hello); // does not use up an entry
    assert.equal(unauthorized.status, 401);

    const t0 = Date.now();
    const r2 = await sendMessage(token, hello);
    assert.equal(r2.status, 502);
    assert.ok(Date.now() - t0 >= 100);
    assert.equal(await r2.text(), 'Bad Gateway');

    const r3 = await sendMessage(undefined, hello);
    assert.deepEqual([r3.status, await r3.json()], [401, { detail: 'forced' }]);

    const r4 = await sendMessage(token, hello);
    assert.equal(await r4.text(), 'event: message_start\ndata: {"type":"message_start"}\n\nevent: ping\ndata: {}\n\n');

    const r5 = await sendMessage(token, hello);
    assert.equal(r5.status, 200);
    assert.equal((await api.requests()).map((r) => r.authorized).join(), 'true,false,true,false,true,true');
  });

  test('a truncated answer cuts the connection', async () => {
    await api.script([{ status: 200, body: { type: 'message', content: [{ type: 'text', text: 'x'.repeat(200) }] }, truncate: true }]);
    const res = await sendMessage(token, hello);
    assert.equal(res.status, 200);
    await assert.rejects(res.text());
  });

  test('rejects tokens signed by anyone else', async () => {
    const { privateKey } = await jose.generateKeyPair('RS256');
    const selfMade = await new jose.SignJWT({ sub: 'alice-id' })
      .setProtectedHeader({ alg: 'RS256', kid: 'not-theirs' }).setIssuer(op.issuer)
      .setIssuedAt().setExpirationTime('1h').sign(privateKey);
    const res = await sendMessage(selfMade, hello);
    assert.equal(res.status, 401);
  });
});

describe('private keyring', () => {
  test('secret-tool stores and looks up a secret', async () => {
    const { env } = tmpEnv();
    const kr = await startKeyring(env);
    const secretEnv = { PATH: process.env.PATH, LANG: 'C.UTF-8', ...env, ...kr.env };
    const secret = `s3cret-${Date.now()}`;
    const stored = await tool('secret-tool', ['store', '--label=peers test', 'profile', 'default', 'service', 'mlauth-peers-test'], secretEnv, secret);
    assert.equal(stored.code, 0, stored.err);
    const found = await tool('secret-tool', ['lookup', 'profile', 'default', 'service', 'mlauth-peers-test'], secretEnv);
    assert.equal(found.code, 0, found.err);
    assert.equal(found.out, secret);
    await kr.stop();
    assert.deepEqual(groupMembers(kr.pid), [], 'the whole session is gone');
  });

  test('a bare bus has no Secret Service', async () => {
    const { env } = tmpEnv();
    const kr = await startKeyring(env, { secrets: false });
    // dbus-send exits without reading its input: fixtures' tool ignores the EPIPE that the
    // old copy of it here failed on when the exit came first.
    const r = await tool('dbus-send', ['--session', '--print-reply', '--dest=org.freedesktop.DBus', '/org/freedesktop/DBus',
      'org.freedesktop.DBus.NameHasOwner', 'string:org.freedesktop.secrets'], { PATH: process.env.PATH, ...kr.env });
    assert.match(r.out, /boolean false/);
    await kr.stop();
  });
});

function parseSse(text) {
  return text.split('\n\n').filter((f) => f.trim()).map((frame) => {
    const ev = {};
    for (const line of frame.split('\n')) {
      const [k, ...v] = line.split(': ');
      ev[k] = v.join(': ');
    }
    return { event: ev.event, data: JSON.parse(ev.data) };
  });
}

test('the provider takes a confidential client with HTTP Basic when asked to (oidc-agent, make bench)', async () => {
  const secret = (await import('node:crypto')).randomBytes(18).toString('base64url');
  const cop = await startOP({ env: { OP_CONFIDENTIAL_CLIENT: 'bench-agent', OP_CONFIDENTIAL_SECRET: secret } });
  const d = await (await fetch(`${cop.issuer}/.well-known/openid-configuration`)).json();
  const ask = async (auth) => {
    const res = await fetch(d.device_authorization_endpoint, {
      method: 'POST', body: new URLSearchParams({ scope: 'openid offline_access' }),
      headers: { authorization: `Basic ${Buffer.from(auth).toString('base64')}` },
    });
    return { status: res.status, body: await res.json() };
  };
  const ok = await ask(`bench-agent:${secret}`);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.ok(ok.body.user_code);
  const bad = await ask('bench-agent:wrong');
  assert.equal(bad.status, 401);
  assert.equal(bad.body.error, 'invalid_client');
  // Without the environment there is no such client: the rig's default stays public-only.
  const plain = await fetch(discovery.device_authorization_endpoint, {
    method: 'POST', body: new URLSearchParams({ scope: 'openid' }),
    headers: { authorization: `Basic ${Buffer.from(`bench-agent:${secret}`).toString('base64')}` },
  });
  assert.equal(plain.status, 401);
});
