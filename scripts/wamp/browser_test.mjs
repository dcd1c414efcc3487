// Headless Chromium test of the WAMP push example page (driven by scripts/ci_wamp.sh).
//
//   INTEROP_NODE_DIR=/tmp/ratchet_sel-interop/node node scripts/wamp/browser_test.mjs PORT
//
// Opens two tabs of http://127.0.0.1:PORT/ (the page's own plain-JS WAMP v1
// client, examples/wamp1.js): both must get WELCOME.  Tab A ticks "kittens",
// tab B "puppies".  The page's RPC button must return the server's subscriber
// counts.  Then the "web app" (this script) POSTs a new post to /publish for
// each category: A must show the kittens post and not the puppies one, B the
// reverse.  Last, B also ticks "kittens" and A publishes a comment through the
// page's form: B shows it.  Prints "browser wamp: ..." lines; exit 0 on success.
import { createRequire } from 'node:module';
import path from 'node:path';

const nodeDir = process.env.INTEROP_NODE_DIR || '/tmp/ratchet_sel-interop/node';
const require = createRequire(path.join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: browser_test.mjs PORT');
  process.exit(2);
}
const BASE = `http://127.0.0.1:${port}`;
const STEP_MS = 15_000;
const OVERALL_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 150_000);
const TOKEN = process.env.BROWSER_TEST_TOKEN || 'none';
const SCREENSHOT_DIR = process.env.BROWSER_TEST_SCREENSHOT_DIR || '';
const PUBLISH_TOKEN = process.env.WAMP_PUSH_TOKEN || '';

const out = (s) => console.log(`browser wamp: ${s}`);
class Fail extends Error {}

async function openTab(browser, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => out(`note: tab ${name} script error: ${err.message}`));
  const response = await page.goto(`${BASE}/`, { waitUntil: 'load' });
  if (!response || response.status() !== 200) throw new Fail(`tab ${name}: GET / gave ${response && response.status()}`);
  try {
    await page.waitForFunction(() => document.querySelector('#status').textContent === 'connected');
  } catch (err) {
    throw new Fail(`tab ${name}: not connected (status "${await page.textContent('#status')}")`);
  }
  const session = await page.textContent('#session');
  const protocol = await page.evaluate(() => window.wampSession.socket.protocol);
  out(`tab ${name} connected: session ${session.slice(0, 8)}..., subprotocol "${protocol}"`);
  if (protocol !== 'wamp') throw new Fail(`tab ${name}: subprotocol "${protocol}", expected "wamp"`);
  return page;
}

async function rpcCounts(page) {
  await page.evaluate(() => { document.querySelector('#result').textContent = ''; });
  await page.click('#count');
  await page.waitForFunction(() => document.querySelector('#result').textContent !== '');
  const text = await page.textContent('#result');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Fail(`the RPC answered ${JSON.stringify(text)}`);
  }
}

async function waitCounts(page, want) {
  const deadline = Date.now() + STEP_MS;
  let counts;
  while (Date.now() < deadline) {
    counts = await rpcCounts(page);
    if (Object.entries(want).every(([topic, n]) => counts[topic] === n)) return counts;
  }
  throw new Fail(`subscriber counts ${JSON.stringify(counts)}, expected ${JSON.stringify(want)}`);
}

async function postFromWebApp(entry) {
  const headers = { 'Content-Type': 'application/json' };
  if (PUBLISH_TOKEN) headers.Authorization = `Bearer ${PUBLISH_TOKEN}`;
  const response = await fetch(`${BASE}/publish`, { method: 'POST', headers, body: JSON.stringify(entry) });
  const text = await response.text();
  if (response.status !== 202) throw new Fail(`POST /publish gave ${response.status}: ${text}`);
}

const events = (page) => page.$$eval('#events li', (lis) => lis.map((li) => li.textContent));

async function waitEvent(page, name, text) {
  try {
    await page.waitForFunction((t) => [...document.querySelectorAll('#events li')].some((li) => li.textContent === t), text);
  } catch (err) {
    throw new Fail(`tab ${name} did not show "${text}"; it shows ${JSON.stringify(await events(page))}`);
  }
}

async function run(browser) {
  const a = await openTab(browser, 'A');
  const b = await openTab(browser, 'B');
  await a.check('#cat-kittens');
  await b.check('#cat-puppies');
  const counts = await waitCounts(a, { kittens: 1, puppies: 1 });
  out(`a call returns its result: subscribers ${JSON.stringify(counts)} ok`);

  await postFromWebApp({ category: 'kittens', title: 'A kitten post from the web app', when: Date.now() });
  await postFromWebApp({ category: 'puppies', title: 'A puppy post from the web app', when: Date.now() });
  await waitEvent(a, 'A', 'kittens: A kitten post from the web app');
  await waitEvent(b, 'B', 'puppies: A puppy post from the web app');
  // Each tab got its own category's post: the other one was published before it, on the same server.
  const [eventsA, eventsB] = [await events(a), await events(b)];
  if (eventsA.some((e) => e.startsWith('puppies')) || eventsB.some((e) => e.startsWith('kittens'))) {
    throw new Fail(`a post reached a tab not subscribed to it: A ${JSON.stringify(eventsA)}, B ${JSON.stringify(eventsB)}`);
  }
  out('a publish from the web app reaches the subscribed tab only ok');

  await b.check('#cat-kittens');
  await waitCounts(a, { kittens: 2 });
  await a.fill('#text', 'hello from tab A');
  await a.click('#send');
  await waitEvent(b, 'B', 'kittens: hello from tab A');
  await waitEvent(a, 'A', 'kittens: hello from tab A'); // the page publishes with excludeMe false
  out('a comment published from tab A reaches tab B ok');

  await b.uncheck('#cat-kittens');
  await waitCounts(a, { kittens: 1 });
  out('unsubscribe ok');
  if (SCREENSHOT_DIR) {
    await a.screenshot({ path: path.join(SCREENSHOT_DIR, 'browser-wamp-A.png') }).catch(() => {});
    await b.screenshot({ path: path.join(SCREENSHOT_DIR, 'browser-wamp-B.png') }).catch(() => {});
  }
}

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => { out(`FAIL: terminated by ${sig}`); process.exit(1); });
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

main();
