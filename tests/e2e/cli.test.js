// The command line itself: version, help, usage errors, settings and their sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, tmpEnv } from './rig.js';

test('--version prints the version on stdout', async () => {
  const r = await run(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^mlauth \d+\.\d+\.\d+\n$/);
  assert.equal(r.stderr, '');
});

test('--help lists every command and the exit statuses', async () => {
  const r = await run(['--help']);
  assert.equal(r.code, 0);
  for (const c of ['login', 'token', 'status', 'logout', 'config'])
    assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
  assert.match(r.stdout, /3 login required/);
});

test('help CMD and CMD --help show the same usage', async () => {
  const a = await run(['help', 'token']);
  const b = await run(['token', '--help']);
  assert.equal(a.code, 0);
  assert.equal(b.code, 0);
  assert.equal(a.stdout, b.stdout);
  assert.match(a.stdout, /^usage: mlauth token /);
  assert.match(a.stdout, /--min-valid/);
});

test('no command is a usage error', async () => {
  const r = await run([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^usage: mlauth/);
  assert.equal(r.stdout, '');
});

test('an unknown command suggests the closest one', async () => {
  const r = await run(['tokn']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command 'tokn' \(did you mean 'token'\?\)/);
});

test('an unknown global or command option suggests the closest one', async () => {
  let r = await run(['--verison']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '--verison' \(did you mean --version\?\)/);
  r = await run(['token', '--min-vaild', '60']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '--min-vaild' \(did you mean --min-valid\?\)/);
  assert.match(r.stderr, /usage: mlauth token/);
  r = await run(['token', '--min-valid']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /needs a value/);
  r = await run(['token', '--min-valid', 'soon']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--min-valid needs whole seconds/);
});

test('config shows the production defaults and their source', async () => {
  const { env } = tmpEnv();
  const r = await run(['config'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^issuer +https:\/\/kcpro\.virtuosgames\.com\/realms\/Virtuos +\(default\)$/m);
  assert.match(r.stdout, /^client_id +MLAAS-CLI-API +\(default\)$/m);
  assert.match(r.stdout, /^profile +default +\(default\)$/m);
});

test('config names where each value came from: file, env, command line', async () => {
  const { env } = tmpEnv();
  const file = join(env.XDG_CONFIG_HOME, 'mlauth', 'config');
  mkdirSync(join(env.XDG_CONFIG_HOME, 'mlauth'), { recursive: true });
  writeFileSync(file, '[work]\nissuer = https://kc.example.test/realms/w\nmodel = m-file\n' +
    'max_tokens = 10\n');
  const r = await run(['-p', 'work', '-o', 'max_tokens=20', 'config', '--json'],
    { env: { ...env, MLAUTH_MODEL: 'm-env' } });
  assert.equal(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout);
  assert.deepEqual(c.profile, { value: 'work', source: 'command line' });
  assert.equal(c.config_file.path, file);
  assert.equal(c.config_file.exists, true);
  assert.deepEqual(c.settings.issuer,
    { value: 'https://kc.example.test/realms/w', source: `${file} [work]`, env: 'MLAUTH_ISSUER' });
  assert.equal(c.settings.model.value, 'm-env');
  assert.equal(c.settings.model.source, 'env MLAUTH_MODEL');
  assert.equal(c.settings.max_tokens.value, '20');
  assert.equal(c.settings.max_tokens.source, 'command line');
  assert.equal(c.settings.client_id.source, 'default');

  const one = await run(['-p', 'work', 'config', 'issuer'], { env });
  assert.equal(one.stdout, 'https://kc.example.test/realms/w\n');
});

test('invalid settings are one clear error naming key and source, exit 2', async () => {
  const { env } = tmpEnv();
  const cases = [
    [['-o', 'store=floppy', 'config'], {}, /invalid store 'floppy' \(from command line\)/],
    [['config'], { MLAUTH_ISSUER: 'http://kc.example.test/realms/x' },
      /invalid issuer 'http:\/\/kc\.example\.test\/realms\/x' \(from env MLAUTH_ISSUER\): expected an https:\/\/ URL/],
    [['config'], { MLAUTH_MIN_VALID: '-1' }, /invalid min_valid '-1' \(from env MLAUTH_MIN_VALID\)/],
    [['-p', '../x', 'config'], {}, /invalid profile name '\.\.\/x' \(from command line\)/],
    [['-c', '/nonexistent/mlauth.conf', 'config'], {}, /cannot read config file \/nonexistent\/mlauth\.conf/],
    [['-o', 'isuer=x', 'config'], {}, /unknown setting 'isuer' \(did you mean 'issuer'\?\)/],
  ];
  for (const [args, extra, re] of cases) {
    const r = await run(args, { env: { ...env, ...extra } });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.equal(r.stdout, '');
  }
});

test('a broken config file does not hide --help', async () => {
  const { env } = tmpEnv();
  const r = await run(['token', '--help'], { env: { ...env, MLAUTH_STORE: 'floppy' } });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /usage: mlauth token/);
});

test('the loopback http issuer is allowed, a remote http one is not', async () => {
  const { env } = tmpEnv();
  let r = await run(['-o', 'issuer=http://127.0.0.1:9/realms/test', 'config', 'issuer'], { env });
  assert.equal(r.code, 0, r.stderr);
  r = await run(['-o', 'issuer=http://127.0.0.1.example.test/realms/test', 'config'], { env });
  assert.equal(r.code, 2);
});
