// Headless Chromium test of the ratchet_sel chat demo (driven by scripts/browser_test.sh).
//
//   INTEROP_NODE_DIR=/tmp/ratchet_sel-interop/node node browser_test.mjs PORT
//
// Opens two pages at http://127.0.0.1:PORT/, waits for both #status to read
// "connected", sends a chat line from page A through the UI and waits for it
// in page B's #log.  Then opens one extra WebSocket per page (page.evaluate)
// and checks that a binary message (all 256 byte values) and a 70,000-char
// text message sent from A arrive intact at B, and are not echoed back to A.
// Prints "browser chat: ..." lines; exit status 0 on success, 1 on failure.

import { createRequire } from 'node:module';
import path from 'node:path';

const nodeDir = process.env.INTEROP_NODE_DIR || '/tmp/ratchet_sel-interop/node';
const require = createRequire(path.join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');
const pwVersion = require('playwright-core/package.json').version;

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: browser_test.mjs PORT');
  process.exit(2);
}
const PAGE_URL = `http://127.0.0.1:${port}/`;
const WS_URL = `ws://127.0.0.1:${port}/`;
const STEP_MS = 15_000;
const OVERALL_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 150_000);
const SCREENSHOT_DIR = process.env.BROWSER_TEST_SCREENSHOT_DIR || '';
const TOKEN = process.env.BROWSER_TEST_TOKEN || 'none';

const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Unknown switch, ignored by Chromium: lets browser_test.sh find (and kill)
  // exactly the browser processes of this run if anything is left behind.
  `--ratchet-sel-browser-test=${TOKEN}`,
];

class Fail extends Error {}

const out = (s) => console.log(`browser chat: ${s}`);
let failures = 0;

function withTimeout(promise, ms, what) {
  let t;
  const timer = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Fail(`${what}: timed out after ${ms / 1000}s`)), ms);
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

// 70,000 UTF-16 code units mixing ASCII and non-ASCII (BMP) characters.
function bigText(n = 70_000) {
  const unit = 'abcdefghijklmnopqrstuvwxyz0123456789-é-✓-ß|';
  let s = '';
  let i = 0;
  while (s.length + 6 + unit.length <= n) s += String(i++).padStart(6, '0') + unit;
  return s + 'x'.repeat(n - s.length);
}
const BIG = bigText();
const BINARY = Array.from({ length: 256 }, (_, i) => i);

// --- in-page helpers (serialised into the page by page.evaluate) -----------

// Opens window.__raw: a WebSocket with binaryType arraybuffer whose messages
// are kept in window.__rawMsgs; resolves with handshake info.
function pageOpenRaw({ url, timeoutMs }) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    window.__raw = ws;
    window.__rawMsgs = [];
    window.__rawWaiters = [];
    window.__rawClose = null;
    ws.onmessage = (ev) => {
      window.__rawMsgs.push(ev.data);
      for (const w of window.__rawWaiters.slice()) w();
    };
    ws.onclose = (ev) => {
      window.__rawClose = { code: ev.code, reason: ev.reason, wasClean: ev.wasClean };
      for (const w of window.__rawWaiters.slice()) w();
    };
    const t = setTimeout(() => resolve({ ok: false, error: `not open after ${timeoutMs}ms (readyState ${ws.readyState})` }), timeoutMs);
    ws.onopen = () => { clearTimeout(t); resolve({ ok: true, extensions: ws.extensions, protocol: ws.protocol }); };
    ws.onerror = () => { clearTimeout(t); resolve({ ok: false, error: 'error event before open' }); };
  });
}

