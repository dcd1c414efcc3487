// The WAMP v2 scenarios of issue 23, driven by Autobahn|JS (npm `autobahn`) in Node.
//
//   node node_client.mjs URL REALM json|msgpack
//       the full list, one PASS/FAIL line per check (the same list as py_client.py);
//       exit status 1 when a check failed.
//   node node_client.mjs --peer URL REALM json|msgpack PREFIX
//       the JS side of py_client.py's cross-library checks: registers PREFIX.js.add
//       and PREFIX.js.fail, subscribes to PREFIX.py2js, prints READY; on the first
//       PREFIX.py2js event prints `EVENT [args,kwargs]`, publishes PREFIX.js2py
//       ["from-js", 8] {js: "yes"} (acknowledged) and leaves.
//
// The package is looked up in $WAMP2_NODE_DIR/node_modules (scripts/ci_wamp2_interop.sh installs
// it into /tmp/ratchet_sel-wamp2/node).  Node 20 has no global WebSocket: `ws` is
// installed as one before autobahn loads.  Every wait has a timeout (WAMP2_WAIT seconds).
import { createRequire } from 'node:module';
import path from 'node:path';

const NODE_DIR = process.env.WAMP2_NODE_DIR || '/tmp/ratchet_sel-wamp2/node';
const require = createRequire(path.join(NODE_DIR, 'package.json'));
if (typeof globalThis.WebSocket === 'undefined') {
  globalThis.WebSocket = require('ws');
}
const autobahn = require('autobahn');
// The reason the router's GOODBYE reply must carry (Crossbar.io says wamp.close.normal).
const GOODBYE_REPLY = process.env.WAMP2_GOODBYE_REPLY || 'wamp.close.goodbye_and_out';
// The error of a call whose timeout option (1 ms per the spec) runs out (Crossbar.io
// reads it as seconds and answers wamp.error.canceled).
const TIMEOUT_ERROR = process.env.WAMP2_TIMEOUT_ERROR || 'wamp.error.timeout';
const WAIT_MS = 1000 * Number(process.env.WAMP2_WAIT || '10');

function serializerOf(name) {
  if (name === 'json') return new autobahn.serializer.JSONSerializer();
  if (name === 'msgpack') return new autobahn.serializer.MsgpackSerializer();
  throw new Error('unknown serializer ' + name);
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out after ' + WAIT_MS / 1000 + 's: ' + what)), WAIT_MS);
  });
  return Promise.race([Promise.resolve(promise), timeout]).finally(() => clearTimeout(timer));
}

// Opens a connection and joins; resolves {session, connection, closed} where closed
// resolves with [reason, details] when the connection ends.
function connect(url, realm, ser) {
  return withTimeout(new Promise((resolve, reject) => {
    const connection = new autobahn.Connection({
      url, realm, serializers: [serializerOf(ser)], max_retries: 0, retry_if_unreachable: false,
    });
    let resolveClosed;
    const closed = new Promise((r) => { resolveClosed = r; });
    let joined = false;
    connection.onopen = (session) => { joined = true; resolve({ session, connection, closed }); };
    connection.onclose = (reason, details) => {
      resolveClosed([reason, details]);
      if (!joined) reject(new Error('closed before WELCOME: ' + reason + ' ' + JSON.stringify(details)));
      return true; // no reconnect
    };
    connection.open();
  }), 'join ' + realm);
}

// A per-topic queue of [args, kwargs] events.
class Inbox {
  constructor() { this.items = []; this.waiters = []; }
  push(item) { const w = this.waiters.shift(); if (w) w(item); else this.items.push(item); }
  next(what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return withTimeout(new Promise((r) => this.waiters.push(r)), 'event ' + what);
  }
}

async function listen(client, topic) {
  client.inbox = new Inbox();
  return withTimeout(client.session.subscribe(topic, (args, kwargs) => {
    client.inbox.push([args || [], kwargs || {}]);
  }), 'subscribe ' + topic);
}

