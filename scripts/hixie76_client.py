#!/usr/bin/env python2.7
# -*- coding: utf-8 -*-
"""A real draft-76 (Hixie-76) WebSocket client for ratchet_sel, built on Autobahn 0.10.9.

Runs under the private python2.7 that scripts/setup_autobahn.sh installs
(``PREFIX/py2``, default PREFIX /tmp/ratchet_sel-conformance/py27), which brings
Autobahn 0.10.9 and Twisted 20.3 along with wstest.  Only loopback targets.

Modes
-----
``echo URL``   (against ``python3 -m ratchet_sel echo``) one connection per protocol
    version (``--versions``, default ``0,10,13``: draft-76, HyBi-10 which sends
    ``Sec-WebSocket-Version: 8``, RFC 6455), each: handshake (draft-76: 16-byte MD5
    answer checked by Autobahn, plus ``Sec-WebSocket-Origin``/``-Location`` and the
    agreed version checked here), text messages sent one at a time and echoed exactly
    (ASCII, UTF-8 with 2/3/4-byte characters, the empty message, U+0000, 70,000
    characters, and a burst of three pipelined messages; HyBi modes also a binary
    message), then a client-initiated closing handshake (draft-76: ``0xFF 0x00`` both
    ways) that must be clean (``wasClean`` in onClose, the server dropping TCP).
``chat URL``   (against ``python3 -m ratchet_sel chat``) a draft-76, a HyBi-10 and an
    RFC 6455 client at the same time; each sends one text message, the RFC 6455 one
    also a binary message; each must receive exactly the other two clients' text
    messages, and the HyBi-10 client the binary one (draft-76 has no binary frames,
    so the draft-76 client must not get it); then all close cleanly.
``hold URL``   opens one connection per version, prints ``READY`` on stdout, and waits
    for the server to close them (used while the server is being stopped with
    SIGTERM): each close must be clean, with code 1001 for the HyBi versions and
    ``0xFF 0x00`` from the server for draft-76.

Output: one line per connection (``echo``, ``hold``) or one for the room (``chat``) on
stdout, e.g. ``hixie76 autobahn-0.10.9: handshake ok, text ok, utf-8 ok, ...``; on a
failure, the reason and the bytes exchanged (Autobahn's octet log) on stderr.
``--trace`` prints every byte exchanged.  The whole run is bounded by ``--timeout``.

Exit status: 0 when every check passed, 1 when one failed (or the run timed out),
2 for a usage error or a missing Autobahn.

Client-side fix: Autobahn 0.10.9's draft-76 receive parser treats a message end
(``0xFF``) that is the first byte still buffered inside a message as payload
(``end_index > 0`` where ``>= 0`` is meant).  That breaks the empty message
(``0x00 0xFF``) and any message whose ``0xFF`` arrives at the start of a TCP read.
This client overrides ``processDataHixie76`` with that one comparison corrected
(``--stock-parser`` turns the fix off).  Nothing else of Autobahn is changed;
``--strip-content-length`` is a diagnostic switch only (see HIXIE_NOTES.md).
"""

from __future__ import print_function

import os
import sys

# Running ``py2 scripts/hixie76_client.py`` puts scripts/ first on sys.path, where
# this project's scripts/autobahn.py (Python 3) would shadow the autobahn package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import binascii
import random
import warnings

warnings.filterwarnings("ignore")  # cryptography's "Python 2 is no longer supported"

try:
    import autobahn
    from autobahn.twisted.websocket import (WebSocketClientFactory, WebSocketClientProtocol,
                                            connectWS)
    from autobahn.websocket.protocol import WebSocketProtocol
    from autobahn.websocket.utf8validator import Utf8Validator
    from twisted.internet import defer, reactor
except ImportError as exc:  # pragma: no cover - depends on the install
    print("hixie76_client: cannot import Autobahn/Twisted (%s); run it with PREFIX/py2 "
          "from scripts/setup_autobahn.sh" % exc, file=sys.stderr)
    sys.exit(2)

