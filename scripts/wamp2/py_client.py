"""The WAMP v2 scenarios of issue 23, driven by AutobahnPython (asyncio flavour).

    python py_client.py URL REALM json|msgpack [--cross-node NODE_SCRIPT --cross-serializer S]

Runs, each as one PASS/FAIL line: join a realm; subscribe; publish with and
without acknowledge; exclude_me default and overridden; exclude and eligible by
session id; register (and the same URI again: procedure_already_exists); call
with args and kwargs; a procedure that raises an application error (URI, args,
kwargs arrive at the caller); a call to an unknown procedure; a callee that
disconnects mid-call (the caller gets an ERROR, not a hang); unregister;
unsubscribe; leave (GOODBYE answered with wamp.close.goodbye_and_out).

With --cross-node, it also starts the autobahn-js peer (node_client.mjs --peer)
in the same realm: a Python caller reaches the JS callee, a Python publisher
reaches the JS subscriber, and a JS publisher reaches the Python subscriber.

"Did not receive" is never checked with a sleep: a publisher's events reach a
subscriber in publication order (WAMP's ordering guarantee), so each excluded
publication is followed by a marker publication every subscriber receives; a
subscriber that gets the marker first never gets the excluded one.
Every wait has a timeout (WAIT seconds).  Exit status 1 when any check failed.
"""

import argparse
import asyncio
import json
import os
import random
import sys
from urllib.parse import urlparse

from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import CallOptions, ComponentConfig, PublishOptions

WAIT = float(os.environ.get("WAMP2_WAIT", "10"))
# The reason the router's GOODBYE reply must carry: the spec's wamp.close.goodbye_and_out
# (Crossbar.io answers wamp.close.normal, so its harness run sets WAMP2_GOODBYE_REPLY).
GOODBYE_REPLY = os.environ.get("WAMP2_GOODBYE_REPLY", "wamp.close.goodbye_and_out")
# The error of a call whose `timeout` option (1: milliseconds per the spec) runs out:
# the spec's wamp.error.timeout (Crossbar.io reads it as seconds and answers
# wamp.error.canceled, so its harness run sets WAMP2_TIMEOUT_ERROR).
TIMEOUT_ERROR = os.environ.get("WAMP2_TIMEOUT_ERROR", "wamp.error.timeout")
SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer}


class Report:
    """Collects PASS/FAIL lines under one label."""

    def __init__(self, label):
        self.label = label
        self.failures = 0
        self.passes = 0

    def check(self, name, ok, detail=""):
        """Prints one PASS or FAIL line; returns ok."""
        if ok:
            self.passes += 1
        else:
            self.failures += 1
        suffix = (": " + detail) if detail else ""
        print("%s [%s] %s%s" % ("PASS" if ok else "FAIL", self.label, name, suffix), flush=True)
        return ok


class Client(ApplicationSession):
    """One session that records its events per topic and its close reason."""

    def __init__(self, config, joined, left):
        super().__init__(config)
        self._joined = joined
        self._left = left
        self.events = {}                 # topic -> asyncio.Queue of (args, kwargs)

    async def onJoin(self, details):
        if not self._joined.done():
            self._joined.set_result(details)

    def onLeave(self, details):
        if not self._left.done():
            self._left.set_result(details.reason)
        self.disconnect()

    def onDisconnect(self):
        if not self._joined.done():
            self._joined.set_exception(ConnectionError("disconnected before WELCOME"))
        if not self._left.done():
            self._left.set_result("(transport closed without GOODBYE)")

    def queue(self, topic):
        """The event queue of a topic (made on first use)."""
        return self.events.setdefault(topic, asyncio.Queue())

    async def listen(self, topic):
        """SUBSCRIBE to topic, queueing every event."""
        def on_event(*args, **kwargs):
            kwargs.pop("details", None)
            self.queue(topic).put_nowait((list(args), kwargs))
        return await asyncio.wait_for(self.subscribe(on_event, topic), WAIT)