async function outcome(promise, what) {
  try {
    return ['ok', await withTimeout(promise, what)];
  } catch (e) {
    if (e instanceof autobahn.Error) return ['error', [e.error, e.args || [], e.kwargs || {}]];
    return ['exception', String(e && e.message ? e.message : e)];
  }
}

// Results with kwargs or several args come as autobahn.Result: flatten them.
function plain(value) {
  if (value instanceof autobahn.Result) return { args: value.args, kwargs: value.kwargs };
  return value;
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

class Report {
  constructor(label) { this.label = label; this.passes = 0; this.failures = 0; }
  check(name, ok, detail) {
    if (ok) this.passes += 1; else this.failures += 1;
    console.log(`${ok ? 'PASS' : 'FAIL'} [${this.label}] ${name}${detail ? ': ' + detail : ''}`);
    return ok;
  }
}

async function pubsubChecks(r, a, b, c, topic) {
  for (const [name, cl] of [['A', a], ['B', b], ['C', c]]) {
    cl.sub = await listen(cl, topic).catch((e) => { r.check('subscribe (' + name + ')', false, String(e)); return null; });
    if (!cl.sub) return false;
  }
  r.check('subscribe', [a, b, c].every((cl) => cl.sub.id > 0), 'subscription ids ' + [a, b, c].map((cl) => cl.sub.id));
  let marker = 0;
  const publishMarker = () => {
    marker += 1;
    a.session.publish(topic, ['marker', marker], {}, { exclude_me: false });
    return ['marker', marker];
  };
  const beforeMarker = async (cl, mark) => {
    const seen = [];
    for (;;) {
      const ev = await cl.inbox.next(topic);
      if (same(ev[0], mark)) return seen;
      seen.push(ev);
    }
  };
  try {
    const value = a.session.publish(topic, [1, 'two'], { color: 'red' });
    const mark = publishMarker();
    const bSeen = await beforeMarker(b, mark);
    const aSeen = await beforeMarker(a, mark);
    await beforeMarker(c, mark);
    r.check('publish without acknowledge: no PUBLISHED, EVENT with args and kwargs',
      value === undefined && same(bSeen, [[[1, 'two'], { color: 'red' }]]), `publish returned ${value}, B got ${JSON.stringify(bSeen)}`);
    r.check('exclude_me default (true): the publisher gets no EVENT', aSeen.length === 0, 'A got ' + JSON.stringify(aSeen));

    const pub = await withTimeout(a.session.publish(topic, ['acked'], {}, { acknowledge: true }), 'PUBLISHED');
    const bEv = await b.inbox.next(topic);
    await c.inbox.next(topic);
    r.check('publish with acknowledge: PUBLISHED with an id, EVENT delivered',
      pub && pub.id > 0 && same(bEv, [['acked'], {}]), `publication ${pub && pub.id}, B got ${JSON.stringify(bEv)}`);

    a.session.publish(topic, ['self'], {}, { exclude_me: false });
    const aEv = await a.inbox.next(topic);
    await b.inbox.next(topic); await c.inbox.next(topic);
    r.check('exclude_me=false: the publisher gets its own EVENT', same(aEv, [['self'], {}]), 'A got ' + JSON.stringify(aEv));

    for (const [name, opts, want] of [
      ['exclude=[B]: A and C get the EVENT, B does not', { exclude: [b.session.id] }, { A: 1, B: 0, C: 1 }],
      ['eligible=[C]: only C gets the EVENT', { eligible: [c.session.id] }, { A: 0, B: 0, C: 1 }],
    ]) {
      a.session.publish(topic, [name], {}, Object.assign({ exclude_me: false }, opts));
      const mk = publishMarker();
      const seen = {};
      for (const [n, cl] of [['A', a], ['B', b], ['C', c]]) seen[n] = await beforeMarker(cl, mk);
      const ok = Object.keys(want).every((n) => same(seen[n], want[n] ? [[[name], {}]] : []));
      r.check(name, ok, 'got ' + JSON.stringify(seen));
    }
  } catch (e) {
    r.check('publish scenarios', false, String(e));
  }
  return true;
}

async function rpcChecks(r, url, realm, ser, b, c, prefix) {
  let regAdd;
  try {
    regAdd = await withTimeout(b.session.register(prefix + '.add', (args, kwargs) => ({ sum: args.reduce((x, y) => x + y, 0), kwargs })), 'REGISTERED');
    const regFail = await withTimeout(b.session.register(prefix + '.fail', () => {
      throw new autobahn.Error(prefix + '.error.custom', ['bad', 42], { why: 'because', n: [1, 2] });
    }), 'REGISTERED');
    r.check('register', regAdd.id > 0 && regFail.id > 0 && regAdd.id !== regFail.id, `registration ids ${regAdd.id}, ${regFail.id}`);
  } catch (e) {
    r.check('register', false, String(e));
    return;
  }
  let res = await outcome(c.session.register(prefix + '.add', () => 0), 'REGISTER again');
  r.check('register the same URI again: wamp.error.procedure_already_exists',
    res[0] === 'error' && res[1][0] === 'wamp.error.procedure_already_exists', 'got ' + JSON.stringify(res));

  res = await outcome(c.session.call(prefix + '.add', [2, 3, 4], { label: 'x', nested: { k: [true, null] } }), 'RESULT');
  r.check('call with args and kwargs', same(res, ['ok', { sum: 9, kwargs: { label: 'x', nested: { k: [true, null] } } }]), 'got ' + JSON.stringify(res));

  res = await outcome(c.session.call(prefix + '.fail', [1]), 'ERROR');
  r.check('application error: URI, args and kwargs reach the caller',
    same(res, ['error', [prefix + '.error.custom', ['bad', 42], { why: 'because', n: [1, 2] }]]), 'got ' + JSON.stringify(res));

  res = await outcome(c.session.call(prefix + '.nobody-registered-this'), 'ERROR');
  r.check('unknown procedure: wamp.error.no_such_procedure', res[0] === 'error' && res[1][0] === 'wamp.error.no_such_procedure', 'got ' + JSON.stringify(res));

  try {
    await withTimeout(b.session.register(prefix + '.hang', () => new Promise(() => {})), 'REGISTERED');
    res = await outcome(c.session.call(prefix + '.hang', [], {}, { timeout: 1 }), 'ERROR after the timeout');
    r.check('call with the timeout option, callee silent: ERROR ' + TIMEOUT_ERROR,
      res[0] === 'error' && res[1][0] === TIMEOUT_ERROR, 'got ' + JSON.stringify(res));
  } catch (e) {
    r.check('call with the timeout option', false, String(e));
  }
  try {
    const d = await connect(url, realm, ser);
    let invoked;
    const wasInvoked = new Promise((resolve) => { invoked = resolve; });
    await withTimeout(d.session.register(prefix + '.vanish', () => {
      invoked();
      d.connection.close();                  // the WebSocket closes with the call unanswered
      return new Promise(() => {});          // never settles
    }), 'REGISTERED');
    const call = outcome(c.session.call(prefix + '.vanish', ['x']), 'ERROR after the callee left');
    await withTimeout(wasInvoked, 'INVOCATION');
    res = await call;
    r.check('callee disconnects mid-call: the caller gets ERROR wamp.error.canceled (no hang)',
      res[0] === 'error' && res[1][0] === 'wamp.error.canceled', 'got ' + JSON.stringify(res));
  } catch (e) {
    r.check('callee disconnects mid-call', false, String(e));
  }

  try {
    await withTimeout(b.session.unregister(regAdd), 'UNREGISTERED');
    res = await outcome(c.session.call(prefix + '.add', [1]), 'ERROR');
    r.check('unregister: a later call gets wamp.error.no_such_procedure', res[0] === 'error' && res[1][0] === 'wamp.error.no_such_procedure', 'got ' + JSON.stringify(res));
  } catch (e) {
    r.check('unregister', false, String(e));
  }
}

async function leave(cl) {
  cl.session.leave('wamp.close.normal', 'bye');
  const [reason, details] = await withTimeout(cl.closed, 'GOODBYE');
  return [reason, details && details.reason];
}

async function scenarios(url, realm, ser) {
  const r = new Report('autobahn-js ' + ser);
  const prefix = 'com.ratchet_sel.proof.js' + Math.floor(Math.random() * 2 ** 30);
  try {
    const [a, b, c] = [await connect(url, realm, ser), await connect(url, realm, ser), await connect(url, realm, ser)];
    const ids = [a, b, c].map((cl) => cl.session.id);
    r.check('join realm ' + realm + ': WELCOME with distinct session ids in [1, 2^53]',
      new Set(ids).size === 3 && ids.every((i) => Number.isInteger(i) && i >= 1 && i <= 2 ** 53) && a.session.realm === realm,
      'session ids ' + ids);
    const abort = await connect(url, 'com.ratchet_sel.no.such.realm', ser).then(
      (cl) => { cl.connection.close(); return 'joined as session ' + cl.session.id; },
      (e) => String(e.message));
    r.check('join an unknown realm: ABORT wamp.error.no_such_realm', /"reason":"wamp.error.no_such_realm"/.test(abort), abort);
    await pubsubChecks(r, a, b, c, prefix + '.topic');
    await rpcChecks(r, url, realm, ser, b, c, prefix);
    if (b.sub) {
      const res = await outcome(b.session.unsubscribe(b.sub), 'UNSUBSCRIBED');
      r.check('unsubscribe', res[0] === 'ok' && b.sub.active === false, 'got ' + JSON.stringify(res));
    }
    for (const [name, cl] of [['A', a], ['B', b], ['C', c]]) {
      const res = await leave(cl).catch((e) => [String(e)]);
      r.check(`leave (${name}): GOODBYE answered with ${GOODBYE_REPLY}`,
        res[0] === 'closed' && res[1] === GOODBYE_REPLY, 'onclose got ' + JSON.stringify(res));
    }
  } catch (e) {
    r.check('scenario run', false, 'aborted: ' + String(e && e.stack ? e.stack : e));
  }
  console.log(`[${r.label}] ${r.passes} passed, ${r.failures} failed`);
  return r.failures ? 1 : 0;
}

async function peer(url, realm, ser, prefix) {
  const cl = await connect(url, realm, ser);
  await withTimeout(cl.session.register(prefix + '.js.add', (args, kwargs) => (args[0] + args[1]) * kwargs.scale), 'REGISTERED');
  await withTimeout(cl.session.register(prefix + '.js.fail', () => {
    throw new autobahn.Error(prefix + '.js.error', ['js-arg'], { js: true });
  }), 'REGISTERED');
  let gotEvent;
  const event = new Promise((resolve) => { gotEvent = resolve; });
  await withTimeout(cl.session.subscribe(prefix + '.py2js', (args, kwargs) => gotEvent([args || [], kwargs || {}])), 'SUBSCRIBED');
  console.log('READY ' + cl.session.id);
  const ev = await withTimeout(event, 'the Python publication');
  console.log('EVENT ' + JSON.stringify(ev));
  await withTimeout(cl.session.publish(prefix + '.js2py', ['from-js', 8], { js: 'yes' }, { acknowledge: true }), 'PUBLISHED');
  await leave(cl);
  return 0;
}

const argv = process.argv.slice(2);
let run;
if (argv[0] === '--peer') run = peer(argv[1], argv[2], argv[3], argv[4]);
else if (argv.length === 3) run = scenarios(argv[0], argv[1], argv[2]);
else { console.error('usage: node_client.mjs [--peer] URL REALM json|msgpack [PREFIX]'); process.exit(2); }
run.then((code) => process.exit(code), (e) => { console.error('FAIL', e && e.stack ? e.stack : e); process.exit(1); });