AGENT = "autobahn-%s" % autobahn.__version__
NAMES = {0: "hixie76", 10: "hybi10", 13: "rfc6455"}
WIRE_VERSION = {0: None, 10: "8", 13: "13"}   # Sec-WebSocket-Version sent per mode


def log(msg):
    sys.stderr.write("hixie76_client: %s\n" % msg)
    sys.stderr.flush()


def show_bytes(data, limit=600):
    """repr() of some bytes, the middle elided when long."""
    if len(data) <= limit:
        return repr(data)
    return "%r ... (%d bytes) ... %r" % (data[:limit - 100], len(data), data[-80:])


def utf8_ok(data):
    result = Utf8Validator().validate(data)
    return result[0] and result[1]


# ---------------------------------------------------------------------------
# the protocol: Autobahn's client plus octet recording and check bookkeeping


class CheckingClient(WebSocketClientProtocol):
    """WebSocketClientProtocol that records the octets and the checks of one connection."""

    def _connectionMade(self):
        self.trace = []            # [("TX"|"RX", bytes)]
        self.results = []          # [(name, ok, detail)]
        self.handshake_response = None
        self.started = reactor.seconds()
        WebSocketClientProtocol._connectionMade(self)

    # -- octet log (Autobahn calls these when logOctets is on) --------------------
    def logRxOctets(self, data):
        self.trace.append(("RX", bytes(data)))
        if self.factory.options.trace:
            log("%s RX %d bytes: %s" % (self.factory.name, len(data), show_bytes(bytes(data))))

    def logTxOctets(self, data, sync):
        self.trace.append(("TX", bytes(data)))
        if self.factory.options.trace:
            log("%s TX %d bytes: %s" % (self.factory.name, len(data), show_bytes(bytes(data))))

    def rx_bytes(self):
        return b"".join(d for kind, d in self.trace if kind == "RX")

    def tx_bytes(self):
        return b"".join(d for kind, d in self.trace if kind == "TX")

    def dump_trace(self, limit=600):
        for kind, data in self.trace:
            log("  %s %s %d bytes: %s" % (self.factory.name, kind, len(data), show_bytes(data, limit)))

    # -- diagnostic only: the request without its Content-Length header -------------
    def sendData(self, data, sync=False, chopsize=None):
        if (self.factory.options.strip_content_length and self.state == WebSocketProtocol.STATE_CONNECTING
                and data.startswith(b"GET ")):
            lines = data.split(b"\r\n")
            data = b"\r\n".join(l for l in lines if not l.lower().startswith(b"content-length:"))
        return WebSocketClientProtocol.sendData(self, data, sync, chopsize)

    # -- Autobahn 0.10.9's draft-76 parser with its `end_index > 0` corrected ------------
    def processDataHixie76(self):
        if self.factory.options.stock_parser:
            return WebSocketClientProtocol.processDataHixie76(self)
        if not self.inside_message:
            if len(self.data) >= 2:
                if self.data[0] == b'\x00':
                    self.inside_message = True
                    if self.utf8validateIncoming:
                        self.utf8validator.reset()
                        self.utf8validateIncomingCurrentMessage = True
                        self.utf8validateLast = (True, True, 0, 0)
                    else:
                        self.utf8validateIncomingCurrentMessage = False
                    self.data = self.data[1:]
                    self._onMessageBegin(False)
                elif self.data[0] == b'\xff' and self.data[1] == b'\x00':
                    self.onCloseFrame(None, None)
                    self.data = self.data[2:]
                    return False
                else:
                    if self.protocolViolation("malformed data received"):
                        return False
            else:
                return False
        end_index = self.data.find(b'\xff')
        if end_index >= 0:                      # Autobahn 0.10.9: `> 0`
            payload = self.data[:end_index]
            self.data = self.data[end_index + 1:]
        else:
            payload = self.data
            self.data = b''
        if self.utf8validateIncomingCurrentMessage:
            self.utf8validateLast = self.utf8validator.validate(payload)
            if not self.utf8validateLast[0]:
                if self.invalidPayload("encountered invalid UTF-8 while processing text message at "
                                       "payload octet index %d" % self.utf8validateLast[3]):
                    return False
        self._onMessageFrameData(payload)
        if end_index >= 0:                      # Autobahn 0.10.9: `> 0`
            self.inside_message = False
            self._onMessageEnd()
        return len(self.data) > 0

    # -- bookkeeping ---------------------------------------------------------------
    def check(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))
        if not ok:
            log("%s: %s FAILED: %s" % (self.factory.name, name, detail))
        return ok

    def onConnect(self, response):
        self.handshake_response = response

    def check_handshake(self):
        """Is this the protocol version that was asked for, with the draft's headers?"""
        want = self.factory.version
        resp = self.handshake_response
        problems = []
        if resp.version != want or self.websocket_version != want:
            problems.append("agreed version %r, expected %r" % (resp.version, want))
        headers = resp.headers
        status = self.http_status_line
        if want == 0:
            # Autobahn checked 101, Upgrade, Connection and the 16-byte MD5 answer.
            origin = headers.get("sec-websocket-origin")
            if origin != self.factory.options.origin:
                problems.append("Sec-WebSocket-Origin %r, expected %r" % (origin, self.factory.options.origin))
            location = headers.get("sec-websocket-location")
            if location != self.factory.url:
                problems.append("Sec-WebSocket-Location %r, expected %r" % (location, self.factory.url))
            if "sec-websocket-accept" in headers:
                problems.append("a HyBi Sec-WebSocket-Accept in a draft-76 answer")
            answer = self.rx_bytes()
            end = answer.find(b"\r\n\r\n")
            detail = "%s, 16-byte answer %s" % (status, binascii.hexlify(answer[end + 4:end + 20]))
        else:
            sent = self.tx_bytes()
            expect = b"Sec-WebSocket-Version: %s\r\n" % WIRE_VERSION[want]
            if expect not in sent:
                problems.append("request lacks %r" % expect)
            for name in ("sec-websocket-origin", "sec-websocket-location"):
                if name in headers:
                    problems.append("draft-76 header %s in a HyBi answer" % name)
            detail = "%s, Sec-WebSocket-Accept %s" % (status, headers.get("sec-websocket-accept"))
        return self.check("handshake", not problems, "; ".join(problems) or detail)


