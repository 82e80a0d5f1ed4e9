// The real Keycloak in the e2e rig: one server per test run, a fresh realm per test, and the
// person at the browser played over HTTP with a cookie jar, through Keycloak's own login and
// consent pages (no back door).
//
//   const kc = await keycloak();                       // the run's server (see below)
//   const realm = await kc.realm({ accessTtl: 60 });   // realm.json under a fresh name
//   ... mlauth login against realm.issuer ...
//   await realm.approve(verificationUriComplete);      // alice logs in and grants consent
//
// The server: `make e2e` starts one (tests/e2e/run.js) and hands it to every test process
// through MLAUTH_KC_STATE (a file that gets its URL once it answers) and
// MLAUTH_KC_ADMIN_PASSWORD.  A test file run on its own (node --test tests/e2e/x.test.js)
// starts its own the first time keycloak() is called.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, spawnMlauth, startKeycloak } from './rig.js';

const REALM_JSON = join(REPO, 'tests/peers/keycloak/realm.json');
export const CLIENT_ID = 'MLAAS-CLI-API';
/** The realm's test users: alice holds offline_access, bob does not. */
export const USERS = {
  alice: { password: 'alice-password', name: 'Alice Example', email: 'alice@example.test' },
  bob: { password: 'bob-password', name: 'Bob Online', email: 'bob@example.test' },
};
// How long a test waits for a server started by another process to answer (a loaded 2-core
// machine boots Keycloak in 30-90 s); it bounds a hang, it is not a timing assertion.
const READY_TIMEOUT_MS = 10 * 60_000;

const sleep = (ms) => new Promise((r) => { setTimeout(r, ms); });

let server; // the promise of this process's server handle

/** The Keycloak of this test run: { url, admin(method, path, body), realm(options) }. */
export function keycloak() {
  if (!server) server = connect();
  return server;
}

async function connect() {
  let password = process.env.MLAUTH_KC_ADMIN_PASSWORD;
  const stateFile = process.env.MLAUTH_KC_STATE;
  let url;
  if (!stateFile || !password) {
    password = randomBytes(18).toString('base64url');
    ({ url } = await startKeycloak({ adminPassword: password }));
  } else {
    url = await booted(stateFile);
  }
  return serverHandle(url, password);
}

/** The URL of run.js's server once it answers, from the state file run.js writes then. */
async function booted(file) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const state = readState(file);
    if (state?.failed) throw new Error(`Keycloak ${state.failed}`);
    if (state?.url) return state.url;
    if (Date.now() > deadline) throw new Error(`Keycloak did not come up (${file} says nothing)`);
    await sleep(250);
  }
}

function readState(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null; // not written yet
  }
}

