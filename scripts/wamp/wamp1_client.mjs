// The npm package wamp1@0.0.3 (a WAMP v1 client, on ws@8) against examples/wamp_push.py.
//
//   WAMP1_NODE_DIR=/tmp/ratchet_sel-wamp1/node node scripts/wamp/wamp1_client.mjs ws://127.0.0.1:PORT/
//
// Three sessions A, B, C run every step of the WAMP v1 checklist: prefix; a
// call with a result; five calls in flight matched to their answers; a call
// that returns an error; subscribe; publish with excludeMe, with exclude, with
// eligible and with both; unsubscribe.  Prints one line per step; exit status
// 0 only if all passed.
import { createRequire } from 'node:module';
import path from 'node:path';

const nodeDir = process.env.WAMP1_NODE_DIR || '/tmp/ratchet_sel-wamp1/node';
const require = createRequire(path.join(nodeDir, 'package.json'));
const Wamp = require('wamp1');
const version = require('wamp1/package.json').version;
const wsVersion = require('ws/package.json').version;

const URL = process.argv[2];
if (!URL) {
  console.error('usage: wamp1_client.mjs ws://127.0.0.1:PORT/');
  process.exit(2);
}
const RPC = 'http://example.com/push#';
const TOPIC_CURIE = 'push:comments';
const TOPIC = RPC + 'comments';
const STEP_MS = 15000;

const failures = [];
function report(name, ok, detail = '') {
  console.log(`wamp1 ${version} (ws ${wsVersion}): ${ok ? 'PASS' : 'FAIL'}: ${name}${detail ? ` (${detail})` : ''}`);
  if (!ok) failures.push(name);
}

function timeout(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), STEP_MS); }),
  ]).finally(() => clearTimeout(timer));
}

function openSession(name) {
  return timeout(new Promise((resolve) => {
    const session = new Wamp(URL, () => resolve(session));
    session.name = name;
    session.events = [];
    session.waiters = [];
    session.on('error', (err) => report(`session ${name} error event`, false, err.message));
  }), `session ${name}`).then((session) => {
    session.prefix('push', RPC);
    return session;
  });
}

function call(session, uri, ...args) {
  return timeout(new Promise((resolve, reject) => {
    session.call(uri, ...args, (err, result) => (err ? reject(err) : resolve(result)));
  }), `call ${uri}`);
}

function onEvent(session) {
  return (event) => {
    session.events.push(event);
    for (const waiter of session.waiters.slice()) {
      if (event && event.tag === waiter.tag) {
        session.waiters.splice(session.waiters.indexOf(waiter), 1);
        waiter.resolve(event);
      }
    }
  };
}

function waitEvent(session, tag) {
  const found = session.events.find((event) => event && event.tag === tag);
  if (found) return Promise.resolve(found);
  return timeout(new Promise((resolve) => session.waiters.push({ tag, resolve })), `event ${tag} at ${session.name}`);
}

const got = (session, tag) => session.events.some((event) => event && event.tag === tag);

// A session's answer to a call comes after any event the server sent it before.
async function barrier(...sessions) {
  for (const session of sessions) await call(session, 'push:add', 0);
}

async function publishStep(name, publisher, sessions, expected, tag, ...options) {
  publisher.publish(TOPIC_CURIE, { tag, step: name }, ...options);
  const receivers = sessions.filter((s) => expected.includes(s.name));
  const others = sessions.filter((s) => !expected.includes(s.name));
  try {
    await Promise.all(receivers.map((s) => waitEvent(s, tag)));
    await barrier(publisher, ...others);
    const wrong = others.filter((s) => got(s, tag)).map((s) => s.name);
    report(name, wrong.length === 0, wrong.length ? `also delivered to ${wrong.join('')}` : `delivered to exactly ${expected}`);
  } catch (err) {
    report(name, false, err.message);
  }
}

async function run() {
  const a = await openSession('A');
  const b = await openSession('B');
  const c = await openSession('C');
  const sessions = [a, b, c];
  const ids = new Set(sessions.map((s) => s.sessionId));
  report('WELCOME', ids.size === 3 && sessions.every((s) => typeof s.sessionId === 'string' && s.sessionId.length >= 16),
    `session ids ${[...ids].map((id) => id.slice(0, 8)).join(', ')}`);

  let result = await call(a, 'push:add', 20, 22);
  report('prefix (call push:add resolved by the server)', result === 42, `got ${JSON.stringify(result)}`);
  result = await call(a, RPC + 'add', 1, 2, 3.5);
  report('call returns a result', result === 6.5, `got ${JSON.stringify(result)}`);

  const delays = [300, 50, 200, 0, 120];
  const order = [];
  const results = await Promise.all(delays.map((delay, n) =>
    call(a, 'push:delayed', `value-${n}`, delay).then((value) => { order.push(n); return value; })));
  const sorted = [...order].sort((x, y) => x - y);
  report('five calls in flight, each matched to its answer',
    results.every((value, n) => value === `value-${n}`) && order.join() !== sorted.join(),
    `answers arrived in order ${order.join(',')}`);

  try {
    await call(a, 'push:divide', 1, 0);
    report('call returns an error', false, 'no error');
  } catch (err) {
    report('call returns an error',
      err.uri === RPC + 'division-by-zero' && err.message === 'cannot divide by zero' && err.details && err.details.dividend === 1,
      `got ${err.uri} "${err.message}" ${JSON.stringify(err.details)}`);
  }

  for (const session of sessions) session.subscribe(TOPIC_CURIE, onEvent(session));
  // WAMP v1 does not acknowledge a SUBSCRIBE; a call answered on a connection
  // proves that connection's subscribe was handled (messages on one connection
  // are handled in order), so ask on every connection before counting.
  for (const session of [a, b]) await call(session, 'push:subscribers');
  let counts = await call(c, 'push:subscribers');
  report('subscribe', counts[TOPIC] === 3, `server counts ${JSON.stringify(counts)}`);

  await publishStep('publish (no options: WAMP v1 leaves the publisher out)', a, sessions, 'BC', 't0');
  await publishStep('publish excludeMe=true', a, sessions, 'BC', 't1', true);
  await publishStep('publish excludeMe=false', a, sessions, 'ABC', 't2', false);
  await publishStep('publish with exclude', a, sessions, 'AC', 't3', [b.sessionId]);
  await publishStep('publish with eligible', a, sessions, 'B', 't4', [], [b.sessionId]);
  await publishStep('publish with exclude and eligible', a, sessions, 'C', 't5', [b.sessionId], [b.sessionId, c.sessionId]);

  b.unsubscribe(TOPIC_CURIE);
  counts = await call(b, 'push:subscribers');
  report('unsubscribe (server count)', counts[TOPIC] === 2, `server counts ${JSON.stringify(counts)}`);
  await publishStep('unsubscribe (no more events)', a, sessions, 'AC', 't6', false);

  for (const session of sessions) session.socket._socket.close(1000);
}

const overall = setTimeout(() => { report('overall', false, 'timeout'); process.exit(1); }, 120000);
run().then(() => {
  clearTimeout(overall);
  if (failures.length) {
    console.log(`wamp1: ${failures.length} step(s) failed: ${failures.join(', ')}`);
    process.exit(1);
  }
  console.log('wamp1: all steps passed');
  process.exit(0);
}, (err) => {
  clearTimeout(overall);
  console.log(`wamp1: FAIL: ${err.stack || err}`);
  process.exit(1);
});