class CheckingFactory(WebSocketClientFactory):
    protocol = CheckingClient

    def __init__(self, url, version, options, name=None):
        WebSocketClientFactory.__init__(self, url, origin=options.origin)
        self.version = version
        self.options = options
        self.name = name or NAMES.get(version, "version%d" % version)
        if version == 0:
            self.setProtocolOptions(version=0, allowHixie76=True)
        else:
            self.setProtocolOptions(version=version)
        self.setProtocolOptions(openHandshakeTimeout=options.handshake_timeout,
                                closeHandshakeTimeout=5, serverConnectionDropTimeout=5,
                                maxMessagePayloadSize=0, failByDrop=False)
        self.logOctets = True      # copied onto each protocol: the octet log above
        self.logFrames = False
        self.proto = None
        self.failed_to_connect = None

    def buildProtocol(self, addr):
        self.proto = WebSocketClientFactory.buildProtocol(self, addr)
        return self.proto

    def clientConnectionFailed(self, connector, reason):
        self.failed_to_connect = reason.getErrorMessage()
        on_fail = getattr(self, "on_connect_failed", None)
        if on_fail is not None:
            on_fail(self.failed_to_connect)


def close_detail(proto, was_clean, code, reason):
    return "wasClean=%s code=%r reason=%r" % (was_clean, code, reason)


def handshake_failure(proto, was_clean, code, reason):
    """Why the opening handshake failed, with the server's answer if there was one."""
    answer = proto.rx_bytes()
    elapsed = reactor.seconds() - proto.started
    if not answer:
        return "no answer from the server after %.1f s: %s" % (elapsed, proto.wasNotCleanReason)
    head, _, body = answer.partition(b"\r\n\r\n")
    return "%s; the server answered after %.1f s: %r, body %r" % (
        proto.wasNotCleanReason, elapsed, head.split(b"\r\n")[0], body[:200])


