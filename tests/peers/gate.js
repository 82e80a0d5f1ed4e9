// A loopback forwarder in front of a real provider (Keycloak), for the one thing a test
// cannot make the provider itself do: hold a refresh at a known moment.  `before`: the
// request waits here, unprocessed; `after`: the provider has processed it (and rotated the
// refresh token) and its answer waits here.  A test kills its client on the `held` event
// instead of after a guessed delay, the same switch and counters as the oidc-provider peer.
//
// Everything else passes through untouched, the Host header included, so Keycloak names
// the gate in its issuer and endpoints (it derives them from the request with
// hostname-strict=false) and the client talks to it for everything.
import { request as httpRequest, createServer } from 'node:http';

const TOKEN_PATH = /\/protocol\/openid-connect\/token$/;

const readAll = (stream) => new Promise((resolve, reject) => {
  const chunks = [];
  stream.on('data', (c) => chunks.push(c));
  stream.on('end', () => resolve(Buffer.concat(chunks)));
  stream.on('error', reject);
});

/**
 * Starts a gate on 127.0.0.1 forwarding to target (an http://127.0.0.1:PORT URL).
 * Returns { url, set({ hold }), counters(), until(name, n, { unless }), close() }, where
 * hold is null or { when: 'before' | 'after' } and applies to refresh_token grants.
 */
export async function startGate(target) {
  const to = new URL(target);
  if (to.hostname !== '127.0.0.1') throw new Error(`the gate forwards to loopback only, not ${target}`);
  let hold = null;
  const counters = { refresh: 0, held: 0 };
  let released = [];
  let waiters = [];

  const count = (name) => {
    counters[name] += 1;
    waiters = waiters.filter((w) => !w.check());
  };
  const release = () => {
    const fns = released;
    released = [];
    for (const f of fns) f();
  };
  /** Resolves true when the test lets go, false if the client hangs up first. */
  const held = (res) => new Promise((resolve) => {
    count('held');
    res.once('close', () => resolve(false));
    released.push(() => resolve(true));
  });

  /** The provider's answer to req with body: { status, headers, body }. */
  const forward = (req, body) => new Promise((resolve, reject) => {
    const up = httpRequest({
      host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers,
    }, (r) => readAll(r).then((b) => resolve({ status: r.statusCode, headers: r.headers, body: b }), reject));
    up.on('error', reject);
    up.end(body);
  });

  async function handle(req, res) {
    const body = await readAll(req);
    const refresh = req.method === 'POST' && TOKEN_PATH.test(req.url.split('?')[0])
      && new URLSearchParams(body.toString()).get('grant_type') === 'refresh_token';
    const when = refresh ? hold?.when : null;
    if (refresh) count('refresh');
    // Held unprocessed until released; a client gone meanwhile never reaches the provider.
    if (when === 'before' && !(await held(res))) return;
    const answer = await forward(req, body);
    // Processed; a successful answer is kept until released, and lost if its client is gone.
    if (when === 'after' && answer.status === 200 && !(await held(res))) return;
    if (res.destroyed) return;
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => { if (!res.headersSent) res.writeHead(502); res.end(String(e.message)); });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    /** { hold: { when } } holds the next refresh grants; { hold: null } lets all held go on. */
    set(settings) {
      if ('hold' in settings) hold = settings.hold;
      if (!hold) release();
    },
    counters: () => ({ ...counters }),
    /** Resolves once counters[name] >= n; rejects if unless (a process's done) settles first. */
    until(name, n, { unless } = {}) {
      return new Promise((resolve, reject) => {
        const w = { check: () => (counters[name] >= n ? (resolve({ ...counters }), true) : false) };
        if (w.check()) return;
        waiters.push(w);
        unless?.then((r) => {
          if (!waiters.includes(w)) return;
          waiters = waiters.filter((x) => x !== w);
          reject(new Error(`ended before the gate's ${name} reached ${n}: ${r?.stderr ?? r}`));
        }, reject);
      });
    },
    close() {
      release();
      server.closeAllConnections();
      return new Promise((resolve) => { server.close(() => resolve()); });
    },
  };
}
