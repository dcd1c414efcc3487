// Headless Chromium against examples/wamp2_app.py (driven by scripts/ci_wamp2_interop.sh):
// the example serves its page at GET / and autobahn-js's browser build (npm
// autobahn-browser, served with --static); the page's own autobahn-js connects
// over wamp.2.json or wamp.2.msgpack.
//
//   INTEROP_NODE_DIR=/tmp/ratchet_sel-interop/node node scripts/wamp2/browser_test.mjs PORT [REALM]
//
// Checks, in a real browser:
//   1. GET / is 200 and the page's script defines window.autobahn (the browser build);
//   2. in the page, two autobahn-js sessions join REALM on ws://127.0.0.1:PORT/:
//      one registers a procedure and subscribes to a topic, the other calls the
//      procedure (args and kwargs) and publishes to the topic; the call's result
//      and the event must arrive (a call and a subscription, both ways through
//      the router);
//   3. the page's own session (its script) shows com.example.add(2, 3) = 5, the
//      error of com.example.divide(1, 0) and its own chat publication coming back;
//   4. an app procedure (WAMP2_APP_CALL, default com.example.whoami) answers in-page.
// Prints "browser wamp2: ..." lines; exit 0 on success.
import { createRequire } from 'node:module';
import path from 'node:path';

const nodeDir = process.env.INTEROP_NODE_DIR || '/tmp/ratchet_sel-interop/node';
const require = createRequire(path.join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');

const port = Number(process.argv[2]);
const realm = process.argv[3] || 'realm1';
if (!port) {
  console.error('usage: browser_test.mjs PORT [REALM]');
  process.exit(2);
}
const BASE = `http://127.0.0.1:${port}`;
const STEP_MS = 15_000;
const OVERALL_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 120_000);
const TOKEN = process.env.BROWSER_TEST_TOKEN || 'none';
const APP_CALL = process.env.WAMP2_APP_CALL === undefined ? 'com.example.whoami' : process.env.WAMP2_APP_CALL;
// The router's URL (default: the page's own port, as the example serves both).
const WS_URL = process.env.WAMP2_WS_URL || `ws://127.0.0.1:${port}/`;
const out = (s) => console.log(`browser wamp2: ${s}`);
class Fail extends Error {}