def check_close(proto, was_clean, code, reason, expect_code, server_initiated=False):
    """The closing handshake: clean, the right code; draft-76: 0xFF 0x00 both ways."""
    problems = []
    if not was_clean:
        problems.append("not clean")
    if expect_code is not None and code != expect_code:
        problems.append("code %r, expected %r" % (code, expect_code))
    if proto.factory.version == 0:
        rx, tx = proto.rx_bytes(), proto.tx_bytes()
        if not rx.endswith(b"\xff\x00"):
            problems.append("the server's last bytes are %r, not 0xFF 0x00" % rx[-8:])
        if not tx.endswith(b"\xff\x00"):
            problems.append("the client's last bytes are %r, not 0xFF 0x00" % tx[-8:])
    if server_initiated and proto.closedByMe:
        problems.append("the client started the closing handshake")
    name = "server close" if server_initiated else "clean close"
    return proto.check(name, not problems, "; ".join(problems) + " -- " + close_detail(proto, was_clean, code, reason)
                       if problems else close_detail(proto, was_clean, code, reason))


# ---------------------------------------------------------------------------
# echo mode


def echo_messages(version):
    rng = random.Random(76)
    alphabet = u"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_!?"
    big = u"".join(rng.choice(alphabet) for _ in range(70000))
    steps = [
        ("text", [u"Hello, draft-76 from Autobahn!"]),
        ("utf-8", [u"h\u00e9llo \u2713 \u00fc\u00df \u4e2d\u6587 \U0001F600"]),
        ("empty", [u""]),
        ("U+0000", [u"nul\u0000inside"]),
        ("70kB", [big]),
        ("burst", [u"burst one", u"burst \u2713 two", u"burst three"]),
    ]
    if version != 0:
        steps.append(("binary", [b"\x00\x01\x02\xfe\xff binary \xc3\x28"]))
    return steps


class EchoClient(CheckingClient):

    def onOpen(self):
        if not self.check_handshake():
            self.sendClose()
            return
        self.steps = echo_messages(self.factory.version)
        self.expected = []
        self.next_step()

    def next_step(self):
        if not self.steps:
            self.sendClose(code=None if self.factory.version == 0 else 1000)
            return
        self.step_name, messages = self.steps.pop(0)
        self.step_ok = True
        self.expected = list(messages)
        self.step_count = len(messages)
        for msg in messages:            # a burst: all written before any echo is read
            if isinstance(msg, bytes):
                self.sendMessage(msg, isBinary=True)
            else:
                self.sendMessage(msg.encode("utf-8"))

    def onMessage(self, payload, isBinary):
        if not self.expected:
            self.check("unexpected message", False, "%s (binary=%s)" % (show_bytes(payload, 200), isBinary))
            self.sendClose()
            return
        want = self.expected.pop(0)
        want_binary = isinstance(want, bytes)
        want_bytes = want if want_binary else want.encode("utf-8")
        if payload != want_bytes or isBinary != want_binary:
            self.step_ok = False
            self.check(self.step_name, False, "sent %s (binary=%s), got back %s (binary=%s)" % (
                show_bytes(want_bytes, 200), want_binary, show_bytes(payload, 200), isBinary))
            self.steps = []
            self.expected = []
            self.sendClose(code=None if self.factory.version == 0 else 1000)
            return
        if not self.expected:
            self.check(self.step_name, True, "%d message(s)" % self.step_count)
            self.next_step()

    def onClose(self, wasClean, code, reason):
        if self.handshake_response is None:
            self.check("handshake", False, handshake_failure(self, wasClean, code, reason))
        else:
            if getattr(self, "expected", None):
                self.check(self.step_name, False, "the connection closed before the echo came back")
            check_close(self, wasClean, code, reason, None if self.factory.version == 0 else 1000)
        self.factory.done.callback(self)