// Waits for a message on window.__raw matching `want` ({kind:'binary', bytes}
// or {kind:'text', text}); resolves with {ok, summary}.
function pageWaitRaw({ want, timeoutMs }) {
  const describe = (m) => (typeof m === 'string'
    ? `text(${m.length} chars: ${JSON.stringify(m.slice(0, 30))})`
    : `binary(${m.byteLength} bytes: ${Array.from(new Uint8Array(m).slice(0, 8)).join(',')}...)`);
  const matches = (m) => {
    if (want.kind === 'text') return typeof m === 'string' && m === want.text;
    if (!(m instanceof ArrayBuffer) || m.byteLength !== want.bytes.length) return false;
    const u = new Uint8Array(m);
    for (let i = 0; i < u.length; i++) if (u[i] !== want.bytes[i]) return false;
    return true;
  };
  return new Promise((resolve) => {
    let t;
    const check = () => {
      const idx = window.__rawMsgs.findIndex(matches);
      if (idx >= 0) {
        clearTimeout(t);
        window.__rawWaiters = window.__rawWaiters.filter((w) => w !== check);
        resolve({ ok: true, index: idx });
      } else if (window.__rawClose) {
        clearTimeout(t);
        resolve({ ok: false, error: `socket closed (${JSON.stringify(window.__rawClose)})`, got: window.__rawMsgs.map(describe) });
      }
    };
    t = setTimeout(() => {
      window.__rawWaiters = window.__rawWaiters.filter((w) => w !== check);
      resolve({ ok: false, error: `not received within ${timeoutMs}ms`, got: window.__rawMsgs.map(describe) });
    }, timeoutMs);
    window.__rawWaiters.push(check);
    check();
  });
}

// Summary of what window.__raw received, plus whether any equals A's payloads.
function pageRawSummary({ big, bytes }) {
  const eqBin = (m) => m instanceof ArrayBuffer && m.byteLength === bytes.length
    && new Uint8Array(m).every((v, i) => v === bytes[i]);
  return window.__rawMsgs.map((m) => ({
    kind: typeof m === 'string' ? 'text' : 'binary',
    length: typeof m === 'string' ? m.length : m.byteLength,
    head: typeof m === 'string' ? m.slice(0, 40) : '',
    ownPayload: (typeof m === 'string' && m === big) || eqBin(m),
  }));
}

function pageSendRaw({ kind, text, bytes }) {
  if (kind === 'text') window.__raw.send(text);
  else window.__raw.send(new Uint8Array(bytes).buffer);
  return window.__raw.bufferedAmount;
}

function pageCloseRaw({ timeoutMs }) {
  return new Promise((resolve) => {
    if (window.__rawClose) { resolve(window.__rawClose); return; }
    const t = setTimeout(() => resolve({ timeout: true, readyState: window.__raw.readyState }), timeoutMs);
    window.__rawWaiters.push(() => { if (window.__rawClose) { clearTimeout(t); resolve(window.__rawClose); } });
    window.__raw.close(1000, 'done');
  });
}

// ---------------------------------------------------------------------------

async function logTexts(page) {
  return page.$$eval('#log li', (lis) => lis.map((li) => li.textContent));
}

function short(s, n = 60) {
  return s.length > n ? `${JSON.stringify(s.slice(0, n))}... (${s.length} chars)` : JSON.stringify(s);
}

async function openChatPage(context, name, handshakes) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => out(`note: page ${name} script error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const where = (msg.location() && msg.location().url) || '';
    if (where.endsWith('/favicon.ico')) return; // 404 for the favicon is fine
    out(`note: page ${name} console error: ${msg.text()}${where ? ` (${where})` : ''}`);
  });
  // CDP, to see the handshake headers Chromium actually sent (info only).
  try {
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    cdp.on('Network.webSocketHandshakeResponseReceived', (ev) => {
      handshakes.push({ page: name, ...ev.response });
    });
    cdp.on('Network.webSocketWillSendHandshakeRequest', (ev) => {
      handshakes.push({ page: name, willSend: ev.request.headers });
    });
  } catch (err) {
    out(`note: no CDP session for page ${name}: ${err.message}`);
  }
  const resp = await page.goto(PAGE_URL, { waitUntil: 'load', timeout: STEP_MS });
  if (!resp) throw new Fail(`page ${name}: no response for GET ${PAGE_URL}`);
  const ctype = resp.headers()['content-type'] || '';
  if (resp.status() !== 200) throw new Fail(`page ${name}: GET / returned HTTP ${resp.status()}`);
  if (!ctype.includes('text/html')) out(`note: page ${name}: GET / Content-Type is ${JSON.stringify(ctype)} (expected text/html)`);
  for (const sel of ['#status', '#message', '#send', '#log']) {
    if (await page.locator(sel).count() !== 1) throw new Fail(`page ${name}: expected exactly one ${sel} element`);
  }
  return page;
}

async function waitConnected(page, name) {
  try {
    await page.waitForFunction(
      () => (document.querySelector('#status')?.textContent || '').trim() === 'connected',
      null, { timeout: STEP_MS },
    );
  } catch (err) {
    const status = await page.locator('#status').textContent().catch(() => '?');
    throw new Fail(`page ${name}: #status is ${JSON.stringify(status)}, never became "connected" (${err.message.split('\n')[0]})`);
  }
}

