// Hostile and broken servers, in both roles mlauth talks to: the identity provider
// (discovery, device flow, token, refresh, revocation) and the messages API (send).
// Every case must end in one clear error line and a documented exit status, promptly:
// never a crash, a hang, a followed redirect, or a secret in the message.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { run, stopAll, tmpEnv } from './rig.js';
import { JWT, ageSession, hostilePeers, selfSigned } from './fixtures.js';

const peers = hostilePeers();
after(stopAll);

// The provider's requests: 3 s at most, for the cases that end on that timeout only. Every
// other case keeps the default, so a peer slowed by load (it shares this process's event
// loop with a dozen endless bodies) is not mistaken for a dead one.
const T = ['-o', 'timeout=3'];
const MiB = 1024 * 1024;

const hostile = peers.hostile;
const sink = () => peers.sink('127.0.0.2');

/** A private home using the file store, pointed at h in both roles. */
function homeFor(h, extra = {}) {
  const home = tmpEnv();
  return {
    ...home.env, MLAUTH_ISSUER: h.issuer, MLAUTH_API_BASE: h.base, MLAUTH_STORE: 'file', ...extra,
  };
}

const recordPath = (env) => join(env.XDG_STATE_HOME, 'mlauth', 'default.json');
const readRecord = (env) => JSON.parse(readFileSync(recordPath(env), 'utf8'));

async function login(env, args = [], globals = []) {
  return run([...globals, 'login', '--no-browser', ...args], { env, timeoutMs: 120_000 });
}

