// A small in-memory storage adapter for oidc-provider.
//
// oidc-provider ships a memory adapter, but it hides its store, and the tests need to look
// inside: "did logout really revoke the refresh token at the provider?", "which device code
// is waiting for approval?", "revoke everything as an admin would". So we keep our own,
// with the same semantics (payloads by model and id, secondary indexes by grant, user code
// and session uid) and a few read-only views for the /test routes.
//
// Expiry is left to oidc-provider, which checks `exp` on every find; expired payloads are
// swept lazily so a long run does not grow without bound.

const store = new Map(); // "Model:id" -> { payload, expiresAt (ms or Infinity), seq }
const byGrant = new Map(); // grantId -> Set of "Model:id"
const byUserCode = new Map(); // userCode -> id
const byUid = new Map(); // session uid -> id

// Usable refresh tokens (not expired, not spent by a rotation) that were removed: by the
// revocation endpoint, reuse detection, grant revocation or /test/revoke-all. A test
// compares this before and after `mlauth logout`.
let revokedRefreshTokens = 0;
let seq = 0;

const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

const now = () => Date.now();
const key = (model, id) => `${model}:${id}`;

function remove(k, { revoked }) {
  const entry = store.get(k);
  if (!entry) return;
  store.delete(k);
  const { payload } = entry;
  if (revoked && k.startsWith('RefreshToken:') && entry.expiresAt > now() && !payload.consumed) {
    revokedRefreshTokens += 1;
  }
  if (payload.grantId) byGrant.get(payload.grantId)?.delete(k);
  if (payload.userCode && byUserCode.get(payload.userCode) === k.slice(k.indexOf(':') + 1)) {
    byUserCode.delete(payload.userCode);
  }
  if (payload.uid && byUid.get(payload.uid) === k.slice(k.indexOf(':') + 1)) byUid.delete(payload.uid);
}

function sweep() {
  const t = now() - 60_000; // keep a minute of grace so "expired" errors stay precise
  for (const [k, e] of store) if (e.expiresAt < t) remove(k, { revoked: false });
}

export default class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  async upsert(id, payload, expiresIn) {
    const k = key(this.model, id);
    const previous = store.get(k);
    const expiresAt = typeof expiresIn === 'number' ? now() + expiresIn * 1000 : Infinity;
    store.set(k, { payload, expiresAt, seq: previous ? previous.seq : ++seq });
    if (GRANTABLE.has(this.model) && payload.grantId) {
      if (!byGrant.has(payload.grantId)) byGrant.set(payload.grantId, new Set());
      byGrant.get(payload.grantId).add(k);
    }
    if (payload.userCode) byUserCode.set(payload.userCode, id);
    if (this.model === 'Session' && payload.uid) byUid.set(payload.uid, id);
    if (seq % 64 === 0) sweep();
  }

  async find(id) {
    return store.get(key(this.model, id))?.payload;
  }

  async findByUserCode(userCode) {
    const id = byUserCode.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUid(uid) {
    const id = byUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const entry = store.get(key(this.model, id));
    if (entry) entry.payload.consumed = Math.floor(now() / 1000);
  }

  async destroy(id) {
    remove(key(this.model, id), { revoked: true });
  }

  async revokeByGrantId(grantId) {
    // Called once per grantable model; each call removes only its own model's members,
    // like the stock adapter does per model instance.
    const members = byGrant.get(grantId);
    if (!members) return;
    for (const k of [...members]) {
      if (k.startsWith(`${this.model}:`)) remove(k, { revoked: true });
    }
    if (members.size === 0) byGrant.delete(grantId);
  }
}

// ---- read-only views and admin actions for the /test routes -------------------------

const live = (e) => e.expiresAt > now();

function* entries(model) {
  for (const [k, e] of store) {
    if (k.startsWith(`${model}:`)) yield [k.slice(model.length + 1), e];
  }
}

/** The most recent device code nobody has approved or denied yet (or the one with userCode). */
export function pendingDeviceCode(userCode) {
  let best;
  for (const [, e] of entries('DeviceCode')) {
    const p = e.payload;
    if (!live(e) || p.consumed || p.accountId || p.error) continue;
    if (userCode !== undefined && p.userCode !== userCode) continue;
    if (!best || e.seq > best.seq) best = e;
  }
  return best?.payload;
}

export function stats() {
  let active = 0;
  let consumed = 0;
  for (const [, e] of entries('RefreshToken')) {
    if (!live(e)) continue;
    if (e.payload.consumed) consumed += 1;
    else active += 1;
  }
  let grants = 0;
  for (const [, e] of entries('Grant')) if (live(e)) grants += 1;
  let pending = 0;
  for (const [, e] of entries('DeviceCode')) {
    const p = e.payload;
    if (live(e) && !p.consumed && !p.accountId && !p.error) pending += 1;
  }
  return {
    active_refresh_tokens: active,
    consumed_refresh_tokens: consumed,
    revoked: revokedRefreshTokens,
    grants,
    pending_device_codes: pending,
  };
}

/** What an admin's "sign out all sessions" does: every grant and everything issued under it. */
// Pending device codes survive: a login in progress is not a session yet.
export function revokeAll() {
  const models = ['Grant', 'Session', 'AccessToken', 'RefreshToken', 'AuthorizationCode'];
  for (const k of [...store.keys()]) {
    if (models.some((m) => k.startsWith(`${m}:`))) remove(k, { revoked: true });
  }
}