session_left_reason = [None]      # the last connect()'s close-reason future (for ABORT checks)


async def connect(url, realm, serializer_name):
    """Opens a WebSocket and joins realm; returns the session (joined)."""
    loop = asyncio.get_running_loop()
    joined, left = loop.create_future(), loop.create_future()
    holder = []

    def make_session():
        session = Client(ComponentConfig(realm), joined, left)
        holder.append(session)
        return session

    factory = WampWebSocketClientFactory(make_session, url=url,
                                         serializers=[SERIALIZERS[serializer_name]()])
    parsed = urlparse(url)
    await asyncio.wait_for(loop.create_connection(factory, parsed.hostname, parsed.port), WAIT)
    session_left_reason[0] = left
    details = await asyncio.wait_for(joined, WAIT)
    session = holder[0]
    session.left = left
    session.welcome = details
    return session


async def next_event(session, topic):
    """The next (args, kwargs) on topic, or raises TimeoutError."""
    return await asyncio.wait_for(session.queue(topic).get(), WAIT)


async def outcome(awaitable):
    """('ok', value) or ('error', ApplicationError) or ('exception', repr)."""
    try:
        return ("ok", await asyncio.wait_for(awaitable, WAIT))
    except ApplicationError as error:
        return ("error", error)
    except asyncio.TimeoutError:
        return ("exception", "timed out after %ss" % WAIT)
    except Exception as error:  # noqa: BLE001 - reported as a FAIL line
        return ("exception", repr(error))


def error_parts(result):
    """(uri, args, kwargs) of an ('error', ApplicationError) outcome, else None."""
    if result[0] != "error":
        return None
    error = result[1]
    return (error.error, list(error.args), dict(error.kwargs))


async def unknown_realm_check(r, url, ser):
    """HELLO to a realm the router does not serve: ABORT wamp.error.no_such_realm."""
    try:
        session = await connect(url, "com.ratchet_sel.no.such.realm", ser)
        r.check("join an unknown realm: ABORT wamp.error.no_such_realm", False,
                "joined as session %r" % session.session_id)
        await leave(session)
    except ConnectionError:
        reason = await asyncio.wait_for(session_left_reason[0], WAIT)
        r.check("join an unknown realm: ABORT wamp.error.no_such_realm", reason == "wamp.error.no_such_realm",
                "router said %r" % (reason,))


