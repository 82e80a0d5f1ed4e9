// bench/kills.js: how many sessions survive `mlauth token` being killed mid-refresh.
//
// For each way of killing (SIGKILL, SIGINT, SIGTERM, SIGHUP, SIGKILL to the caller's whole
// process group) it forces KILLS refreshes (the stored record aged so the token is stale),
// kills each call, and counts the sessions lost: a following `mlauth token` that cannot get
// a token without a new login.  The provider rotates refresh tokens with reuse detection
// on: the rig's oidc-provider always does (one per user, so its switches are the user's);
// there a third of the calls are killed while the provider holds the request unprocessed,
// a third after it rotated but before its answer left (both let go once the caller is
// dead), a third at a random moment of the call.  With KILLS_KEYCLOAK=1 a realm of the
// rig's Keycloak with "Revoke Refresh Token" on (max reuse 0) is used instead, every kill
// at a random moment (Keycloak cannot be made to hold an answer).  A measurement, not a
// test: it prints a table and exits 0 unless it could not measure.  Figures: README.md.
//
//   node bench/kills.js                      (MLAUTH_BIN defaults to ./mlauth)
//   KILLS=200 LANES=4 KILLS_KEYCLOAK=1 node bench/kills.js
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, spawnMlauth, startOP, stopAll, tmpEnv } from '../tests/e2e/rig.js';
import { forgetCache } from '../tests/e2e/fixtures.js';

const KILLS = Number(process.env.KILLS || 200);
const LANES = Number(process.env.LANES || 4);
const KEYCLOAK = process.env.KILLS_KEYCLOAK === '1';
// A random kill moment is uniform over [0, window): window = KILL_WINDOW_MS, or else the
// median of a few forced refreshes measured first.
let windowMs = Number(process.env.KILL_WINDOW_MS || 0);
const HOWS = [
  { name: 'SIGKILL', signal: 'SIGKILL' },
  { name: 'SIGINT', signal: 'SIGINT' },
  { name: 'SIGTERM', signal: 'SIGTERM' },
  { name: 'SIGHUP', signal: 'SIGHUP' },
  { name: 'SIGKILL, process group', signal: 'SIGKILL', group: true },
];

/** One provider (a fresh oidc-provider, or the one Keycloak realm) for one user. */
async function provider(realm) {
  if (!KEYCLOAK) {
    const op = await startOP({ accessTtl: 3600, interval: 1 });
    await op.set({ tokenDelayMs: 100 }); // a request in flight for a while, as over a WAN
    return {
      op,
      issuer: op.issuer,
      name: 'oidc-provider (rotation; a spent refresh token revokes the grant)',
      approve: (code) => op.approve(code),
      errors: async () => (await op.counters()).refresh_errors,
    };
  }
  return {
    issuer: realm.issuer,
    name: 'Keycloak (Revoke Refresh Token on, max reuse 0)',
    approveUri: (uri) => realm.approve(uri),
    errors: async () => (await realm.events('REFRESH_TOKEN_ERROR')).length / LANES,
  };
}

async function login(p, env) {
  const h = spawnMlauth(['login', '--no-browser', '--force'], { env });
  if (p.approveUri) {
    const m = await h.waitFor(/^\s*(http\S+user_code=\S+)\s*$/m, { stream: 'stderr' });
    await p.approveUri(m[1]);
  } else {
    const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
    await p.approve(m[1]);
  }
  const r = await h.done;
  if (r.code !== 0) throw new Error(`login failed: ${r.stderr}`);
}

async function lane(realm) {
  const p = await provider(realm);
  const home = tmpEnv();
  const env = { ...home.env, MLAUTH_STORE: 'file', MLAUTH_ISSUER: p.issuer };
  await login(p, env);
  return { p, env, file: join(env.XDG_STATE_HOME, 'mlauth', 'default.json') };
}

function age(l, issuer) {
  const r = JSON.parse(readFileSync(l.file, 'utf8'));
  r.expires_at = Math.floor(Date.now() / 1000) - 60;
  r.obtained_at = r.expires_at - 3600;
  writeFileSync(`${l.file}.bench`, JSON.stringify(r), { mode: 0o600 });
  renameSync(`${l.file}.bench`, l.file);
  forgetCache(issuer);
}

async function one(l, how, stats, i) {
  const { p } = l;
  const when = p.op ? ['before', 'after', 'random'][i % 3] : 'random';
  let timer;
  age(l, p.issuer);
  if (p.op) await p.op.set({ hold: when === 'random' ? null : { grant: 'refresh_token', when } });
  const held = p.op ? (await p.op.counters()).held : 0;
  const h = spawnMlauth(['token'], { env: l.env });
  if (when === 'random') {
    timer = setTimeout(() => h.kill(how.signal, { group: how.group }),
      Math.floor(Math.random() * windowMs));
  } else {
    await p.op.until('held', held + 1, { unless: h.done });
    h.kill(how.signal, { group: how.group });
  }
  const r = await h.done;
  clearTimeout(timer);
  if (p.op && when !== 'random') await p.op.set({ hold: null });
  stats.runs++;
  if (r.signal || r.code === 130) stats.hit++;
  const t = await run(['token'], { env: l.env, timeoutMs: 90_000 });
  if (t.code !== 0) {
    stats.lost++;
    await login(p, l.env);
  }
}

/** The median of a few forced refreshes, unkilled, all lanes at once (as the runs will be). */
async function calibrate(lanes) {
  const times = [];
  for (let i = 0; i < 3; i++) {
    await Promise.all(lanes.map(async (l) => {
      age(l, l.p.issuer);
      const started = Date.now();
      const t = await run(['token'], { env: l.env, timeoutMs: 90_000 });
      if (t.code !== 0) throw new Error(`a forced refresh failed: ${t.stderr}`);
      times.push(Date.now() - started);
    }));
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

async function main() {
  let realm;
  if (KEYCLOAK) {
    const { keycloak } = await import('../tests/e2e/keycloak.js');
    const kc = await keycloak();
    realm = await kc.realm({ interval: 1, accessTtl: 3600, revokeRefreshToken: true, maxReuse: 0 });
  }
  // One login at a time: Keycloak answers a device poll with a 500 now and then when two
  // approvals of one user race.
  const lanes = [];
  for (let i = 0; i < LANES; i++) lanes.push(await lane(realm));
  if (!windowMs) windowMs = await calibrate(lanes);
  const errors = async () => (await Promise.all(lanes.map((l) => l.p.errors()))).reduce((a, b) => a + b, 0);
  const rows = [];
  for (const how of HOWS) {
    const stats = { runs: 0, hit: 0, lost: 0 };
    const errorsBefore = await errors();
    let next = 0;
    await Promise.all(lanes.map(async (l) => {
      while (next < KILLS) await one(l, how, stats, next++);
    }));
    rows.push({ ...how, ...stats, refused: (await errors()) - errorsBefore });
  }
  if (realm) await realm.remove();
  console.log(`mlauth ${process.env.MLAUTH_BIN || './mlauth'} against ${lanes[0].p.name}`);
  console.log(`${LANES} users at once; ${KEYCLOAK ? 'every' : 'one in three'} call killed at a `
    + `uniformly random moment of its first ${windowMs} ms (the median forced refresh)`
    + `${KEYCLOAK ? '' : ', the others while the provider held the request or its answer'}`);
  console.log('| killed by | calls | killed before exiting | sessions lost | spent refresh tokens presented |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.name} | ${r.runs} | ${r.hit} | ${r.lost} | ${r.refused} |`);
}

main().then(() => stopAll(), async (e) => {
  console.error(e);
  await stopAll();
  process.exit(1);
});
