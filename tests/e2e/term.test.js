// Terminal manners of login: colour only on a terminal and never with NO_COLOR or
// --no-color, a live countdown and spinner that leave the screen tidy, plain lines when
// stderr is not a terminal, -q, and --qr.
//
// The terminal is a real one: tmux (tests/e2e/tty.js).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { spawnMlauth, stopAll } from './rig.js';
import { login, setup, sleep } from './fixtures.js';
import { stopTerminals, terminal } from './tty.js';

after(async () => {
  await stopTerminals();
  await stopAll();
});

const ESC = '\x1b';
const SGR = /\x1b\[[0-9;]*m/;
const TERM = 'xterm-256color';

const countdown = (text) => {
  const m = /the code expires in (\d+):(\d\d)\b/.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
};

// ---- QR codes: the block of half-block lines, read back into modules --------------------

/** The QR block in text: consecutive lines of only ▀▄█ and spaces, as a module grid. */
function qrBlock(text) {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^[▀▄█ ]{21,}$/u.test(l));
  if (start < 0) return null;
  let end = start;
  while (end < lines.length && /^[▀▄█ ]{21,}$/u.test(lines[end])) end++;
  const rows = lines.slice(start, end).map((l) => [...l]);
  const light = [];
  for (const row of rows) {
    light.push(row.map((c) => c === '▀' || c === '█'));
    light.push(row.map((c) => c === '▄' || c === '█'));
  }
  return { rows, light, text: lines.slice(start, end).join('\n') };
}

// The 15-bit BCH code of the format information (ISO 18004 annex C), masked.
function formatCodewords() {
  const words = new Map();
  for (let data = 0; data < 32; data++) {
    let rem = data << 10;
    for (let i = 14; i >= 10; i--) if (rem & (1 << i)) rem ^= 0x537 << (i - 10);
    words.set(((data << 10) | rem) ^ 0x5412, data);
  }
  return words;
}

/** Checks that the block is a well-formed QR symbol; returns its size and EC level. */
function checkQr(block) {
  const { rows, light } = block;
  const side = rows[0].length;
  for (const r of rows) assert.equal(r.length, side, 'every line of the QR code is as wide');
  // Two modules a line: as many lines as half the width, rounded up (square on screen).
  assert.equal(rows.length, Math.ceil(side / 2), `square: ${rows.length} lines for ${side} columns`);
  // A quiet zone of light modules, then a symbol of 17 + 4v modules.
  let q = 0;
  while (light.every((row, y) => y >= side || row[q]) && q < side) q++;
  assert.ok(q >= 4, `a quiet zone of at least 4 modules (${q})`);
  const w = side - 2 * q;
  assert.ok(w >= 21 && (w - 17) % 4 === 0, `a QR symbol is 17 + 4v modules wide, not ${w}`);
  const dark = (x, y) => !light[q + y][q + x];
  // The three finder patterns: a dark 7x7 ring, a light ring, a dark 3x3 centre.
  for (const [ox, oy] of [[0, 0], [w - 7, 0], [0, w - 7]]) {
    for (let y = 0; y < 7; y++) {
      for (let x = 0; x < 7; x++) {
        const ring = Math.max(Math.abs(x - 3), Math.abs(y - 3));
        assert.equal(dark(ox + x, oy + y), ring !== 2, `finder pattern at ${ox},${oy}`);
      }
    }
  }
  // The timing patterns alternate between the finders.
  for (let i = 8; i < w - 8; i++) {
    assert.equal(dark(i, 6), i % 2 === 0, 'horizontal timing pattern');
    assert.equal(dark(6, i), i % 2 === 0, 'vertical timing pattern');
  }
  // Both copies of the format information are the same valid codeword.
  let f1 = 0;
  let f2 = 0;
  const bit = (v, x, y) => (v << 1) | (dark(x, y) ? 1 : 0);
  for (let x = 0; x <= 5; x++) f1 = bit(f1, x, 8);
  f1 = bit(f1, 7, 8); f1 = bit(f1, 8, 8); f1 = bit(f1, 8, 7);
  for (let y = 5; y >= 0; y--) f1 = bit(f1, 8, y);
  for (let y = w - 1; y >= w - 7; y--) f2 = bit(f2, 8, y);
  for (let x = w - 8; x < w; x++) f2 = bit(f2, x, 8);
  const data = formatCodewords().get(f1);
  assert.notEqual(data, undefined, `format information ${f1.toString(2)} is a valid codeword`);
  assert.equal(f2, f1, 'the two copies of the format information agree');
  const level = ['M', 'L', 'H', 'Q'][data >> 3];
  return { side, width: w, quiet: q, level };
}