async def pubsub_checks(r, a, b, c, topic):
    """subscribe; publish with/without acknowledge; exclude_me; exclude; eligible."""
    subs = {}
    for name, session in (("A", a), ("B", b), ("C", c)):
        try:
            subs[name] = await session.listen(topic)
        except Exception as error:  # noqa: BLE001
            r.check("subscribe (%s)" % name, False, repr(error))
            return None
    r.check("subscribe", all(s.id for s in subs.values()),
            "subscription ids %s" % sorted(s.id for s in subs.values()))

    marker = 0

    async def publish_marker():
        nonlocal marker
        marker += 1
        a.publish(topic, "marker", marker, options=PublishOptions(exclude_me=False))
        return ["marker", marker]

    async def got_before_marker(session, expected_marker):
        """Events session got up to the marker (the marker excluded)."""
        seen = []
        while True:
            args, kwargs = await next_event(session, topic)
            if args == expected_marker:
                return seen
            seen.append((args, kwargs))

    # publish without acknowledge: publish() returns None, B gets args and kwargs.
    try:
        value = a.publish(topic, 1, "two", color="red")
        mark = await publish_marker()
        b_seen = await got_before_marker(b, mark)
        a_seen = await got_before_marker(a, mark)
        r.check("publish without acknowledge: no PUBLISHED, EVENT with args and kwargs",
                value is None and b_seen == [([1, "two"], {"color": "red"})],
                "publish returned %r, B got %r" % (value, b_seen))
        r.check("exclude_me default (true): the publisher gets no EVENT", a_seen == [],
                "A got %r" % (a_seen,))
        await got_before_marker(c, mark)
    except Exception as error:  # noqa: BLE001
        r.check("publish without acknowledge", False, repr(error))
        return subs

    # publish with acknowledge: a Publication with an id.
    try:
        pub = await asyncio.wait_for(
            a.publish(topic, "acked", options=PublishOptions(acknowledge=True)), WAIT)
        b_args = await next_event(b, topic)
        r.check("publish with acknowledge: PUBLISHED with an id, EVENT delivered",
                isinstance(pub.id, int) and pub.id > 0 and b_args == (["acked"], {}),
                "publication %r, B got %r" % (getattr(pub, "id", pub), b_args))
        await next_event(c, topic)
    except Exception as error:  # noqa: BLE001
        r.check("publish with acknowledge", False, repr(error))
        return subs

    # exclude_me overridden: the publisher gets its own EVENT.
    try:
        a.publish(topic, "self", options=PublishOptions(exclude_me=False))
        a_args = await next_event(a, topic)
        r.check("exclude_me=false: the publisher gets its own EVENT", a_args == (["self"], {}),
                "A got %r" % (a_args,))
        await next_event(b, topic)
        await next_event(c, topic)
    except Exception as error:  # noqa: BLE001
        r.check("exclude_me=false", False, repr(error))
        return subs

    # exclude by session id: B excluded, A (exclude_me false) and C get it.
    try:
        a.publish(topic, "not-for-B", options=PublishOptions(exclude=[b.session_id], exclude_me=False))
        mark = await publish_marker()
        seen = {n: await got_before_marker(s, mark) for n, s in (("A", a), ("B", b), ("C", c))}
        want = [(["not-for-B"], {})]
        r.check("exclude=[B]: A and C get the EVENT, B does not",
                seen == {"A": want, "B": [], "C": want}, "got %r" % (seen,))
    except Exception as error:  # noqa: BLE001
        r.check("exclude by session id", False, repr(error))
        return subs

    # eligible by session id: only C.
    try:
        a.publish(topic, "only-C", options=PublishOptions(eligible=[c.session_id], exclude_me=False))
        mark = await publish_marker()
        seen = {n: await got_before_marker(s, mark) for n, s in (("A", a), ("B", b), ("C", c))}
        want = [(["only-C"], {})]
        r.check("eligible=[C]: only C gets the EVENT", seen == {"A": [], "B": [], "C": want},
                "got %r" % (seen,))
    except Exception as error:  # noqa: BLE001
        r.check("eligible by session id", False, repr(error))
    return subs