def run_one(url, version, options, client_class, name=None):
    """Connect one client; the Deferred fires with its protocol (or a string on connect failure)."""
    factory = CheckingFactory(url, version, options, name)
    factory.protocol = client_class
    factory.done = defer.Deferred()
    factory.on_connect_failed = lambda why: factory.done.callback("connection failed: %s" % why)
    connectWS(factory, timeout=10)
    return factory


def report_line(name, proto, extra=""):
    if isinstance(proto, str):
        return "%s %s: FAILED (%s)" % (name, AGENT, proto), False
    parts, ok = [], True
    for check_name, passed, detail in proto.results:
        parts.append("%s %s" % (check_name, "ok" if passed else "FAILED (%s)" % detail))
        ok = ok and passed
    if not proto.results:
        parts.append("no check ran")
        ok = False
    return "%s %s%s: %s" % (name, AGENT, extra, ", ".join(parts)), ok


@defer.inlineCallbacks
def echo_mode(options):
    all_ok = True
    for version in options.versions:
        name = NAMES.get(version, "version%d" % version)
        factory = run_one(options.url, version, options, EchoClient)
        runner.current = factory
        proto = yield factory.done
        if runner.status is not None:   # timed out: on_timeout has reported already
            return
        extra = " (diagnostic: request without Content-Length)" if (
            version == 0 and options.strip_content_length) else ""
        extra += " (stock Autobahn draft-76 parser)" if version == 0 and options.stock_parser else ""
        line, ok = report_line(name, proto, extra)
        print(line)
        sys.stdout.flush()
        if not ok and not isinstance(proto, str):
            log("%s: bytes exchanged:" % name)
            proto.dump_trace()
        all_ok = all_ok and ok
    defer.returnValue(all_ok)


# ---------------------------------------------------------------------------
# chat mode


class ChatClient(CheckingClient):

    def onOpen(self):
        self.received = []
        self.check_handshake()
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.received.append((payload, isBinary))
        self.factory.room.message_arrived()

    def onClose(self, wasClean, code, reason):
        if self.handshake_response is None:
            self.check("handshake", False, handshake_failure(self, wasClean, code, reason))
            if not self.factory.opened.called:
                self.factory.opened.callback(self)
        else:
            check_close(self, wasClean, code, reason, None if self.factory.version == 0 else 1000)
        self.factory.done.callback(self)


class Room(object):
    """Waits until every open client got what it should (or the deadline), then checks."""

    def __init__(self, clients):
        self.clients = clients          # name -> (factory, text it sends)
        self.settled = defer.Deferred()
        self.grace = None

    def expected(self, name):
        """Exact multiset of (payload, isBinary) the client `name` should receive."""
        want = [(text.encode("utf-8"), False) for other, (f, text) in self.clients.items()
                if other != name and self.is_open(other)]
        if name == "hybi10" and self.is_open("rfc6455"):
            want.append((CHAT_BINARY, True))
        return sorted(want)

    def is_open(self, name):
        proto = self.clients[name][0].proto
        return proto is not None and proto.handshake_response is not None

    def message_arrived(self):
        done = all(len(self.clients[n][0].proto.received) >= len(self.expected(n))
                   for n in self.clients if self.is_open(n))
        if done and self.grace is None:
            # wait a little longer: an echo to the sender or a binary message to the
            # draft-76 client would arrive now
            self.grace = reactor.callLater(0.5, self.settle)

    def settle(self):
        if not self.settled.called:
            self.settled.callback(None)


CHAT_BINARY = b"\x00\x01\xfe\xff binary from rfc6455"


