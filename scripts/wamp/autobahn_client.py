# -*- coding: utf-8 -*-
"""AutobahnPython 0.8.15 (WAMP v1, Python 2.7 + Twisted) against examples/wamp_push.py.

    py2 scripts/wamp/autobahn_client.py SITE_DIR ws://127.0.0.1:PORT/

SITE_DIR holds autobahn 0.8.15 and Twisted (installed there by
scripts/ci_wamp.sh).  Three sessions A, B, C run every step of the
WAMP v1 checklist: prefix; a call with a result; five calls in flight matched
to their answers; a call that returns an error; subscribe; publish with
excludeMe, with exclude, with eligible and with both; unsubscribe.  Prints one
line per step; exit status 0 only if all passed.  (Python 2.7 code.)
"""
from __future__ import print_function

import site
import sys

SITE_DIR, URL = sys.argv[1], sys.argv[2]
# autobahn 0.8.15 must win over the newer autobahn of the conformance install.
site.addsitedir(SITE_DIR)
sys.path.remove(SITE_DIR)
sys.path.insert(0, SITE_DIR)

from twisted.internet import defer, reactor, task  # noqa: E402
from twisted.python import log  # noqa: E402

import autobahn  # noqa: E402
from autobahn.twisted.websocket import connectWS  # noqa: E402
from autobahn.wamp1.protocol import WampClientFactory, WampClientProtocol  # noqa: E402

RPC = "http://example.com/push#"
TOPIC_CURIE = "push:comments"
TOPIC = RPC + "comments"
STEP_TIMEOUT = 15.0

failures = []


def report(name, ok, detail=""):
    print("autobahn %s: %s: %s%s" % (autobahn.__version__, "PASS" if ok else "FAIL", name,
                                     (" (%s)" % detail) if detail else ""))
    sys.stdout.flush()
    if not ok:
        failures.append(name)


def with_timeout(d, what):
    timer = reactor.callLater(STEP_TIMEOUT, lambda: d.called or d.errback(Exception("timeout: " + what)))

    def cancel(result):
        if timer.active():
            timer.cancel()
        return result
    return d.addBoth(cancel)


class Session(WampClientProtocol):
    """One WAMP session that keeps every event it receives."""

    def onSessionOpen(self):
        self.events = []
        self.waiters = []
        self.prefix("push", RPC)
        self.factory.opened.callback(self)

    def on_event(self, topic, event):
        self.events.append((topic, event))
        for waiter in list(self.waiters):
            if waiter[0](topic, event):
                self.waiters.remove(waiter)
                waiter[1].callback(event)

    def wait_event(self, tag):
        """Deferred firing when an event whose 'tag' is ``tag`` has arrived."""
        d = defer.Deferred()
        for topic, event in self.events:
            if isinstance(event, dict) and event.get("tag") == tag:
                d.callback(event)
                return d
        self.waiters.append((lambda topic, event: isinstance(event, dict) and event.get("tag") == tag, d))
        return with_timeout(d, "event %s" % tag)

    def got(self, tag):
        return any(isinstance(event, dict) and event.get("tag") == tag for _, event in self.events)


def open_session(name):
    factory = WampClientFactory(URL)
    factory.protocol = Session
    factory.opened = defer.Deferred()
    connectWS(factory)
    return with_timeout(factory.opened, "session %s" % name)


@defer.inlineCallbacks
def barrier(*sessions):
    """Each session's answer to a call comes after any event the server sent it before."""
    for session in sessions:
        yield with_timeout(session.call("push:add", 0), "barrier")


@defer.inlineCallbacks
def publish_step(name, publisher, sessions, expected, tag, **options):
    publisher.publish(TOPIC_CURIE, {"tag": tag, "step": name}, **options)
    receivers = [s for s in sessions if s.name in expected]
    others = [s for s in sessions if s.name not in expected]
    try:
        yield defer.gatherResults([s.wait_event(tag) for s in receivers], consumeErrors=True)
        yield barrier(publisher, *others)
        wrong = [s.name for s in others if s.got(tag)]
        report(name, not wrong, "delivered to %s; also to %s" % ("".join(expected), wrong) if wrong
               else "delivered to exactly %s" % "".join(expected))
    except Exception as exc:
        report(name, False, str(exc))