// Runs in the page: a call and a subscription between two sessions, per serializer.
async function inPage({ url, realm, serializer, appCall, stepMs }) {
  const ab = window.autobahn;
  const within = (p, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timeout: ' + what)), stepMs))]);
  const open = () => within(new Promise((resolve, reject) => {
    const ser = serializer === 'msgpack' ? new ab.serializer.MsgpackSerializer() : new ab.serializer.JSONSerializer();
    const c = new ab.Connection({ url, realm, serializers: [ser], max_retries: 0, retry_if_unreachable: false });
    c.onopen = (s) => resolve({ c, s });
    c.onclose = (reason, details) => { reject(new Error('closed: ' + reason + ' ' + JSON.stringify(details))); return true; };
    c.open();
  }), 'join');
  const a = await open();
  const b = await open();
  const topic = 'com.ratchet_sel.browser.t' + Math.floor(Math.random() * 1e9);
  const proc = 'com.ratchet_sel.browser.p' + Math.floor(Math.random() * 1e9);
  let gotEvent;
  const event = new Promise((r) => { gotEvent = r; });
  await within(a.s.register(proc, (args, kwargs) => new ab.Result([args[0] * kwargs.times], { from: 'browser' })), 'REGISTERED');
  await within(a.s.subscribe(topic, (args, kwargs) => gotEvent({ args, kwargs })), 'SUBSCRIBED');
  const res = await within(b.s.call(proc, [21], { times: 2 }), 'RESULT');
  await within(b.s.publish(topic, ['hello', 'browser'], { n: 1 }, { acknowledge: true }), 'PUBLISHED');
  const ev = await within(event, 'EVENT');
  let app = null;
  if (appCall) app = await within(b.s.call(appCall), 'the app procedure');
  const protocol = b.c.transport && b.c.transport.info ? b.c.transport.info.protocol : '?';
  a.c.close(); b.c.close();
  return { result: { args: res.args, kwargs: res.kwargs }, event: ev, app: app === null ? null : JSON.stringify(app), protocol };
}

async function run(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => out(`note: page script error: ${err.message}`));
  const response = await page.goto(`${BASE}/`, { waitUntil: 'load' });
  if (!response || response.status() !== 200) throw new Fail(`GET / gave ${response && response.status()}`);
  try {
    await page.waitForFunction(() => typeof window.autobahn !== 'undefined' && window.autobahn.Connection);
  } catch (err) {
    throw new Fail('the page did not load autobahn-js (window.autobahn undefined): is --static serving autobahn-browser?');
  }
  out(`GET / 200, autobahn-js ${await page.evaluate(() => window.autobahn.version || '(browser build)')} loaded`);
  // The page's own client: com.example.add(2, 3), divide(1, 0)'s application error, and
  // its publication on com.example.chat coming back to its subscription (exclude_me false).
  try {
    await page.waitForFunction(() => window.wampResults && window.wampResults.add !== undefined
      && window.wampResults.divideError !== undefined && window.wampResults.event !== undefined);
  } catch (err) {
    throw new Fail(`the page's own calls did not finish: status "${await page.textContent('#status')}", `
      + `results ${JSON.stringify(await page.evaluate(() => window.wampResults))}`);
  }
  const own = await page.evaluate(() => window.wampResults);
  const shown = await page.textContent('#call-result');
  const okOwn = own.add === 5 && shown === '5' && own.divideError === 'com.example.divide_by_zero'
    && JSON.stringify(own.event) === JSON.stringify(['hello from the browser']);
  out(`${okOwn ? 'PASS' : 'FAIL'} the page's own session: add(2, 3) = ${own.add} (shown "${shown}"), `
    + `divide(1, 0) error ${own.divideError}, chat event ${JSON.stringify(own.event)}`);
  if (!okOwn) throw new Fail("the page's own results are wrong");
  for (const serializer of ['json', 'msgpack']) {
    const got = await page.evaluate(inPage, { url: WS_URL, realm, serializer, appCall: APP_CALL, stepMs: STEP_MS });
    const okCall = JSON.stringify(got.result) === JSON.stringify({ args: [42], kwargs: { from: 'browser' } });
    const okEvent = JSON.stringify(got.event) === JSON.stringify({ args: ['hello', 'browser'], kwargs: { n: 1 } });
    out(`${okCall ? 'PASS' : 'FAIL'} ${serializer}: call in the browser -> RESULT ${JSON.stringify(got.result)} (subprotocol ${got.protocol})`);
    out(`${okEvent ? 'PASS' : 'FAIL'} ${serializer}: subscription in the browser -> EVENT ${JSON.stringify(got.event)}`);
    if (APP_CALL) out(`${got.app !== null ? 'PASS' : 'FAIL'} ${serializer}: the app's ${APP_CALL} answered ${got.app}`);
    if (!okCall || !okEvent || (APP_CALL && got.app === null)) throw new Fail(`${serializer}: unexpected results`);
  }
  await context.close();
}

async function main() {
  let browser;
  let failed = false;
  const hardCap = setTimeout(() => { out(`FAIL: overall timeout (${OVERALL_MS / 1000}s)`); process.exit(1); }, OVERALL_MS);
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', `--ratchet-sel-browser-test=${TOKEN}`],
      timeout: 60_000,
    });
    await run(browser);
  } catch (err) {
    failed = true;
    out(`FAIL: ${err instanceof Fail ? err.message : (err && (err.stack || err))}`);
  } finally {
    if (browser) await browser.close().catch((e) => out(`note: ${e.message}`));
    clearTimeout(hardCap);
  }
  if (!failed) out('ok');
  process.exit(failed ? 1 : 0);
}

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { out(`FAIL: terminated by ${sig}`); process.exit(1); });
}
main();