async def rpc_checks(r, url, realm, ser, b, c, prefix):
    """register; call with args/kwargs; application error; unknown; callee lost; unregister."""
    def add(*args, **kwargs):
        return {"sum": sum(args), "kwargs": kwargs}

    def fail(*args, **kwargs):
        raise ApplicationError(prefix + ".error.custom", "bad", 42, why="because", n=[1, 2])

    reg_add = None
    try:
        reg_add = await asyncio.wait_for(b.register(add, prefix + ".add"), WAIT)
        reg_fail = await asyncio.wait_for(b.register(fail, prefix + ".fail"), WAIT)
        r.check("register", reg_add.id > 0 and reg_fail.id > 0 and reg_add.id != reg_fail.id,
                "registration ids %r, %r" % (reg_add.id, reg_fail.id))
    except Exception as error:  # noqa: BLE001
        r.check("register", False, repr(error))
        return

    result = await outcome(c.register(add, prefix + ".add"))
    r.check("register the same URI again: wamp.error.procedure_already_exists",
            error_parts(result) is not None and error_parts(result)[0] == "wamp.error.procedure_already_exists",
            "got %r" % (error_parts(result) or result,))

    result = await outcome(c.call(prefix + ".add", 2, 3, 4, label="x", nested={"k": [True, None]}))
    r.check("call with args and kwargs", result == ("ok", {"sum": 9, "kwargs": {"label": "x", "nested": {"k": [True, None]}}}),
            "got %r" % (result,))

    result = await outcome(c.call(prefix + ".fail", 1))
    want = (prefix + ".error.custom", ["bad", 42], {"why": "because", "n": [1, 2]})
    r.check("application error: URI, args and kwargs reach the caller", error_parts(result) == want,
            "got %r" % (error_parts(result) or result,))

    result = await outcome(c.call(prefix + ".nobody-registered-this"))
    parts = error_parts(result)
    r.check("unknown procedure: wamp.error.no_such_procedure",
            parts is not None and parts[0] == "wamp.error.no_such_procedure", "got %r" % (parts or result,))

    # A call whose timeout option runs out while the callee never answers.
    try:
        await asyncio.wait_for(b.register(lambda *a, **k: asyncio.get_running_loop().create_future(),
                                          prefix + ".hang"), WAIT)
        result = await outcome(c.call(prefix + ".hang", options=CallOptions(timeout=1)))
        parts = error_parts(result)
        r.check("call with the timeout option, callee silent: ERROR %s" % TIMEOUT_ERROR,
                parts is not None and parts[0] == TIMEOUT_ERROR, "got %r" % (parts or result,))
    except Exception as error:  # noqa: BLE001
        r.check("call with the timeout option", False, repr(error))

    # A callee that disconnects while the call is outstanding.
    try:
        d = await connect(url, realm, ser)
        invoked = asyncio.get_running_loop().create_future()

        def vanish(*args, **kwargs):
            invoked.set_result(True)
            d.disconnect()                      # the WebSocket closes with the call unanswered
            return asyncio.get_running_loop().create_future()   # never resolved

        await asyncio.wait_for(d.register(vanish, prefix + ".vanish"), WAIT)
        call = asyncio.ensure_future(c.call(prefix + ".vanish", "x"))
        await asyncio.wait_for(invoked, WAIT)
        result = await outcome(call)
        parts = error_parts(result)
        r.check("callee disconnects mid-call: the caller gets ERROR wamp.error.canceled (no hang)",
                parts is not None and parts[0] == "wamp.error.canceled",
                "got %r" % (parts or result,))
    except Exception as error:  # noqa: BLE001
        r.check("callee disconnects mid-call", False, repr(error))

    try:
        await asyncio.wait_for(reg_add.unregister(), WAIT)
        result = await outcome(c.call(prefix + ".add", 1))
        parts = error_parts(result)
        r.check("unregister: a later call gets wamp.error.no_such_procedure",
                parts is not None and parts[0] == "wamp.error.no_such_procedure", "got %r" % (parts or result,))
    except Exception as error:  # noqa: BLE001
        r.check("unregister", False, repr(error))


async def peer_line(proc, starts, seconds):
    """The JS peer's next stdout line starting with one of starts (autobahn-js logs
    to stdout too: other lines are skipped); '' at EOF."""
    async def read():
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line or line.startswith(starts):
                return line.strip()
    return await asyncio.wait_for(read(), seconds)