async function loggedIn(h, extra) {
  const env = homeFor(h, extra);
  // The login is set-up here, not the case under test: the default timeout, since the
  // peer shares this process's event loop with a dozen endless bodies at once.
  const r = await run(['login', '--no-browser'], { env, timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  return env;
}

/**
 * r failed cleanly: exit `code`, nothing on stdout, a last stderr line "mlauth: …" matching
 * re, no terminal escapes, no secret the server handed out, not killed by the rig's hang
 * guard. How long it took is not asserted: a loaded machine may take any time; the message
 * says which limit ended it.
 */
function failsClearly(r, code, re, h) {
  assert.equal(r.timedOut, false, 'mlauth hung until the rig killed it');
  assert.equal(r.signal, null, `mlauth died of ${r.signal}`);
  assert.equal(r.code, code, `exit ${r.code}, want ${code}: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  const last = lines[lines.length - 1];
  assert.match(last, /^mlauth: /, r.stderr);
  assert.match(last, re);
  assert.ok(last.length < 600, `one short line: ${last}`);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(r.stderr, /[\u0000-\u0008\u000b-\u001f\u007f]/, 'no control characters from a server');
  for (const s of h?.secrets ?? []) assert.ok(!r.stderr.includes(s), 'no secret in the message');
}

async function timed(p) {
  const started = Date.now();
  const r = await p;
  return { ...r, ms: Date.now() - started };
}

/** The session on disk is what it was: still parses, same refresh token, nothing left beside it. */
function recordIntact(env, before) {
  const now = readRecord(env);
  assert.equal(now.refresh_token, before.refresh_token);
  assert.equal(now.access_token, before.access_token);
  assert.deepEqual(readdirSync(join(env.XDG_STATE_HOME, 'mlauth')).filter((f) => f !== 'default.lock'), ['default.json']);
}

// Two groups at a time: the messages API's 15 s stall tests overlap the provider's groups.
describe('hostile servers', { concurrency: 2 }, () => {
  // ---- the messages API -----------------------------------------------------------------------

  describe('a hostile messages API', { concurrency: 6 }, () => {
    const send = (env, args) => timed(run(['send', '--retries', '0', ...args], { env, timeoutMs: 120_000 }));

    test('an endless body stops at the size cap: exit 4', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'endless' } });
      const r = await send(env, ['hi']);
      failsClearly(r, 4, /response from http:\/\/127\.0\.0\.1:\d+ too large \(over 4 MiB\)$/, h);
    });

    test('an answer too large is not asked for again, even with retries left', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'endless' } });
      const r = await timed(run(['send', '--retries', '2', 'hi'], { env, timeoutMs: 120_000 }));
      failsClearly(r, 4, /too large \(over 4 MiB\)$/, h);
      assert.equal(h.count('messages'), 1, 'attempts');
    });

    test('a huge Content-Length: exit 4', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'huge', size: 100 * MiB } });
      failsClearly(await send(env, ['hi']), 4, /too large \(over 4 MiB\)$/, h);
    });

    test('an answer that stalls mid-body is given up on after 15 s: exit 4', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'stall', prefix: '{"type":"message","content":[{"type":"text","text":"Hel' } });
      const r = await send(env, ['hi']);
      failsClearly(r, 4, /http:\/\/127\.0\.0\.1:\d+ stopped sending its answer \(nothing for 15 s\)$/, h);
      assert.ok(r.ms >= 15_000, `gave up after ${r.ms} ms`); // a floor: load only adds to it
      assert.equal(h.last('messages').clientClosed, true);
    });

    test('a stream that stalls after its first words: the words kept, exit 4 after 15 s', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({
        messages: {
          kind: 'stall',
          contentType: 'text/event-stream',
          prefix: 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Half an answer"}}\n\n',
        },
      });
      const r = await send(env, ['--stream', 'hi']);
      failsClearly(r, 4, /^mlauth: the answer was cut off before it ended: .*stopped sending its answer \(nothing for 15 s\)$/, h);
      assert.equal(r.stdout, 'Half an answer\n');
      assert.ok(r.ms >= 15_000, `gave up after ${r.ms} ms`);
    });

    test('an endless event stream stops at the stream cap: exit 4', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'sse', endless: true } });
      const r = await send(env, ['--stream', 'hi']);
      failsClearly(r, 4, /cut off before it ended: response from .* too large \(over 64 MiB\)$/, h);
      assert.ok(h.last('messages').bytesSent < 128 * MiB);
    });

    test('one event-stream line that never ends: exit 5', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'sse', line: true } });
      failsClearly(await send(env, ['--stream', 'hi']), 5, /event stream line longer than \d+ bytes$/, h);
    });

    test('deeply nested JSON: exit 5', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'nested' } });
      failsClearly(await send(env, ['hi']), 5, /the reply is nested too deeply$/, h);
    });

    test('invalid UTF-8 in the text: exit 5', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'raw', body: Buffer.concat([Buffer.from('{"type":"message","content":[{"type":"text","text":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}]}')]) } });
      const r = await send(env, ['hi']);
      failsClearly(r, 5, /the reply is not valid UTF-8$/, h);
    });

    test('invalid UTF-8 inside a stream event: exit 5, no mojibake printed', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      const bad = Buffer.concat([Buffer.from('event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'), Buffer.from([0xff]), Buffer.from('"}}\n\n')]);
      h.set({ messages: { kind: 'raw', contentType: 'text/event-stream', body: bad } });
      const r = await send(env, ['--stream', 'hi']);
      assert.equal(r.timedOut, false);
      assert.equal(r.code, 5, r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, 'mlauth: malformed stream event (content_block_delta): its data is not valid UTF-8\n');
    });

    test('an HTML page instead of JSON: exit 5', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'raw', contentType: 'text/html', body: '<html><body>Bad gateway</body></html>' } });
      failsClearly(await send(env, ['hi']), 5, /^mlauth: the reply is an HTML page, not JSON$/, h);
    });

    test('a JSON answer to a stream request is read as the reply it is', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'json', body: { type: 'message', content: [{ type: 'text', text: 'not streamed' }] } } });
      const r = await send(env, ['--stream', 'hi']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'not streamed\n');
      assert.equal(r.stderr, '');
    });

    test('an event stream cut short is still "ended early": exit 5', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'raw', contentType: 'text/event-stream', body: 'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"x","content":[]}}\n\n' } });
      failsClearly(await send(env, ['--stream', 'hi']), 5, /stream ended early \(no message_stop\)/, h);
    });

    test('an event stream to a plain request: exit 5', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'sse' } });
      failsClearly(await send(env, ['hi']), 5, /the reply is not valid JSON/, h);
    });

    test('a redirect is not followed: exit 5, nothing reaches the target', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      const s = await sink();
      h.set({ messages: { kind: 'redirect', status: 307, location: `${s.url}/proxy/anthropic/v1/messages` } });
      failsClearly(await send(env, ['hi']), 5, /HTTP 307: .*redirect/, h);
      assert.equal(s.hits.length, 0, 'the bearer token was not sent elsewhere');
    });

    test('an API that hangs up: exit 4; with retries, a few attempts and then exit 4', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      h.set({ messages: { kind: 'close' } });
      failsClearly(await send(env, ['hi']), 4, /cannot reach http:\/\/127\.0\.0\.1:\d+: /, h);
      assert.equal(h.count('messages'), 1);
      const r = await timed(run(['send', '--retries', '2', 'hi'], { env, timeoutMs: 120_000 }));
      failsClearly(r, 4, /cannot reach/, h);
      assert.equal(h.count('messages'), 4);
    });

    test('an error body that quotes the bearer token does not repeat it', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      const { access_token: at } = readRecord(env);
      h.set({ messages: { kind: 'json', status: 400, body: { detail: `invalid token ${at}` } } });
      const r = await send(env, ['hi']);
      failsClearly(r, 5, /^mlauth: HTTP 400: /, h);
      assert.ok(!r.stderr.includes(at), 'the token is not quoted back');
      // Nor by the -vv trace, where it comes back under a key no list of names foresees.
      const v = await run(['-vv', 'send', '--retries', '0', 'hi'], { env });
      assert.equal(v.code, 5);
      assert.match(v.stderr, /^< \{"detail":"invalid token \[redacted\]"\}$/m);
      assert.ok(!v.stderr.includes(at), 'the -vv trace quotes the token back');
    });
  });

  // ---- the identity provider: discovery ------------------------------------------------------

  describe('a hostile provider at discovery', { concurrency: 6 }, () => {
    test('an endless body stops at the size cap: exit 4, "too large"', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'endless' } });
      const env = homeFor(h);
      const r = await timed(login(env));
      failsClearly(r, 4, /response from http:\/\/127\.0\.0\.1:\d+ too large \(over 4 MiB\)$/, h);
      const e = h.last('discovery');
      assert.ok(e.bytesSent < 64 * MiB, `the client left early (${e.bytesSent} bytes sent)`);
      assert.equal(h.count('device'), 0);
      assert.equal(existsSync(recordPath(env)), false);
    });

    test('a huge Content-Length is refused before the body arrives: exit 4', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'huge', size: 200 * MiB } });
      const r = await timed(login(homeFor(h)));
      failsClearly(r, 4, /too large \(over 4 MiB\)$/, h);
      assert.ok(h.last('discovery').bytesSent < 64 * MiB);
    });

    test('a server that stalls mid-body is given up on after the timeout: exit 4', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'stall', prefix: '{"issuer":"http://127.0.0.1' } });
      const r = await timed(login(homeFor(h), [], T));
      // With timeout=3 the total timeout and the stall check (min(timeout, 15) s) coincide.
      failsClearly(r, 4, /(Operation timed out after \d+ milliseconds|stopped sending its answer \(nothing for 3 s\))/, h);
      assert.ok(r.ms >= 2500, `gave up after ${r.ms} ms`);
      assert.equal(h.last('discovery').clientClosed, true, 'mlauth closed the connection');
    });

    test('deeply nested JSON is refused without recursion trouble: exit 1', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'nested', depth: 200_000 } });
      failsClearly(await login(homeFor(h)), 1, /discovery at http:\/\/127\.0\.0\.1:\d+ is nested too deeply$/, h);
    });

    test('invalid UTF-8 is refused: exit 1', async () => {
      const h = await hostile();
      // "issuer": "<0xff 0xfe>" — not UTF-8.
      h.set({ discovery: { kind: 'raw', body: Buffer.from([...Buffer.from('{"issuer":"'), 0xff, 0xfe, ...Buffer.from('"}')]) } });
      failsClearly(await login(homeFor(h)), 1, /discovery at .* is not valid UTF-8$/, h);
    });

    test('an HTML page (a captive portal) is named as such: exit 1', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'raw', contentType: 'text/html', body: '<!doctype html><title>Wi-Fi login</title>' } });
      failsClearly(await login(homeFor(h)), 1, /discovery at .* is an HTML page, not JSON$/, h);
    });

    test('JSON under the wrong content type is read as JSON, and checked like any answer', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'raw', contentType: 'text/plain', body: '{"issuer":"https://evil.example/realms/x"}' } });
      failsClearly(await login(homeFor(h)), 1, /names issuer https:\/\/evil\.example\/realms\/x, expected http:\/\/127\.0\.0\.1/, h);
    });

    test('a redirect to plain http on another host is not followed: exit 4', async () => {
      const h = await hostile();
      const s = await sink();
      h.set({ discovery: { kind: 'redirect', status: 302, location: `${s.url}/realms/hostile/.well-known/openid-configuration` } });
      failsClearly(await login(homeFor(h)), 4, /answered with a redirect \(HTTP 302\)/, h);
      assert.equal(s.hits.length, 0, 'nothing reached the redirect target');
    });

    test('a permanent redirect to another https host is not followed either: exit 4', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'redirect', status: 308, location: 'https://login.evil.example/realms/hostile/.well-known/openid-configuration' } });
      failsClearly(await login(homeFor(h)), 4, /answered with a redirect \(HTTP 308\)/, h);
    });

    test('endpoints on plain http to a non-loopback host are refused: exit 1', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'good', patch: { token_endpoint: 'http://evil.example/token' } } });
      failsClearly(await login(homeFor(h)), 1, /lists token_endpoint http:\/\/evil\.example\/token: not https/, h);
      assert.equal(h.count('device'), 0);
    });

    test('a provider that hangs up without a word: exit 4', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'close' } });
      failsClearly(await login(homeFor(h)), 4, /cannot reach http:\/\/127\.0\.0\.1:\d+: /, h);
    });

    test('a provider that hangs up halfway through the body: exit 4', async () => {
      const h = await hostile();
      h.set({ discovery: { kind: 'closeMid', prefix: '{"issuer":"http' } });
      failsClearly(await login(homeFor(h)), 4, /cannot reach http:\/\/127\.0\.0\.1:\d+: /, h);
    });
  });

  // ---- the identity provider: device flow and token answers ---------------------------------

  describe('a hostile provider in the device flow', { concurrency: 6 }, () => {
    test('verification URIs that are not web pages are refused before anything is shown', async () => {
      for (const patch of [
        { verification_uri: 'javascript:alert(1)' },
        { verification_uri_complete: 'file:///etc/passwd' },
        { verification_uri: 'http://evil.example/device', verification_uri_complete: null },
      ]) {
        const h = await hostile();
        h.set({ device: { kind: 'good', patch } });
        const r = await login(homeFor(h));
        failsClearly(r, 1, /verification_uri(_complete)? .* is not https/, h);
        assert.doesNotMatch(r.stderr, /open this link/);
        assert.equal(h.count('device_token'), 0);
      }
    });

    test('a user code with terminal escapes is refused, not printed', async () => {
      const h = await hostile();
      h.set({ device: { kind: 'good', patch: { user_code: 'AB\u001b]0;pwned\u0007CD' } } });
      const r = await login(homeFor(h));
      failsClearly(r, 1, /has no usable user_code$/, h);
      assert.ok(!r.stderr.includes('pwned'));
    });

    test('a token answer without access_token: exit 1, nothing stored', async () => {
      const h = await hostile();
      h.set({ device_token: { kind: 'good', patch: { access_token: null } } });
      const env = homeFor(h);
      failsClearly(await login(env), 1, /the token answer has no access_token$/, h);
      assert.equal(existsSync(recordPath(env)), false);
      assert.equal(h.count('device_token'), 1, 'no poll after the answer');
    });

    test('a token answer whose access token is not a JWT: exit 1, nothing stored', async () => {
      const h = await hostile();
      h.set({ device_token: { kind: 'good', patch: { access_token: 'opaque-1234567890' } } });
      const env = homeFor(h);
      failsClearly(await login(env), 1, /^mlauth: the provider's access token is unusable \(not a JWT: expected three dot-separated parts\)$/, h);
      assert.equal(existsSync(recordPath(env)), false);
      const s = await run(['status'], { env });
      assert.equal(s.code, 3);
    });

    test('an access token with bytes a header cannot carry: exit 1', async () => {
      const h = await hostile();
      h.set({ device_token: { kind: 'good', patch: { access_token: 'a\r\nX-Injected: 1' } } });
      failsClearly(await login(homeFor(h)), 1, /access_token holds characters a token cannot$/, h);
    });

    test('expires_in negative, absurd or not a number: exit 1', async () => {
      for (const expires of [-5, 0, 99_999_999_999, '3600', 1.5]) {
        const h = await hostile();
        h.set({ device_token: { kind: 'good', patch: { expires_in: expires } } });
        const env = homeFor(h);
        failsClearly(await login(env), 1, /expires_in is not a number of seconds between 1 and a year$/, h);
        assert.equal(existsSync(recordPath(env)), false);
      }
    });

    test('a token type other than Bearer: exit 1', async () => {
      const h = await hostile();
      h.set({ device_token: { kind: 'good', patch: { token_type: 'mac' } } });
      failsClearly(await login(homeFor(h)), 1, /token type mac is not supported \(expected Bearer\)$/, h);
    });

    // RFC 8628 3.5: a provider in trouble while the code is pending is no reason to give
    // the code up; the login polls less often, says so once, and ends when the code expires
    // (a 3 s code here).
    for (const [what, beh, why] of [
      ['hangs up', { kind: 'close' }, /cannot reach http:\/\/127\.0\.0\.1:\d+: /],
      ['sends an endless answer', { kind: 'endless', chunk: `{"access_token":"${'A'.repeat(65_000)}` }, /too large \(over 4 MiB\)/],
    ]) {
      test(`a token endpoint that ${what}: polled less often until the code expires, exit 1`, async () => {
        const h = await hostile();
        h.set({ device: { kind: 'good', patch: { expires_in: 3 } }, device_token: beh });
        const r = await login(homeFor(h));
        failsClearly(r, 1, /^mlauth: the code expired before it was approved: run mlauth login again$/, h);
        const notes = r.stderr.split('\n').filter((l) => l.startsWith('The identity provider cannot be reached'));
        assert.equal(notes.length, 1, r.stderr);
        assert.match(notes[0], why);
        assert.match(notes[0], /still waiting, trying less often\.$/);
      });
    }

    test('a token endpoint that echoes the device code in its error does not get it repeated', async () => {
      const h = await hostile();
      const dc = `dc-${'A1b2C3d4'.repeat(6)}`;
      h.secrets.add(dc);
      h.set({
        device: { kind: 'good', patch: { device_code: dc } },
        device_token: { kind: 'json', status: 400, body: { error: 'invalid_request', error_description: `unknown device_code ${dc}` } },
      });
      const r = await login(homeFor(h));
      failsClearly(r, 1, /the token endpoint refused: invalid_request \(unknown device_code \[redacted\]\)$/, h);
    });
  });

  // ---- the identity provider: refresh and revocation ----------------------------------------

  describe('a hostile provider at refresh time', { concurrency: 6 }, () => {
    // Each case: a good login, then the access token expired, then the refresh answered badly.
    const cases = [
      ['an endless body', { kind: 'endless' }, 4, /too large \(over 4 MiB\)$/],
      ['a hang-up', { kind: 'close' }, 4, /cannot reach http:\/\/127\.0\.0\.1:\d+: /],
      ['a stall mid-body', { kind: 'stall', prefix: '{"access_token":"eyJ' }, 4, /Operation timed out after \d+ milliseconds|stopped sending its answer/],
      ['deep nesting', { kind: 'nested' }, 1, /the token answer is nested too deeply$/],
      ['invalid UTF-8', { kind: 'raw', body: Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]) }, 1, /the token answer is not valid UTF-8$/],
      ['an HTML page', { kind: 'raw', contentType: 'text/html', body: '<html>login</html>' }, 1, /the token answer is an HTML page, not JSON$/],
      ['a redirect', { kind: 'redirect', location: 'http://127.0.0.2:9/token' }, 4, /answered with a redirect \(HTTP 302\)/],
      ['no access_token', { kind: 'good', patch: { access_token: null } }, 1, /no access_token$/],
      ['a non-JWT access token', { kind: 'good', patch: { access_token: 'opaque-token' } }, 1, /access token is unusable \(not a JWT/],
      ['a negative expires_in', { kind: 'good', patch: { expires_in: -3600 } }, 1, /expires_in is not a number of seconds/],
      ['an absurd expires_in', { kind: 'good', patch: { expires_in: 1e12 } }, 1, /expires_in is not a number of seconds/],
      ['invalid_grant', { kind: 'json', status: 400, body: { error: 'invalid_grant', error_description: 'Token is not active' } }, 3, /session expired or revoked: run mlauth login$/],
      ['a 503', { kind: 'json', status: 503, body: { error: 'temporarily_unavailable' } }, 4, /unavailable \(HTTP 503\)$/],
    ];
    for (const [what, beh, code, re] of cases) {
      // A 200 refused for its access token or lifetime still carries a rotated refresh token.
      const rotated = beh.kind === 'good';
      const outcome = code === 3 ? 'the session marked refused'
        : rotated ? 'its new refresh token kept, the next call works' : 'the stored session untouched';
      test(`${what}: exit ${code}, ${outcome}`, async () => {
        const h = await hostile();
        const env = await loggedIn(h);
        const before = readRecord(env);
        await ageSession(env, -60);
        h.set({ refresh: beh });
        const r = await run([...(beh.kind === 'stall' ? T : []), 'token'], { env, timeoutMs: 120_000 });
        failsClearly(r, code, re, h);
        // An answer may have spent the refresh token: it is never presented twice. Only a
        // redirect (the endpoint moved: nothing was processed) earns a discovery and a retry.
        assert.equal(h.count('refresh'), beh.kind === 'redirect' ? 2 : 1, 'refresh requests');
        // Tokens come only from a good answer; the refresh token also from a 200 whose rest
        // is refused (the provider spent the old one); a refused one is marked, not kept.
        const now = readRecord(env);
        if (code === 3) {
          assert.equal(now.refresh_token, undefined);
          assert.ok(now.refused_at > 0);
        } else if (rotated) {
          assert.notEqual(now.refresh_token, before.refresh_token);
        } else {
          assert.equal(now.refresh_token, before.refresh_token);
        }
        assert.equal(now.access_token, before.access_token);
        assert.deepEqual(readdirSync(join(env.XDG_STATE_HOME, 'mlauth')).filter((f) => f !== 'default.lock'), ['default.json']);
        const s = await run(['status'], { env });
        assert.equal(s.code, code === 3 ? 3 : 0, s.stderr);
        if (rotated) {
          // No new login needed: the kept refresh token is the live one.
          h.set({ refresh: { kind: 'good' } });
          const t = await run([...T, 'token'], { env });
          assert.equal(t.code, 0, t.stderr);
          assert.match(t.stdout.trimEnd(), JWT);
        }
      });
    }

    // While the current token is still valid, a provider that cannot be reached or answers
    // nonsense costs a warning, not the token; a session that is over still ends it.
    const stillValid = [
      ['unreachable', { kind: 'close' }, /cannot reach .*/],
      ['an HTML page', { kind: 'raw', contentType: 'text/html', body: '<html>outage</html>' }, /the token answer is an HTML page, not JSON/],
      ['a non-JWT access token', { kind: 'good', patch: { access_token: 'opaque-token' } }, /the provider's access token is unusable \(not a JWT.*\)/],
    ];
    for (const [what, beh, why] of stillValid) {
      test(`${what} while the token is still valid: the token, with a warning, exit 0`, async () => {
        const h = await hostile();
        const env = await loggedIn(h);
        const before = readRecord(env);
        await ageSession(env, 120); // stale (under min_valid), not expired
        h.set({ refresh: beh });
        const r = await run(['token'], { env });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, `${before.access_token}\n`);
        assert.match(r.stderr, new RegExp(`^mlauth: warning: could not refresh \\(${why.source}\\); using the current token, valid for (1m|2m)`));
        if (beh.kind === 'good') {
          // A 200 spent the old refresh token: the one it carried is kept.
          const now = readRecord(env);
          assert.notEqual(now.refresh_token, before.refresh_token);
          assert.equal(now.access_token, before.access_token);
        } else {
          recordIntact(env, before);
        }
      });
    }

    test('invalid_grant while the token is still valid: exit 3, the session is over', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      await ageSession(env, 120);
      h.set({ refresh: { kind: 'json', status: 400, body: { error: 'invalid_grant' } } });
      const r = await run(['token'], { env });
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, '');
    });

    test('an error that echoes the refresh token does not repeat it', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      const { refresh_token: rt } = readRecord(env);
      await ageSession(env, -60);
      h.set({ refresh: { kind: 'json', status: 400, body: { error: 'invalid_request', error_description: `refresh token ${rt} malformed` } } });
      const r = await run(['token'], { env });
      failsClearly(r, 1, /the token endpoint refused: invalid_request \(refresh token .*\[redacted\].* malformed\)$/, h);
      assert.ok(!r.stderr.includes(rt));
      const v = await run(['-vv', 'token'], { env });
      assert.equal(v.code, 1);
      assert.match(v.stderr, /^< .*"error_description":"refresh token \[redacted\] malformed"/m);
      assert.match(v.stderr, /^> .*refresh_token=\[redacted\]/m);
      assert.ok(!v.stderr.includes(rt), 'the -vv trace quotes the refresh token back');
    });

    test('a token endpoint that moved (404) is found again through discovery: one good refresh', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      const before = readRecord(env);
      await ageSession(env, -60);
      h.set({
        discovery: { kind: 'good', patch: { token_endpoint: `${h.issuer}/token-moved` } },
        refresh: {
          kind: 'path',
          map: { '/realms/hostile/token': { kind: 'json', status: 404, body: { error: 'RESTEASY003210: Could not find resource for full path' } } },
          else: { kind: 'good' },
        },
      });
      const r = await run(['token'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(h.log.filter((e) => e.route === 'refresh').map((e) => e.url),
        ['/realms/hostile/token', '/realms/hostile/token-moved']);
      assert.notEqual(readRecord(env).refresh_token, before.refresh_token);
    });

    test('a good refresh keeps working after all that', async () => {
      const h = await hostile();
      const env = await loggedIn(h);
      const before = readRecord(env);
      await ageSession(env, -60);
      const r = await run(['token'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.trimEnd(), JWT);
      assert.notEqual(r.stdout.trimEnd(), before.access_token);
      assert.notEqual(readRecord(env).refresh_token, before.refresh_token, 'the rotated refresh token is kept');
    });

    test('logout against a revocation endpoint that misbehaves still deletes locally', async () => {
      for (const beh of [{ kind: 'endless' }, { kind: 'close' }, { kind: 'nested', status: 400 }, { kind: 'redirect', location: 'http://127.0.0.2:9/' }]) {
        const h = await hostile();
        const env = await loggedIn(h);
        h.set({ revoke: beh });
        const r = await run(['logout'], { env, timeoutMs: 120_000 });
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /warning: could not revoke the session at the provider \(.*\); deleting it here anyway/);
        assert.match(r.stderr, /Logged out \(profile default\); session deleted here only/);
        for (const s of h.secrets) assert.ok(!r.stderr.includes(s));
        assert.equal(existsSync(recordPath(env)), false);
      }
    });
  });

  // ---- TLS -------------------------------------------------------------------------------------

  describe('TLS with a certificate made at run time', { concurrency: 2 }, () => {
    test('a self-signed provider is refused without ca_file and accepted with it', async () => {
      const c = selfSigned('IP:127.0.0.1');
      const h = await hostile({ tls: c });
      assert.match(h.issuer, /^https:\/\/127\.0\.0\.1:\d+\//);
      const env = homeFor(h);
      const refused = await login(env);
      failsClearly(refused, 4, /TLS check of https:\/\/127\.0\.0\.1:\d+ failed: .*\(behind a corporate CA\? set ca_file\)$/, h);
      assert.equal(h.count('discovery'), 0, 'no request went over the untrusted connection');

      const ok = await run(['-o', `ca_file=${c.certFile}`, 'login', '--no-browser'], { env, timeoutMs: 120_000 });
      assert.equal(ok.code, 0, ok.stderr);
      const t = await run(['-o', `ca_file=${c.certFile}`, 'token'], { env });
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout.trimEnd(), JWT);
      const s = await run(['-o', `ca_file=${c.certFile}`, 'send', 'hi'], { env });
      assert.equal(s.code, 0, s.stderr);
      assert.equal(s.stdout, 'Hello from a hostile server\n');
      // The messages API refuses the same certificate without ca_file.
      const s2 = await run(['send', '--retries', '0', 'hi'], { env });
      failsClearly(s2, 4, /TLS check of https:\/\/127\.0\.0\.1:\d+ failed/, h);
    });

    test('a trusted certificate for another name is refused: exit 4', async () => {
      const c = selfSigned('DNS:login.example.test');
      const h = await hostile({ tls: c });
      const r = await run(['-o', `ca_file=${c.certFile}`, 'login', '--no-browser'], { env: homeFor(h), timeoutMs: 120_000 });
      failsClearly(r, 4, /TLS check of https:\/\/127\.0\.0\.1:\d+ failed: /, h);
    });

    test('a ca_file that is not a certificate is a usage error: exit 2', async () => {
      const c = selfSigned('IP:127.0.0.1');
      const h = await hostile({ tls: c });
      writeFileSync(join(c.dir, 'junk.pem'), 'not a certificate\n');
      const r = await run(['-o', `ca_file=${join(c.dir, 'junk.pem')}`, 'login', '--no-browser'], { env: homeFor(h), timeoutMs: 120_000 });
      failsClearly(r, 2, /^mlauth: cannot use the CA certificates for https:\/\/127\.0\.0\.1:\d+: error setting certificate file: .*junk\.pem$/, h);
      assert.equal(h.count('discovery'), 0, 'nothing was asked over a connection it could not check');
    });
  });
});
