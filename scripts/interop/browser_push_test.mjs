// Headless Chromium test of examples/push.py (driven by scripts/browser_push_test.sh).
//
//   INTEROP_NODE_DIR=/tmp/ratchet_sel-interop/node PUSH_POST_ARGS="--http URL --token T" \
//       node browser_push_test.mjs PORT
//
// Opens three pages of the push server: two subscribed to "kittens", one to
// "puppies".  Then the blog, in another process (`python3 examples/push.py post
// $PUSH_POST_ARGS ...`), publishes a kittens post: it must appear in exactly the
// two kittens pages.  A puppies post then reaches only the third page.
// Prints "browser push: ..." lines; exit status 0 on success, 1 on failure.

import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const nodeDir = process.env.INTEROP_NODE_DIR || '/tmp/ratchet_sel-interop/node';
const require = createRequire(path.join(nodeDir, 'package.json'));
const { chromium } = require('playwright-core');

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: browser_push_test.mjs PORT');
  process.exit(2);
}
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const POST_ARGS = (process.env.PUSH_POST_ARGS || '').split(' ').filter(Boolean);
const MODE = process.env.PUSH_MODE || 'http';
const STEP_MS = 15_000;
const OVERALL_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 150_000);
const TOKEN = process.env.BROWSER_TEST_TOKEN || 'none';

const out = (s) => console.log(`browser push (${MODE}): ${s}`);
class Fail extends Error {}

// The blog in another process: one post, through Redis or POST /publish.
function runPost(category, title) {
  return new Promise((resolve, reject) => {
    execFile('python3', [path.join(REPO, 'examples', 'push.py'), 'post', ...POST_ARGS,
      '--category', category, '--title', title], { timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Fail(`push.py post failed: ${err.message} ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

// Redis delivers to the servers subscribed when PUBLISH runs: the page's
// "subscribed" ack means the server sent SUBSCRIBE, not that Redis processed it
// yet.  "0 socket server(s)" means nobody got the post, so posting again is safe.
async function post(category, title) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const summary = await runPost(category, title);
    if (!summary.startsWith('0 ')) return summary;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Fail(`no server received the ${category} post`);
}

async function openPage(browser, name, category) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (err) => out(`note: page ${name} script error: ${err.message}`));
  const resp = await page.goto(`http://127.0.0.1:${port}/?category=${category}`, { waitUntil: 'load' });
  if (!resp || resp.status() !== 200) throw new Fail(`page ${name}: GET / returned ${resp && resp.status()}`);
  try {
    await page.waitForFunction((c) => document.querySelector('#status').textContent === 'connected'
      && document.querySelector('#subscribed').textContent === c, category, { timeout: STEP_MS });
  } catch (err) {
    const status = await page.textContent('#status');
    const subscribed = await page.textContent('#subscribed');
    throw new Fail(`page ${name}: not subscribed to ${category} (status ${status}, subscribed ${subscribed})`);
  }
  out(`page ${name} subscribed to ${category}`);
  return page;
}

const titles = (page) => page.$$eval('#posts li.post b', (bs) => bs.map((b) => b.textContent));

async function waitPost(page, name, title) {
  try {
    await page.waitForFunction((t) => Array.from(document.querySelectorAll('#posts li.post b'))
      .some((b) => b.textContent === t), title, { timeout: STEP_MS });
  } catch (err) {
    throw new Fail(`page ${name} did not show ${JSON.stringify(title)}; it has ${JSON.stringify(await titles(page))}`);
  }
}

async function run(browser) {
  const a = await openPage(browser, 'A', 'kittens');
  const b = await openPage(browser, 'B', 'kittens');
  const c = await openPage(browser, 'C', 'puppies');
  const kitten = `New kitten ${Date.now()}`;
  out(`blog: ${await post('kittens', kitten)}`);
  await waitPost(a, 'A', kitten);
  await waitPost(b, 'B', kitten);
  out('the kittens post reached both kittens pages');
  const puppy = `New puppy ${Date.now()}`;
  out(`blog: ${await post('puppies', puppy)}`);
  await waitPost(c, 'C', puppy);
  // The kittens post was delivered before the puppies post was even made: had
  // page C been sent it, it would be there by now.
  const [ta, tb, tc] = [await titles(a), await titles(b), await titles(c)];
  if (JSON.stringify(ta) !== JSON.stringify([kitten])) throw new Fail(`page A has ${JSON.stringify(ta)}`);
  if (JSON.stringify(tb) !== JSON.stringify([kitten])) throw new Fail(`page B has ${JSON.stringify(tb)}`);
  if (JSON.stringify(tc) !== JSON.stringify([puppy])) throw new Fail(`page C has ${JSON.stringify(tc)}`);
  out('each post reached exactly the pages subscribed to its category');
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