async def cross_checks(r, url, realm, ser, node_script, node_ser, prefix):
    """A Python caller reaches a JS callee; publications both ways (JS peer in node)."""
    py = await connect(url, realm, ser)
    await py.listen(prefix + ".js2py")
    env = dict(os.environ)
    proc = await asyncio.create_subprocess_exec(
        "node", node_script, "--peer", url, realm, node_ser, prefix,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, env=env)
    label = "python %s <-> js %s" % (ser, node_ser)
    try:
        line = await peer_line(proc, ("READY", "FAIL"), WAIT * 2)
        if not r.check("%s: JS peer joined and registered" % label, line.startswith("READY"), line):
            return
        result = await outcome(py.call(prefix + ".js.add", 20, 22, scale=2))
        r.check("%s: Python caller -> JS callee (args and kwargs)" % label, result == ("ok", 84),
                "got %r" % (result,))
        result = await outcome(py.call(prefix + ".js.fail"))
        r.check("%s: JS callee's application error reaches the Python caller" % label,
                error_parts(result) == (prefix + ".js.error", ["js-arg"], {"js": True}),
                "got %r" % (error_parts(result) or result,))
        await asyncio.wait_for(py.publish(prefix + ".py2js", "from-python", 7, k="v",
                                          options=PublishOptions(acknowledge=True)), WAIT)
        got = await peer_line(proc, ("EVENT", "FAIL"), WAIT)
        want = "EVENT " + json.dumps([["from-python", 7], {"k": "v"}], separators=(",", ":"))
        r.check("%s: Python publisher -> JS subscriber" % label, got == want, "JS printed %r" % got)
        event = await outcome(next_event(py, prefix + ".js2py"))
        r.check("%s: JS publisher -> Python subscriber" % label,
                event == ("ok", (["from-js", 8], {"js": "yes"})), "got %r" % (event,))
        status = await asyncio.wait_for(proc.wait(), WAIT)
        r.check("%s: JS peer left cleanly" % label, status == 0, "exit status %r" % status)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await leave(py)


async def leave(session):
    """GOODBYE; returns the router's close reason (or a description)."""
    if not session.is_attached():
        return "(not attached)"
    session.leave()
    return await asyncio.wait_for(session.left, WAIT)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("realm")
    parser.add_argument("serializer", choices=sorted(SERIALIZERS))
    parser.add_argument("--cross-node", help="node_client.mjs: also run the cross-library checks")
    parser.add_argument("--cross-serializer", choices=sorted(SERIALIZERS), default="json")
    parser.add_argument("--cross-only", action="store_true", help="skip the single-library scenarios")
    args = parser.parse_args()
    r = Report("autobahn-python %s" % args.serializer)
    prefix = "com.ratchet_sel.proof.py%d" % random.randrange(1 << 30)

    try:
        if not args.cross_only:
            a = await connect(args.url, args.realm, args.serializer)
            b = await connect(args.url, args.realm, args.serializer)
            c = await connect(args.url, args.realm, args.serializer)
            ids = [s.session_id for s in (a, b, c)]
            r.check("join realm %s: WELCOME with distinct session ids in [1, 2^53]" % args.realm,
                    len(set(ids)) == 3 and all(1 <= i <= 2 ** 53 for i in ids)
                    and a.welcome.realm == args.realm, "session ids %r" % ids)
            await unknown_realm_check(r, args.url, args.serializer)
            subs = await pubsub_checks(r, a, b, c, prefix + ".topic")
            await rpc_checks(r, args.url, args.realm, args.serializer, b, c, prefix)
            if subs and "B" in subs:
                try:
                    await asyncio.wait_for(subs["B"].unsubscribe(), WAIT)
                    r.check("unsubscribe", not subs["B"].active)
                except Exception as error:  # noqa: BLE001
                    r.check("unsubscribe", False, repr(error))
            for name, session in (("A", a), ("B", b), ("C", c)):
                try:
                    reason = await leave(session)
                except Exception as error:  # noqa: BLE001
                    reason = repr(error)
                r.check("leave (%s): GOODBYE answered with %s" % (name, GOODBYE_REPLY),
                        reason == GOODBYE_REPLY, "router said %r" % (reason,))
        if args.cross_node:
            await cross_checks(r, args.url, args.realm, args.serializer, args.cross_node,
                               args.cross_serializer, prefix + ".x")
    except Exception as error:  # noqa: BLE001
        r.check("scenario run", False, "aborted: %r" % (error,))
    print("[%s] %d passed, %d failed" % (r.label, r.passes, r.failures), flush=True)
    return 1 if r.failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