async function run(browser) {
  const handshakes = [];
  // Two separate browser contexts: two independent "users".
  const ctxA = await browser.newContext();
  const ctxB = await browser.newContext();
  const pageA = await openChatPage(ctxA, 'A', handshakes);
  const pageB = await openChatPage(ctxB, 'B', handshakes);
  out(`GET / ok (chromium ${browser.version()}, playwright-core ${pwVersion})`);

  await Promise.all([waitConnected(pageA, 'A'), waitConnected(pageB, 'B')]);
  out('both pages connected ok');

  // --- UI: type in A, click send, expect it in B's #log --------------------
  const chatText = `hello from A — héllo ✓ 🚀 ${Date.now()}`;
  await pageA.fill('#message', chatText);
  await pageA.click('#send');
  try {
    await pageB.waitForFunction(
      (t) => Array.from(document.querySelectorAll('#log li')).some((li) => li.textContent.includes(t)),
      chatText, { timeout: STEP_MS },
    );
  } catch (err) {
    const got = await logTexts(pageB).catch(() => []);
    throw new Fail(`UI message from A never appeared in B's #log (B's log: ${JSON.stringify(got.map((s) => short(s, 40)))})`);
  }
  const bLog = await logTexts(pageB);
  const exact = bLog.filter((s) => s === chatText).length;
  if (exact === 0) {
    throw new Fail(`B's #log has the text but not as an exact <li> (entries: ${JSON.stringify(bLog.map((s) => short(s, 80)))})`);
  }
  out('UI send A -> B #log ok');
  if (SCREENSHOT_DIR) {
    await pageA.screenshot({ path: path.join(SCREENSHOT_DIR, 'browser-chat-A.png') }).catch(() => {});
    await pageB.screenshot({ path: path.join(SCREENSHOT_DIR, 'browser-chat-B.png') }).catch(() => {});
  }
  if (exact > 1) out(`note: B's #log shows the message ${exact} times`);

  // --- raw WebSockets opened by each page ------------------------------------
  const rawA = await withTimeout(pageA.evaluate(pageOpenRaw, { url: WS_URL, timeoutMs: STEP_MS }), STEP_MS + 5000, 'page A raw open');
  const rawB = await withTimeout(pageB.evaluate(pageOpenRaw, { url: WS_URL, timeoutMs: STEP_MS }), STEP_MS + 5000, 'page B raw open');
  if (!rawA.ok) throw new Fail(`page A: new WebSocket(${WS_URL}) failed: ${rawA.error}`);
  if (!rawB.ok) throw new Fail(`page B: new WebSocket(${WS_URL}) failed: ${rawB.error}`);

  await pageA.evaluate(pageSendRaw, { kind: 'binary', bytes: BINARY });
  await pageA.evaluate(pageSendRaw, { kind: 'text', text: BIG });

  const gotBin = await withTimeout(pageB.evaluate(pageWaitRaw, { want: { kind: 'binary', bytes: BINARY }, timeoutMs: STEP_MS }), STEP_MS + 5000, 'binary wait');
  if (!gotBin.ok) throw new Fail(`binary (256 byte values) A -> B: ${gotBin.error}; B's raw socket got: ${JSON.stringify(gotBin.got)}`);
  out('binary 256 bytes A -> B ok');
  const gotBig = await withTimeout(pageB.evaluate(pageWaitRaw, { want: { kind: 'text', text: BIG }, timeoutMs: STEP_MS }), STEP_MS + 5000, '70k wait');
  if (!gotBig.ok) throw new Fail(`70,000-char text A -> B: ${gotBig.error}; B's raw socket got: ${JSON.stringify(gotBig.got)}`);
  out('text 70000 chars A -> B ok');

  // Not echoed to the sender: B sends a marker; once A has it, anything the
  // server relayed back to A from A's own sends would have arrived before it.
  const marker = `marker-${Date.now()}`;
  await pageB.evaluate(pageSendRaw, { kind: 'text', text: marker });
  const gotMarker = await withTimeout(pageA.evaluate(pageWaitRaw, { want: { kind: 'text', text: marker }, timeoutMs: STEP_MS }), STEP_MS + 5000, 'marker wait');
  if (!gotMarker.ok) throw new Fail(`text B -> A (raw sockets): ${gotMarker.error}; A's raw socket got: ${JSON.stringify(gotMarker.got)}`);
  const aGot = await pageA.evaluate(pageRawSummary, { big: BIG, bytes: BINARY });
  const own = aGot.filter((m) => m.ownPayload);
  if (own.length) throw new Fail(`server echoed A's own messages back to A's socket: ${JSON.stringify(own.map(({ kind, length }) => ({ kind, length })))}`);
  const others = aGot.filter((m) => !(m.kind === 'text' && m.head === marker));
  out(`B -> A ok, no echo to sender ok${others.length ? ` (note: A's raw socket also got ${JSON.stringify(others)})` : ''}`);

  // UI side of "not echoed": A's own #log (info only -- a page could add its
  // own lines locally; the raw-socket check above is the protocol check).
  const aLog = await logTexts(pageA);
  if (aLog.includes(chatText)) out("note: page A's own #log contains the line A sent (page-side echo or server echo?)");

  // Close the raw sockets cleanly.
  for (const [name, page] of [['A', pageA], ['B', pageB]]) {
    const c = await withTimeout(page.evaluate(pageCloseRaw, { timeoutMs: STEP_MS }), STEP_MS + 5000, `page ${name} raw close`);
    if (c.timeout) throw new Fail(`page ${name}: raw socket close(1000) did not complete within ${STEP_MS}ms (readyState ${c.readyState})`);
    if (!c.wasClean || c.code !== 1000) throw new Fail(`page ${name}: raw socket closed with code ${c.code} wasClean=${c.wasClean} reason ${JSON.stringify(c.reason)}`);
  }
  out('raw sockets closed 1000 cleanly ok');

  // Info: what Chromium offered / what was negotiated.
  const offered = new Set();
  for (const h of handshakes) {
    const text = h.requestHeadersText || '';
    const m = /^sec-websocket-extensions:\s*(.*)$/im.exec(text);
    if (m) offered.add(m[1].trim());
    for (const src of [h.requestHeaders, h.willSend]) {
      if (!src) continue;
      for (const [k, v] of Object.entries(src)) if (k.toLowerCase() === 'sec-websocket-extensions') offered.add(v);
    }
  }
  const accepted = new Set(handshakes.filter((h) => h.headers).map((h) => {
    const e = Object.entries(h.headers).find(([k]) => k.toLowerCase() === 'sec-websocket-extensions');
    return e ? e[1] : '(none)';
  }));
  out(`info: Chromium offered Sec-WebSocket-Extensions: ${offered.size ? [...offered].join(' | ') : '(not visible via CDP)'}`);
  out(`info: negotiated (ws.extensions) A=${JSON.stringify(rawA.extensions)} B=${JSON.stringify(rawB.extensions)}; server answered: ${[...accepted].join(' | ') || '(not visible)'}`);
  // The server negotiates permessage-deflate by default: Chromium must agree, so
  // the binary and 70 kB messages above travelled compressed and still round-tripped.
  for (const [name, raw] of [['A', rawA], ['B', rawB]]) {
    if (!/^permessage-deflate\b/.test(raw.extensions || '')) {
      throw new Fail(`page ${name}: permessage-deflate not negotiated (ws.extensions=${JSON.stringify(raw.extensions)})`);
    }
  }
  out('permessage-deflate negotiated with Chromium ok');

}

// Terminated from outside (browser_test.sh's cleanup or timeout): exit now;
// playwright kills the browser it launched in its process 'exit' hook.
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => {
    out(`FAIL: terminated by ${sig}`);
    process.exit(1);
  });
}

async function main() {
  let browser;
  const hardCap = setTimeout(() => {
    out(`FAIL: overall timeout (${OVERALL_MS / 1000}s)`);
    process.exit(1); // playwright kills the browser it launched on exit
  }, OVERALL_MS);
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 60_000,
    });
    await run(browser);
  } catch (err) {
    failures++;
    const msg = err instanceof Fail ? err.message : `unexpected ${err && (err.stack || err)}`;
    out(`FAIL: ${msg}`);
  } finally {
    if (browser) await withTimeout(browser.close(), 15_000, 'browser.close').catch((e) => out(`note: ${e.message}`));
    clearTimeout(hardCap);
  }
  if (failures === 0) out('ok');
  process.exit(failures ? 1 : 0);
}

main();
