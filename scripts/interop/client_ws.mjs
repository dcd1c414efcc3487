// Node `ws` client against a ratchet_sel echo server.
//
//   INTEROP_NODE_DIR=/tmp/ratchet_sel-interop/node node client_ws.mjs URL PROTOCOL_VERSION
//
// PROTOCOL_VERSION is 13 (RFC 6455) or 8 (HyBi-08/10).  Sends a non-ASCII
// text message, a binary message holding all 256 byte values and a
// 70,000-byte text message, checks each echo exactly (type and content),
// then closes with 1000 and expects the 'close' event with code 1000.
// Prints one "interop ws(node) ..." line; exit status 0 on success, 1 on failure.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const nodeDir = process.env.INTEROP_NODE_DIR || '/tmp/ratchet_sel-interop/node';
const require = createRequire(path.join(nodeDir, 'package.json'));
const WebSocket = require('ws');
const wsVersion = require('ws/package.json').version;

const TIMEOUT_MS = 10_000;
const [url, versionArg] = process.argv.slice(2);
const protocolVersion = Number(versionArg || 13);
const label = `ws(node) ${protocolVersion === 13 ? 'rfc6455' : `hybi-${String(protocolVersion).padStart(2, '0')}`}`
  + (url.startsWith('wss://') ? ' over wss' : '');

export const TEXT = 'héllo ✓ 🚀 — interop';
export const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

// Same construction as clients.py big_text(): exactly 70,000 bytes of UTF-8
// mixing 1-4 byte sequences.
export function bigText(totalBytes = 70_000) {
  const unit = '0123456789abcdefghijklmnopqrstuvwxyz-é-✓-🚀|';
  const step = 6 + Buffer.byteLength(unit);
  const out = [];
  let n = 0;
  let i = 0;
  while (n + step <= totalBytes) {
    out.push(String(i++).padStart(6, '0'), unit);
    n += step;
  }
  out.push('x'.repeat(totalBytes - n));
  const s = out.join('');
  if (Buffer.byteLength(s) !== totalBytes) throw new Error('bigText size');
  return s;
}
const BIG = bigText();
// Same bytes as clients.py BIG_BINARY: a 1 MiB binary message.
const BIG_BINARY = Buffer.alloc(1 << 20);
for (let i = 0; i < BIG_BINARY.length; i++) BIG_BINARY[i] = (i * 131 + (i >> 10)) & 0xff;

class Fail extends Error {}

function describe(data, isBinary) {
  if (!isBinary) {
    const s = data.toString('utf8');
    return `text of ${data.length} bytes: ${JSON.stringify(s.slice(0, 40))}`;
  }
  return `binary of ${data.length} bytes: ${data.subarray(0, 16).toString('hex')}...`;
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return `first difference at byte ${i}: expected ${a[i]}, got ${b[i]}`;
  }
  return `length differs: expected ${a.length} bytes, got ${b.length}`;
}

function withTimeout(promise, what) {
  let t;
  const timer = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Fail(`${what}: nothing within ${TIMEOUT_MS / 1000}s`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

async function main() {
  const options = { protocolVersion, handshakeTimeout: TIMEOUT_MS };
  if (url.startsWith('wss://')) {
    // Trust the project's self-signed test certificate, and only it.
    options.ca = fs.readFileSync(process.env.INTEROP_CAFILE);
  }
  const ws = new WebSocket(url, options);
  // Queue of incoming events, consumed in order.
  const queue = [];
  let waiter = null;
  const push = (ev) => {
    queue.push(ev);
    if (waiter) { const w = waiter; waiter = null; w(); }
  };
  ws.on('message', (data, isBinary) => push({ type: 'message', data, isBinary }));
  ws.on('close', (code, reason) => push({ type: 'close', code, reason: reason.toString() }));
  ws.on('error', (err) => push({ type: 'error', err }));
  ws.on('unexpected-response', (req, res) => {
    push({ type: 'error', err: new Error(`handshake refused: HTTP ${res.statusCode} ${res.statusMessage}`) });
    res.resume();
    req.destroy();
  });
  const next = async (what) => {
    while (queue.length === 0) {
      await withTimeout(new Promise((r) => { waiter = r; }), what);
    }
    return queue.shift();
  };

  await withTimeout(new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', (e) => reject(new Fail(`handshake failed: ${e.message}`)));
    ws.once('unexpected-response', (req, res) => reject(new Fail(`handshake refused: HTTP ${res.statusCode}`)));
  }), 'handshake');
  const extensions = ws.extensions || 'none';

  const done = [];
  const cases = [
    ['text', TEXT, false],
    ['binary', BINARY, true],
    ['70kB', BIG, false],
    ['1MiB binary', BIG_BINARY, true],
  ];
  for (const [name, msg, binary] of cases) {
    ws.send(msg, { binary });
    const ev = await next(`${name} echo`);
    if (ev.type === 'close') throw new Fail(`${name}: connection closed (code ${ev.code} ${JSON.stringify(ev.reason)}) instead of echo`);
    if (ev.type === 'error') throw new Fail(`${name}: error instead of echo: ${ev.err.message}`);
    if (ev.isBinary !== binary) throw new Fail(`${name}: sent ${binary ? 'binary' : 'text'}, echo came back as ${describe(ev.data, ev.isBinary)}`);
    const expected = binary ? msg : Buffer.from(msg, 'utf8');
    if (!expected.equals(ev.data)) throw new Fail(`${name}: echo differs (${firstDiff(expected, ev.data)})`);
    done.push(`${name} ok`);
  }

  ws.close(1000, 'bye');
  let ev;
  let error = null;
  for (;;) {
    ev = await next('close handshake');
    if (ev.type === 'close') break;
    if (ev.type === 'message') throw new Fail(`close: unexpected message after close: ${describe(ev.data, ev.isBinary)}`);
    error = error || ev.err;  // ws emits 'error' then 'close'
  }
  if (error) throw new Fail(`close: error during closing handshake: ${error.message} (close code ${ev.code})`);
  if (ev.code !== 1000) {
    const hint = ev.code === 1006 ? ' (1006: TCP ended without a close frame from the server)' : '';
    throw new Fail(`close: expected code 1000, got ${ev.code}${hint} reason ${JSON.stringify(ev.reason)}`);
  }
  done.push('close 1000 ok');
  return `${done.join(', ')} (extensions=${extensions}, ws ${wsVersion})`;
}

// Whole-run cap, in case something above forgets a timeout.
const hardCap = setTimeout(() => {
  console.log(`interop ${label}: FAIL: overall timeout`);
  process.exit(1);
}, 60_000);


main().then(
  (line) => { console.log(`interop ${label}: ${line}`); process.exit(0); },
  (err) => {
    const msg = err instanceof Fail ? err.message : `unexpected ${err && err.stack || err}`;
    console.log(`interop ${label}: FAIL: ${msg}`);
    process.exit(1);
  },
);