function serverHandle(url, password) {
  let adminToken = null;
  let adminTokenUntil = 0;
  async function token() {
    // The master realm's tokens live 60 s; take a new one well before that.
    if (adminToken && Date.now() < adminTokenUntil) return adminToken;
    const res = await fetch(`${url}/realms/master/protocol/openid-connect/token`, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'password', client_id: 'admin-cli', username: 'admin', password,
      }),
    });
    if (!res.ok) throw new Error(`admin login: ${res.status} ${await res.text()}`);
    const body = await res.json();
    adminToken = body.access_token;
    adminTokenUntil = Date.now() + (body.expires_in * 1000) / 2;
    return adminToken;
  }
  /** An admin REST call; resolves the parsed JSON answer (or null), rejects on >= 400. */
  async function admin(method, path, body) {
    const res = await fetch(`${url}/admin${path}`, {
      method,
      headers: {
        authorization: `Bearer ${await token()}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (res.status >= 400) {
      throw Object.assign(new Error(`${method} /admin${path}: ${res.status} ${text}`), { status: res.status });
    }
    return text ? JSON.parse(text) : null;
  }
  const handle = { url, admin };
  handle.realm = (options) => createRealm(handle, options);
  return handle;
}

/**
 * A fresh realm shaped like the studio's (realm.json) under a unique name.
 * options (all optional; seconds):
 *   accessTtl       access token lifespan (realm, default 7200)
 *   ssoIdle, ssoMax SSO session idle / max lifespan (1800 / 36000)
 *   offlineIdle     offline session idle (2592000)
 *   revokeRefreshToken, maxReuse   Keycloak's "Revoke Refresh Token" (off) and its reuse count
 *   deviceTtl, interval            device code lifespan (600) and polling interval (5)
 *   offlineScope    false: the client lacks the offline_access scope
 *   consent         false: the client asks no consent
 */
async function createRealm(kc, options = {}) {
  const o = options;
  const rep = JSON.parse(readFileSync(REALM_JSON, 'utf8'));
  const name = `${rep.realm}-${randomBytes(4).toString('hex')}`;
  rep.realm = name;
  const set = (key, value) => { if (value !== undefined) rep[key] = value; };
  set('accessTokenLifespan', o.accessTtl);
  set('ssoSessionIdleTimeout', o.ssoIdle);
  set('ssoSessionMaxLifespan', o.ssoMax);
  set('offlineSessionIdleTimeout', o.offlineIdle);
  set('revokeRefreshToken', o.revokeRefreshToken);
  set('refreshTokenMaxReuse', o.maxReuse);
  if (o.deviceTtl !== undefined) rep.attributes.oauth2DeviceCodeLifespan = String(o.deviceTtl);
  if (o.interval !== undefined) rep.attributes.oauth2DevicePollingInterval = String(o.interval);
  const client = rep.clients.find((c) => c.clientId === CLIENT_ID);
  if (o.offlineScope === false) {
    client.optionalClientScopes = client.optionalClientScopes.filter((s) => s !== 'offline_access');
  }
  if (o.consent === false) client.consentRequired = false;
  await kc.admin('POST', '/realms', rep);
  return realmHandle(kc, name);
}

function realmHandle(kc, name) {
  const base = `/realms/${encodeURIComponent(name)}`;
  const admin = (method, path, body) => kc.admin(method, `${base}${path}`, body);
  const userId = async (username) => {
    const found = await admin('GET', `/users?exact=true&username=${encodeURIComponent(username)}`);
    if (!found.length) throw new Error(`no user ${username} in realm ${name}`);
    return found[0].id;
  };
  const clientUuid = async (clientId = CLIENT_ID) => {
    const found = await admin('GET', `/clients?clientId=${encodeURIComponent(clientId)}`);
    return found[0].id;
  };
  return {
    name,
    issuer: `${kc.url}${base}`,
    admin,
    userId,
    clientUuid,
    /** The person at the browser: Keycloak's login form, then its consent page. */
    approve: (uri, opts = {}) => browse(uri, { user: 'alice', consent: true, ...opts }),
    /** The same person refusing consent on Keycloak's page. */
    deny: (uri, opts = {}) => browse(uri, { user: 'alice', ...opts, consent: false }),
    /** The user's SSO (online) sessions. */
    sessions: async (username = 'alice') => admin('GET', `/users/${await userId(username)}/sessions`),
    /** The user's offline sessions of the CLI client. */
    offlineSessions: async (username = 'alice') => admin('GET',
      `/users/${await userId(username)}/offline-sessions/${await clientUuid()}`),
    /** An administrator's "Sign out" of all the user's sessions (Users > Sessions). */
    logoutUser: async (username = 'alice') => {
      // The sign-out reaches an offline session through the user's "not before" time, which
      // Keycloak keeps in whole seconds and compares with a token's iat: a token issued in
      // the same second would outlive it.  So sign out in a later second than any token so far.
      const second = Math.floor(Date.now() / 1000);
      while (Math.floor(Date.now() / 1000) <= second) await sleep(50);
      return admin('POST', `/users/${await userId(username)}/logout`);
    },
    setUser: async (username, patch) => admin('PUT', `/users/${await userId(username)}`, patch),
    /** Changes realm settings (e.g. { revokeRefreshToken: true }). */
    setRealm: (patch) => admin('PUT', '', patch),
    /** Changes the CLI client's settings. */
    setClient: async (patch) => {
      const id = await clientUuid();
      const rep = await admin('GET', `/clients/${id}`);
      await admin('PUT', `/clients/${id}`, { ...rep, ...patch, attributes: { ...rep.attributes, ...patch.attributes } });
    },
    /** The realm's user events of a type (e.g. 'REFRESH_TOKEN'), newest first. */
    events: (type) => admin('GET', `/events?max=1000${type ? `&type=${encodeURIComponent(type)}` : ''}`),
    remove: () => admin('DELETE', ''),
  };
}

// ---- the person at the browser -----------------------------------------------------------

/**
 * mlauth login (`mlauth [args…] login --no-browser`) against realm, every device code it
 * shows approved in "the browser" by the next of users (the last one again for any further
 * code: login asks for one more after Keycloak's not_allowed, or when Keycloak refuses a
 * just-approved code), or refused on the consent page with consent: false.
 * Resolves mlauth's { code, signal, stdout, stderr } and the final pages' texts.
 */
export async function deviceLogin(realm, env, { users = ['alice'], consent = true, args = [], pre = [] } = {}) {
  const h = spawnMlauth([...pre, 'login', '--no-browser', ...args], { env });
  const links = () => [...h.stderr.matchAll(/^\s*(http\S+user_code=\S+)\s*$/gm)];
  const pages = [];
  for (let seen = 0; ; seen++) {
    try {
      // waitFor takes anything with exec(): here, "one more link than approved so far".
      await h.waitFor({ exec: () => (links().length > seen ? [] : null) }, { stream: 'stderr', timeoutMs: 120_000 });
    } catch (e) {
      if (/exited before/.test(e.message)) break;
      throw e;
    }
    const user = users[Math.min(seen, users.length - 1)];
    const uri = links()[seen][1];
    pages.push(await (consent ? realm.approve(uri, { user }) : realm.deny(uri, { user })));
  }
  return { ...(await h.done), pages };
}

const decodeHtml = (s) => s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'")
  .replace(/&lt;/g, '<').replace(/&gt;/g, '>');

/** A minimal browser: a cookie jar (every cookie goes back to the loopback host, as a browser
 * does for 127.0.0.1, a secure context) and redirects followed by hand. */
function browser() {
  const jar = new Map();
  async function request(url, { method = 'GET', form } = {}) {
    let target = url;
    let m = method;
    let body = form ? new URLSearchParams(form).toString() : undefined;
    for (let hops = 0; hops < 10; hops++) {
      const headers = { accept: 'text/html' };
      if (jar.size) headers.cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
      if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
      const res = await fetch(target, { method: m, headers, body, redirect: 'manual' });
      for (const c of res.headers.getSetCookie()) {
        const [pair] = c.split(';');
        const eq = pair.indexOf('=');
        const k = pair.slice(0, eq).trim();
        const v = pair.slice(eq + 1).trim();
        if (/max-age=0/i.test(c) || v === '') jar.delete(k); else jar.set(k, v);
      }
      if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
        target = new URL(res.headers.get('location'), target).toString();
        m = 'GET';
        body = undefined;
        await res.arrayBuffer();
        continue;
      }
      return { status: res.status, url: target, html: await res.text() };
    }
    throw new Error(`too many redirects from ${url}`);
  }
  return { request };
}

/** The form on a page whose tag matches re: { action, fields } (hidden inputs included). */
function form(page, re) {
  const forms = [...page.html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  const f = forms.find((x) => re.test(x[1]) || re.test(x[2]));
  if (!f) return null;
  const action = decodeHtml(/action="([^"]*)"/i.exec(f[1])?.[1] ?? '');
  const fields = {};
  for (const inp of f[2].matchAll(/<input\b([^>]*)>/gi)) {
    const n = /name="([^"]*)"/i.exec(inp[1])?.[1];
    const type = /type="([^"]*)"/i.exec(inp[1])?.[1] ?? 'text';
    if (n && type === 'hidden') fields[n] = decodeHtml(/value="([^"]*)"/i.exec(inp[1])?.[1] ?? '');
  }
  return { action: new URL(action, page.url).toString(), fields };
}

const pageText = (page) => page.html.replace(/<script[\s\S]*?<\/script>/gi, '')
  .replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();

/**
 * Opens uri (verification_uri_complete) as the person would: signs in with user's password
 * on Keycloak's login page, then grants (consent: true) or refuses consent.  Resolves the
 * final page's text; rejects when Keycloak did not show the expected pages.
 */
async function browse(uri, { user, password = USERS[user]?.password, consent }) {
  const b = browser();
  let page = await b.request(uri);
  const login = form(page, /kc-form-login|name="username"/);
  if (login) {
    page = await b.request(login.action, {
      method: 'POST', form: { ...login.fields, username: user, password, credentialId: '' },
    });
  }
  const grant = form(page, /name="accept"|kc-login/);
  if (grant && /accept/.test(page.html)) {
    page = await b.request(grant.action, {
      method: 'POST', form: { ...grant.fields, ...(consent ? { accept: 'Yes' } : { cancel: 'No' }) },
    });
  }
  const text = pageText(page);
  if (page.status >= 400 && consent) throw new Error(`Keycloak answered ${page.status}: ${text.slice(0, 300)}`);
  return text;
}