@defer.inlineCallbacks
def chat_mode(options):
    texts = {0: u"hixie76 says h\u00e9llo \u2713", 10: u"hybi10 says hi \u00fc\U0001F600",
             13: u"rfc6455 says \u4e2d\u6587"}
    clients = {}
    for version in options.versions:
        name = NAMES[version]
        factory = CheckingFactory(options.url, version, options)
        factory.protocol = ChatClient
        factory.done = defer.Deferred()
        factory.opened = defer.Deferred()
        factory.on_connect_failed = (lambda f: lambda why: (
            f.opened.callback("connection failed: %s" % why), f.done.callback("connection failed: %s" % why)))(factory)
        clients[name] = (factory, texts[version])
    room = Room(clients)
    for name, (factory, text) in clients.items():
        factory.room = room
        connectWS(factory, timeout=10)
    opened = yield defer.DeferredList([f.opened for f, t in clients.values()])
    # every client is a member now (the server adds it before it answers): speak
    for name, (factory, text) in sorted(clients.items()):
        if room.is_open(name):
            factory.proto.sendMessage(text.encode("utf-8"))
            if name == "rfc6455":
                factory.proto.sendMessage(CHAT_BINARY, isBinary=True)
    if not any(room.is_open(n) for n in clients):
        room.settle()
    reactor.callLater(max(options.timeout - 5, 1), room.settle)   # do not wait forever
    room.message_arrived()     # in case nothing is expected at all
    yield room.settled
    if runner.status is not None:
        return
    parts, all_ok = [], True
    for name in sorted(clients, key=lambda n: ["hixie76", "hybi10", "rfc6455"].index(n)):
        factory, text = clients[name]
        proto = factory.proto
        if not room.is_open(name):
            why = factory.failed_to_connect or (proto and proto.wasNotCleanReason) or "not open"
            parts.append("%s FAILED (no connection: %s)" % (name, why))
            all_ok = False
            continue
        got = sorted(proto.received)
        want = room.expected(name)
        own = (text.encode("utf-8"), False)
        labels = [n for n in sorted(clients) if n != name and room.is_open(n)]
        label = "%s got %s%s" % (name, "+".join(labels) or "nothing",
                                 " +binary" if name == "hybi10" and room.is_open("rfc6455") else "")
        if got == want:
            parts.append(label + " ok")
        else:
            all_ok = False
            extra = []
            if own in got:
                extra.append("its own message came back")
            if name == "hixie76" and any(b for p, b in got):
                extra.append("a binary message reached the draft-76 client")
            parts.append("%s FAILED (expected %r, got %r%s)" % (
                label, want, got, "; " + "; ".join(extra) if extra else ""))
        if proto.state == WebSocketProtocol.STATE_OPEN:
            proto.sendClose(code=None if factory.version == 0 else 1000)
    results = yield defer.DeferredList([f.done for f, t in clients.values()])
    for name in sorted(clients, key=lambda n: ["hixie76", "hybi10", "rfc6455"].index(n)):
        proto = clients[name][0].proto
        if proto is None or isinstance(proto, str):
            continue
        for check_name, passed, detail in proto.results:
            if check_name in ("handshake", "clean close") and proto.handshake_response is not None:
                parts.append("%s %s %s" % (name, check_name, "ok" if passed else "FAILED (%s)" % detail))
                all_ok = all_ok and passed
    missing = [n for n in clients if not room.is_open(n)]
    if missing:
        all_ok = False
    print("chat mixed-versions %s: %s" % (AGENT, ", ".join(parts)))
    sys.stdout.flush()
    if not all_ok:
        for name, (factory, text) in sorted(clients.items()):
            if factory.proto is not None:
                log("%s: bytes exchanged:" % name)
                factory.proto.dump_trace(300)
    defer.returnValue(all_ok)


# ---------------------------------------------------------------------------
# hold mode: connections the server closes (while it is stopped)


class HoldClient(CheckingClient):

    def onOpen(self):
        self.check_handshake()
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.check("unexpected message", False, show_bytes(payload, 200))

    def onClose(self, wasClean, code, reason):
        if self.handshake_response is None:
            self.check("handshake", False, handshake_failure(self, wasClean, code, reason))
            if not self.factory.opened.called:
                self.factory.opened.callback(self)
        else:
            check_close(self, wasClean, code, reason, None if self.factory.version == 0 else 1001,
                        server_initiated=True)
        self.factory.done.callback(self)