// ---- a screenshot: the captured cells and their colours as a grey image -----------------

// Grey level of a colour of the 256-colour palette (xterm's defaults).
function paletteGrey(n) {
  const basic = [0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0xc0, 0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
  if (n < 16) return basic[n];
  if (n < 232) {
    const v = (c) => (c === 0 ? 0 : 55 + 40 * c);
    const i = n - 16;
    return Math.round((v(Math.floor(i / 36)) + v(Math.floor(i / 6) % 6) + v(i % 6)) / 3);
  }
  return 8 + 10 * (n - 232);
}

/**
 * Renders `capture-pane -e` text as a PGM image, each cell two pixel squares high (the
 * upper and lower half of a half block), in a terminal whose theme gives the default
 * colours: { fg, bg } grey levels. Understands the SGR colours tmux writes.
 */
function screenshot(text, theme, px = 4) {
  const rows = [];
  let fg = null;
  let bg = null;
  let reverse = false;
  for (const line of text.replace(/\n$/, '').split('\n')) {
    const top = [];
    const bottom = [];
    for (let i = 0; i < line.length;) {
      const m = /^\x1b\[([0-9;:]*)m/.exec(line.slice(i));
      if (m) {
        const p = m[1] === '' ? [0] : m[1].split(/[;:]/).map(Number);
        for (let k = 0; k < p.length; k++) {
          const c = p[k];
          if (c === 0) { fg = null; bg = null; reverse = false; }
          else if (c === 7) reverse = true;
          else if (c === 27) reverse = false;
          else if (c >= 30 && c <= 37) fg = paletteGrey(c - 30);
          else if (c >= 90 && c <= 97) fg = paletteGrey(c - 90 + 8);
          else if (c >= 40 && c <= 47) bg = paletteGrey(c - 40);
          else if (c >= 100 && c <= 107) bg = paletteGrey(c - 100 + 8);
          else if (c === 39) fg = null;
          else if (c === 49) bg = null;
          else if (c === 38 || c === 48) {
            const v = p[k + 1] === 5 ? paletteGrey(p[k + 2])
              : Math.round((p[k + 2] + p[k + 3] + p[k + 4]) / 3);
            k += p[k + 1] === 5 ? 2 : 4;
            if (c === 38) fg = v; else bg = v;
          }
        }
        i += m[0].length;
        continue;
      }
      const ch = String.fromCodePoint(line.codePointAt(i));
      i += ch.length;
      let f = fg ?? theme.fg;
      let b = bg ?? theme.bg;
      if (reverse) [f, b] = [b, f];
      top.push(ch === '▀' || ch === '█' ? f : b);
      bottom.push(ch === '▄' || ch === '█' ? f : b);
    }
    rows.push(top, bottom);
  }
  const width = Math.max(...rows.map((r) => r.length)) * px;
  const height = rows.length * px;
  const pixels = Buffer.alloc(width * height, theme.bg);
  rows.forEach((r, y) => r.forEach((v, x) => {
    for (let dy = 0; dy < px; dy++) pixels.fill(v, (y * px + dy) * width + x * px, (y * px + dy) * width + (x + 1) * px);
  }));
  return Buffer.concat([Buffer.from(`P5\n${width} ${height}\n255\n`), pixels]);
}

/** What zbarimg reads in a PGM image: the decoded texts, or [] when it finds no code. */
function decode(image) {
  const dir = mkdtempSync(join(tmpdir(), 'mlauth-qr-'));
  try {
    const file = join(dir, 'screen.pgm');
    writeFileSync(file, image);
    try {
      return execFileSync('zbarimg', ['--raw', '-q', file], { encoding: 'utf8' })
        .split('\n').filter((l) => l !== '');
    } catch (e) {
      if (e.status === 4) return []; // no symbol found
      throw e;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- tests ---------------------------------------------------------------------------------

test('on a terminal: link, code, a live countdown and spinner, bold; a tidy screen after', async () => {
  const { op, env } = await setup();
  const started = Date.now();
  const t = await terminal(['login', '--no-browser'], { ...env, TERM });
  try {
    const code = (await t.waitFor(/shows the code (\S+)/))[1];
    const first = await t.waitFor(/the code expires in \d+:\d\d/);
    let screen = await t.screen();
    assert.match(screen, new RegExp(`^  ${op.issuer.replace(/[./]/g, '\\$&')}/\\S*${code}`, 'm'));
    // Ten minutes, less what has passed since the start (however long that was).
    const left = countdown(first.input);
    const passed = Math.ceil((Date.now() - started) / 1000);
    assert.ok(left <= 600 && left >= 600 - passed - 1, `ten minutes less ${passed} s: ${left} left`);
    // The status line is redrawn in place: one line, the spinner turning, time running out.
    // Watched until each has shown, however long the machine takes to draw them.
    const frames = new Set();
    let later = left;
    while (frames.size < 2 || later >= left) {
      screen = await t.screen();
      assert.equal(screen.match(/expires in/g).length, 1, screen);
      const f = /^(\S) Waiting for approval; the code expires in/m.exec(screen)?.[1];
      if (f) frames.add(f);
      later = countdown(screen) ?? later;
      await sleep(50);
    }
    // Colour is on (a terminal, no NO_COLOR): the code is bold.
    const esc = await t.screen({ escapes: true });
    assert.ok(esc.includes(`\x1b[1m${code}`), `bold code in ${JSON.stringify(esc.slice(0, 600))}`);

    await op.approve(code);
    assert.equal(await t.dead(), 0, await t.screen());
    screen = await t.screen();
    assert.match(screen, /^Logged in as Alice Example \(alice@example\.test\) to /m);
    assert.doesNotMatch(screen, /expires in|Waiting for approval/);
  } finally {
    await t.stop();
  }
});

test('NO_COLOR and --no-color: no colour on a terminal, the countdown still runs', async () => {
  const { env } = await setup();
  const a = await terminal(['login', '--no-browser'], { ...env, TERM, NO_COLOR: '1' });
  const b = await terminal(['--no-color', 'login', '--no-browser'], { ...env, TERM });
  try {
    for (const t of [a, b]) {
      await t.waitFor(/the code expires in \d+:\d\d/);
      const esc = await t.screen({ escapes: true });
      assert.ok(!SGR.test(esc), `no colour or bold: ${JSON.stringify(esc.slice(0, 600))}`);
      assert.match(esc, /shows the code \S+/);
    }
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

test('Ctrl-C on a terminal: exit 130, the status line erased', async () => {
  const { env } = await setup();
  const t = await terminal(['login', '--no-browser'], { ...env, TERM });
  try {
    await t.waitFor(/the code expires in \d+:\d\d/);
    await t.keys('C-c');
    assert.equal(await t.dead(), 130);
    const screen = await t.screen();
    assert.match(screen, /^mlauth: login interrupted$/m);
    assert.doesNotMatch(screen, /expires in|Waiting for approval|\^C/);
  } finally {
    await t.stop();
  }
});

test('a code expiring on a terminal: exit 1, the message on a clean line', async () => {
  // Nothing races the 3 s code here: the countdown is read from everything mlauth wrote.
  const { env } = await setup({ op: { deviceTtl: 3 } });
  const t = await terminal(['login', '--no-browser'], { ...env, TERM });
  try {
    const status = await t.dead();
    const screen = await t.screen();
    assert.equal(status, 1, screen);
    assert.match(t.output(), /the code expires in 0:0\d/);
    assert.match(screen, /^mlauth: the code expired before it was approved: run mlauth login again$/m);
    assert.doesNotMatch(screen, /expires in|Waiting for approval/);
  } finally {
    await t.stop();
  }
});

test('-q on a terminal: the link and the code only, no status line', async () => {
  const { op, env } = await setup();
  const t = await terminal(['-q', 'login', '--no-browser'], { ...env, TERM });
  try {
    const code = (await t.waitFor(/shows the code (\S+)/))[1];
    const screen = await t.screen();
    assert.ok(screen.includes(op.issuer), screen);
    // Approved after its first poll, so it waits one whole interval more: the time in which
    // a status line would be drawn, and everything written is looked at, not a screen.
    await op.until('device_token', 1);
    await op.approve(code);
    assert.equal(await t.dead(), 0);
    assert.match(await t.screen(), /^Logged in as /m);
    assert.doesNotMatch(t.output(), /expires in|Waiting for approval|\r[|/\\-] /);
  } finally {
    await t.stop();
  }
});

test('without a terminal: plain lines and not one escape byte, even with TERM set', async () => {
  const { op, env } = await setup();
  const r = await login({ ...env, TERM }, op);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(!r.stderr.includes(ESC) && !r.stdout.includes(ESC), JSON.stringify(r.stderr));
  assert.ok(!r.stderr.includes('\r'), 'no carriage returns either');
  assert.match(r.stderr, /^Waiting for approval\.\.\.$/m);
  assert.doesNotMatch(r.stderr, /expires in/);
  assert.equal(qrBlock(r.stderr), null, 'no QR code unless asked');
  // -q drops the waiting line but keeps what the person must see.
  const h = spawnMlauth(['-q', 'login', '--no-browser', '--force'], { env });
  const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
  await op.approve(m[1]);
  const rq = await h.done;
  assert.equal(rq.code, 0, rq.stderr);
  assert.ok(rq.stderr.includes(op.issuer));
  assert.doesNotMatch(rq.stderr, /Waiting for approval/);
  assert.match(rq.stdout, /^Logged in as /);
});

test('--qr draws the link as a QR code, without a terminal too; it changes with the link', async () => {
  const { op, env } = await setup();
  const blocks = [];
  for (const args of [['--qr'], ['--qr', '--force']]) {
    const h = spawnMlauth(['-q', 'login', '--no-browser', ...args], { env });
    const m = await h.waitFor(/shows the code (\S+)/, { stream: 'stderr' });
    await op.approve(m[1]);
    const r = await h.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.stderr.includes(ESC));
    const block = qrBlock(r.stderr);
    assert.ok(block, `a QR code in ${r.stderr}`);
    const info = checkQr(block);
    assert.ok(info.level === 'L' || info.level === 'M', `error correction ${info.level}`);
    // After the link and before the code, as the prompt reads.
    const at = r.stderr.indexOf(block.text);
    assert.ok(at > r.stderr.indexOf(op.issuer) && at < r.stderr.indexOf('shows the code'));
    blocks.push(block.text);
  }
  assert.notEqual(blocks[0], blocks[1], 'another code, another link, another QR code');
});

test('--qr on a terminal: the QR code on the screen, square and well-formed', async () => {
  const { op, env } = await setup();
  const t = await terminal(['login', '--no-browser', '--qr'], { ...env, TERM });
  try {
    const code = (await t.waitFor(/shows the code (\S+)/))[1];
    await t.waitFor(/the code expires in \d+:\d\d/);
    const block = qrBlock(await t.screen());
    assert.ok(block, await t.screen());
    const info = checkQr(block);
    assert.ok(info.side <= 100, 'fits the terminal');
    await op.approve(code);
    assert.equal(await t.dead(), 0);
  } finally {
    await t.stop();
  }
});

test('--qr on a terminal: dark-on-light on a dark and a light theme alike; a decoder reads it', async () => {
  const { op, env } = await setup();
  const t = await terminal(['login', '--no-browser', '--qr'], { ...env, TERM });
  try {
    const code = (await t.waitFor(/shows the code (\S+)/))[1];
    await t.waitFor(/the code expires in \d+:\d\d/);
    const link = /^ {2}(http\S+)$/m.exec(await t.screen())[1];
    assert.ok(link.includes(code), link);
    const info = checkQr(qrBlock(await t.screen()));
    assert.equal(info.quiet, 4, 'the standard quiet zone of 4 modules');
    const esc = await t.screen({ escapes: true });
    const themes = { dark: { fg: 0xd0, bg: 0x00 }, light: { fg: 0x20, bg: 0xff } };
    const shots = {};
    for (const [name, theme] of Object.entries(themes)) {
      shots[name] = screenshot(esc, theme);
      assert.deepEqual(decode(shots[name]), [link], `zbarimg reads the link on a ${name} theme`);
    }
    // The code's own colours, not the theme's: the QR block is the same picture on both.
    const lines = esc.split('\n');
    const first = lines.findIndex((l) => l.includes('▀') || l.includes('█'));
    const block = lines.slice(first, first + Math.ceil(info.side / 2)).join('\n');
    assert.ok(screenshot(block, themes.dark).equals(screenshot(block, themes.light)),
      'the QR code looks the same whatever the theme');
    await op.approve(code);
    assert.equal(await t.dead(), 0);
  } finally {
    await t.stop();
  }
});