@defer.inlineCallbacks
def run():
    a = yield open_session("A")
    b = yield open_session("B")
    c = yield open_session("C")
    for session, name in ((a, "A"), (b, "B"), (c, "C")):
        session.name = name
    sessions = [a, b, c]
    report("WELCOME", len({s.session_id for s in sessions}) == 3 and a.session_protocol_version == 1,
           "version %s, server %s" % (a.session_protocol_version, a.session_server))

    # prefix: the server expands the CURIE push:add with our PREFIX.
    result = yield with_timeout(a.call("push:add", 20, 22), "call")
    report("prefix (call push:add resolved by the server)", result == 42, "got %r" % (result,))
    result = yield with_timeout(a.call(RPC + "add", 1, 2, 3.5), "call")
    report("call returns a result", result == 6.5, "got %r" % (result,))

    delays = [300, 50, 200, 0, 120]
    order = []
    calls = []
    for n, delay in enumerate(delays):
        d = a.call("push:delayed", "value-%d" % n, delay)
        d.addCallback(lambda value, n=n: order.append(n) or value)
        calls.append(with_timeout(d, "call %d" % n))
    results = yield defer.gatherResults(calls, consumeErrors=True)
    report("five calls in flight, each matched to its answer",
           results == ["value-%d" % n for n in range(5)] and order != sorted(order),
           "answers arrived in order %s" % order)

    try:
        yield with_timeout(a.call("push:divide", 1, 0), "call")
        report("call returns an error", False, "no error")
    except Exception as exc:
        args = exc.args
        report("call returns an error",
               args[:2] == (RPC + "division-by-zero", "cannot divide by zero") and args[2] == {"dividend": 1},
               "got %r" % (args,))

    for session in sessions:
        session.subscribe(TOPIC_CURIE, session.on_event)
    # WAMP v1 does not acknowledge a SUBSCRIBE; a call answered on a connection
    # proves that connection's subscribe was handled (one connection's messages
    # are handled in order), so ask on every connection before counting.
    for session in (a, b):
        yield with_timeout(session.call("push:subscribers"), "call")
    counts = yield with_timeout(c.call("push:subscribers"), "call")
    report("subscribe", counts.get(TOPIC) == 3, "server counts %r" % (counts,))

    yield publish_step("publish excludeMe=True", a, sessions, "BC", "t1", excludeMe=True)
    yield publish_step("publish excludeMe=False", a, sessions, "ABC", "t2", excludeMe=False)
    yield publish_step("publish with exclude", a, sessions, "AC", "t3", exclude=[b.session_id])
    yield publish_step("publish with eligible", a, sessions, "B", "t4", exclude=[], eligible=[b.session_id])
    yield publish_step("publish with exclude and eligible", a, sessions, "C", "t5",
                       exclude=[b.session_id], eligible=[b.session_id, c.session_id])

    b.unsubscribe(TOPIC_CURIE)
    counts = yield with_timeout(b.call("push:subscribers"), "call")
    report("unsubscribe (server count)", counts.get(TOPIC) == 2, "server counts %r" % (counts,))
    yield publish_step("unsubscribe (no more events)", a, sessions, "AC", "t6", excludeMe=False)

    for session in sessions:
        session.sendClose()


def main():
    if "-v" in sys.argv:
        log.startLogging(sys.stdout)
    done = []

    def finish(result):
        if isinstance(result, Exception) or hasattr(result, "getTraceback"):
            report("run", False, result.getTraceback() if hasattr(result, "getTraceback") else str(result))
        done.append(True)
        reactor.callLater(0.2, reactor.stop)

    reactor.callWhenRunning(lambda: run().addBoth(finish))
    reactor.callLater(120, lambda: (report("overall", False, "timeout"), reactor.stop()))
    reactor.run()
    if failures or not done:
        print("autobahn: %d step(s) failed: %s" % (len(failures), ", ".join(failures)))
        return 1
    print("autobahn: all steps passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