@defer.inlineCallbacks
def hold_mode(options):
    factories = []
    for version in options.versions:
        factory = CheckingFactory(options.url, version, options)
        factory.protocol = HoldClient
        factory.done = defer.Deferred()
        factory.opened = defer.Deferred()
        factory.on_connect_failed = (lambda f: lambda why: (
            f.opened.callback("connection failed: %s" % why), f.done.callback("connection failed: %s" % why)))(factory)
        connectWS(factory, timeout=10)
        factories.append(factory)
    yield defer.DeferredList([f.opened for f in factories])
    print("READY")
    sys.stdout.flush()
    yield defer.DeferredList([f.done for f in factories])
    all_ok = True
    for factory in factories:
        proto = factory.done.result
        line, ok = report_line(factory.name + " (server shutdown)", proto)
        print(line)
        if not ok and not isinstance(proto, str):
            log("%s: bytes exchanged:" % factory.name)
            proto.dump_trace()
        all_ok = all_ok and ok
    sys.stdout.flush()
    defer.returnValue(all_ok)


# ---------------------------------------------------------------------------


class Runner(object):
    status = None
    current = None


runner = Runner()


def finish(ok):
    if runner.status is None:
        runner.status = 0 if ok else 1
    if reactor.running:
        reactor.stop()


def on_error(failure):
    log("internal error: %s" % failure.getTraceback())
    finish(False)


def on_timeout(options):
    log("timed out after %g s" % options.timeout)
    print("%s %s: FAILED (timed out after %g s)" % (options.mode, AGENT, options.timeout))
    factory = runner.current
    if factory is not None and factory.proto is not None:
        log("bytes exchanged so far on %s:" % factory.name)
        factory.proto.dump_trace()
    finish(False)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="hixie76_client.py",
        description="Draft-76 / HyBi-10 / RFC 6455 client checks with Autobahn %s (Python 2.7)."
        % autobahn.__version__)
    parser.add_argument("mode", choices=["echo", "chat", "hold"])
    parser.add_argument("url", help="ws://127.0.0.1:PORT/ (loopback only)")
    parser.add_argument("--origin", default="http://127.0.0.1",
                        help="Origin to send (default: %(default)s)")
    parser.add_argument("--versions", default="0,10,13",
                        help="Autobahn versions to run, in order: 0 = draft-76, 10 = HyBi-10 "
                        "(Sec-WebSocket-Version: 8), 13 = RFC 6455 (default: %(default)s; chat "
                        "mode needs all three)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="limit for the whole run, seconds (default: %(default)s)")
    parser.add_argument("--handshake-timeout", type=float, default=15.0,
                        help="Autobahn's opening handshake timeout, seconds; above the server's "
                        "10 s so that its answer is seen (default: %(default)s)")
    parser.add_argument("--trace", action="store_true", help="print every byte exchanged on stderr")
    parser.add_argument("--stock-parser", action="store_true",
                        help="use Autobahn 0.10.9's draft-76 receive parser unchanged (it cannot "
                        "receive an empty message)")
    parser.add_argument("--strip-content-length", action="store_true",
                        help="DIAGNOSTIC: drop the 'Content-Length: 8' header Autobahn puts in "
                        "its draft-76 request (real draft-76 browsers did not send it)")
    options = parser.parse_args(argv)
    try:
        options.versions = [int(v) for v in options.versions.split(",") if v.strip()]
    except ValueError:
        parser.error("--versions: comma-separated integers")
    for v in options.versions:
        if v not in NAMES:
            parser.error("--versions: use 0, 10 and 13")
    if options.mode == "chat" and sorted(options.versions) != [0, 10, 13]:
        parser.error("chat mode needs --versions 0,10,13")
    from urlparse import urlparse
    parts = urlparse(options.url)
    if parts.scheme != "ws" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("only ws:// URLs on the loopback interface are allowed")
    return options


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    mode = {"echo": echo_mode, "chat": chat_mode, "hold": hold_mode}[options.mode]
    timer = reactor.callLater(options.timeout, on_timeout, options)

    def start():
        d = mode(options)
        d.addCallbacks(finish, on_error)

    reactor.callWhenRunning(start)
    reactor.run()
    if timer.active():
        timer.cancel()
    return 1 if runner.status is None else runner.status


if __name__ == "__main__":
    sys.exit(main())
