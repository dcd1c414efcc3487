// WAMP v1 and v2 on one port (issue 23, "v1 and v2 at once"): npm autobahn (v2) here,
// AutobahnPython 0.8.15 (v1, scripts/wamp2/v1_peer.py on the private python2.7) as a child.
//
//   node v1v2.mjs ws://127.0.0.1:PORT/ REALM PY2 SITE_DIR json|msgpack
//
// 1. the v2 session subscribes to TOPIC (a full URI), then starts the v1 peer, which
//    subscribes and publishes {"from": "v1", "n": 1};
// 2. the v2 subscriber must get that as EVENT args=[{"from": "v1", "n": 1}], no kwargs;
// 3. the v2 session publishes TOPIC args=["from-v2"] (acknowledged): the v1 subscriber
//    must get the event "from-v2" (the peer exits 0 when it has).
// 4. the documented mapping of other shapes (docs/wamp.md): a v2 PUBLISH ["a","b"] {k: 1}
//    reaches v1 as {"args": ["a","b"], "kwargs": {"k": 1}}; a v1 event that is exactly
//    {"args": [1], "kwargs": {"x": 2}} reaches v2 as EVENT args=[1] kwargs={x: 2}.
// Prints PASS/FAIL lines; exit 1 on any failure.  Every wait has a timeout.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const NODE_DIR = process.env.WAMP2_NODE_DIR || '/tmp/ratchet_sel-wamp2/node';
const require = createRequire(path.join(NODE_DIR, 'package.json'));
if (typeof globalThis.WebSocket === 'undefined') globalThis.WebSocket = require('ws');
const autobahn = require('autobahn');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const WAIT_MS = 1000 * Number(process.env.WAMP2_WAIT || '15');

const [url, realm, py2, site, ser] = process.argv.slice(2);
if (!ser) { console.error('usage: v1v2.mjs URL REALM PY2 SITE_DIR json|msgpack'); process.exit(2); }
const label = `v1 autobahn 0.8.15 + v2 autobahn-js ${ser}`;
let failures = 0;
const check = (name, ok, detail) => {
  if (!ok) failures += 1;
  console.log(`${ok ? 'PASS' : 'FAIL'} [${label}] ${name}${detail ? ': ' + detail : ''}`);
};
const timeout = (p, what) => {
  let t;
  return Promise.race([p, new Promise((_, rej) => { t = setTimeout(() => rej(new Error('timed out: ' + what)), WAIT_MS); })])
    .finally(() => clearTimeout(t));
};

async function main() {
  const topic = 'http://example.com/ratchet_sel/v1v2/' + Math.floor(Math.random() * 2 ** 30);
  const serializer = ser === 'msgpack' ? new autobahn.serializer.MsgpackSerializer() : new autobahn.serializer.JSONSerializer();
  const connection = new autobahn.Connection({ url, realm, serializers: [serializer], max_retries: 0, retry_if_unreachable: false });
  const session = await timeout(new Promise((resolve, reject) => {
    connection.onopen = (s) => resolve(s);
    connection.onclose = (reason, details) => { reject(new Error('closed: ' + reason + ' ' + JSON.stringify(details))); return true; };
    connection.open();
  }), 'v2 join');
  const events = [];
  let wake = null;
  await timeout(session.subscribe(topic, (args, kwargs) => { events.push([args || [], kwargs || {}]); if (wake) wake(); }), 'v2 SUBSCRIBED');

  const child = spawn(py2, ['-W', 'ignore', path.join(HERE, 'v1_peer.py'), site, url, topic], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = readline.createInterface({ input: child.stdout });
  const v1Lines = [];
  let lineWaiter = null;
  lines.on('line', (l) => { v1Lines.push(l); if (lineWaiter) lineWaiter(); });
  const waitLine = (pred, what) => timeout(new Promise((resolve) => {
    const look = () => { const l = v1Lines.find(pred); if (l) { lineWaiter = null; resolve(l); } };
    lineWaiter = look; look();
  }), what);
  try {
    const ready = await waitLine((l) => l.startsWith('READY') || l.startsWith('FAIL'), 'the v1 peer READY');
    check('v1 client (subprotocol "wamp") subscribed and published on the same port', ready.startsWith('READY'), ready);
    await timeout(new Promise((resolve) => { wake = () => events.length && resolve(); wake(); }), 'the v1 publication at the v2 subscriber');
    check('v1 PUBLISH reaches the v2 subscriber as EVENT args=[event], no kwargs',
      JSON.stringify(events[0]) === JSON.stringify([[{ from: 'v1', n: 1 }], {}]), 'got ' + JSON.stringify(events[0]));
    await timeout(session.publish(topic, ['from-v2'], {}, { acknowledge: true }), 'v2 PUBLISHED');
    await timeout(session.publish(topic, ['a', 'b'], { k: 1 }, { acknowledge: true }), 'v2 PUBLISHED');
    const got = await waitLine((l) => l === 'EVENT "from-v2"' || l.startsWith('FAIL'), 'the v2 publication at the v1 subscriber');
    check('v2 PUBLISH with one positional argument reaches the v1 subscriber as that event', got === 'EVENT "from-v2"', got);
    const want = 'EVENT {"args":["a","b"],"kwargs":{"k":1}}';
    const other = await waitLine((l) => l === want || l.startsWith('FAIL'), 'the v2 args+kwargs publication at the v1 subscriber');
    check('v2 PUBLISH args=["a","b"] kwargs={k:1} reaches v1 as {"args": [...], "kwargs": {...}} (docs/wamp.md)', other === want, other);
    await timeout(new Promise((resolve) => { wake = () => events.length >= 2 && resolve(); wake(); }), 'the v1 args/kwargs publication at the v2 subscriber');
    check('v1 PUBLISH {"args": [1], "kwargs": {"x": 2}} reaches v2 as EVENT args=[1] kwargs={x: 2} (docs/wamp.md)',
      JSON.stringify(events[1]) === JSON.stringify([[1], { x: 2 }]), 'got ' + JSON.stringify(events[1]));
    const code = await timeout(exited, 'the v1 peer exit');
    check('v1 peer exited cleanly', code === 0, 'exit status ' + code + '; its lines: ' + JSON.stringify(v1Lines));
  } catch (e) {
    check('v1/v2 run', false, String(e) + '; v1 peer printed ' + JSON.stringify(v1Lines));
  } finally {
    child.kill('SIGKILL');
    connection.close();
  }
  console.log(`[${label}] ${failures ? failures + ' failed' : 'all passed'}`);
  return failures ? 1 : 0;
}

main().then((c) => process.exit(c), (e) => { console.log(`FAIL [${label}] ${e && e.stack ? e.stack : e}`); process.exit(1); });
