#!/usr/bin/env python3
"""A lean WAMP v2 load client (stdlib only, wamp.2.json), for scripts/bench_wamp2.py.

    python3 wamp2_load.py rpc    HOST PORT REALM --seconds S [--window W]
    python3 wamp2_load.py events HOST PORT REALM --seconds S [--window W] [--subscribers N]

rpc:    one callee session registers a procedure that answers YIELD [args[0]];
        one caller session keeps W CALLs in flight; prints the RESULTs per second.
events: N subscriber sessions and one publisher session; the publisher keeps at
        most W publications (exclude_me default, no acknowledge) not yet received
        by the first subscriber; prints the EVENTs received per second (all
        subscribers together).

It is written so that the router, not the client, is the bottleneck: one
process, one selectors loop, prebuilt frames, and in the measuring loop no JSON
decoding: it reads only the message code and request id of what arrives (the
router's JSON is compact: `[68,ID,...`).  Output: one JSON line {"rate": ..., "count": ...,
"seconds": ..., "client_cpu": ...}.  Every wait is bounded (exit 1 on a stall).
"""

import argparse
import base64
import json
import os
import resource
import selectors
import socket
import struct
import sys
import time

MASK = b"\x00\x00\x00\x00"   # a zero mask: legal, and the client spends nothing on masking
STALL_SECONDS = 10.0


def frame(text):
    """One masked text frame of text (str)."""
    data = text.encode()
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + MASK + data


class Peer:
    """One WebSocket connection speaking wamp.2.json; a blocking handshake, then non-blocking."""

    def __init__(self, host, port, realm):
        self.sock = socket.create_connection((host, port), timeout=STALL_SECONDS)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n" % (host, port, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise SystemExit("handshake: connection closed")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0] or b"wamp.2.json" not in head:
            raise SystemExit("handshake refused: %r" % head[:200])
        self.out = bytearray()
        self.send([1, realm, {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}])
        self.flush_blocking()
        welcome = self.read_blocking()
        if welcome[0] != 2:
            raise SystemExit("no WELCOME: %r" % (welcome,))
        self.session_id = welcome[1]
        self.sock.setblocking(False)

    def send(self, msg):
        self.out += frame(json.dumps(msg, separators=(",", ":")))

    def send_raw(self, data):
        self.out += data

    def flush_blocking(self):
        self.sock.sendall(self.out)
        del self.out[:]

    def read_blocking(self):
        while True:
            msgs = self.parse()
            if msgs:
                return msgs[0]
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("connection closed")
            self.buf += chunk

    def parse(self, raw=False):
        """Complete WAMP messages in buf (unmasked server frames): decoded, or with raw
        the payload bytes undecoded (the hot loop reads only the code and request id)."""
        msgs = []
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 2:
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            hl = 2
            if n == 126:
                if len(buf) - pos < 4:
                    break
                n = struct.unpack_from("!H", buf, pos + 2)[0]
                hl = 4
            elif n == 127:
                if len(buf) - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                hl = 10
            if len(buf) - pos < hl + n:
                break
            opcode = buf[pos] & 0x0F
            if opcode in (1, 2):
                payload = bytes(buf[pos + hl:pos + hl + n])
                msgs.append(payload if raw else json.loads(payload))
            elif opcode == 8:
                raise SystemExit("server closed: %r" % bytes(buf[pos + hl:pos + hl + n]))
            pos += hl + n
        self.buf = buf[pos:]
        return msgs

    def pump_in(self):
        try:
            chunk = self.sock.recv(262144)
        except BlockingIOError:
            return []
        if not chunk:
            raise SystemExit("connection closed by the router")
        self.buf += chunk
        return self.parse(raw=True)

    def pump_out(self):
        if self.out:
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                return
            del self.out[:n]


def expect(peer, code):
    """Blocking read of the next message, which must have type code."""
    peer.sock.setblocking(True)
    peer.flush_blocking()
    msg = peer.read_blocking()
    peer.sock.setblocking(False)
    if msg[0] != code:
        raise SystemExit("expected message type %d, got %r" % (code, msg))
    return msg


def loop(peers, on_messages, seconds):
    """Runs until seconds pass; on_messages(peer, msgs) queues replies.  Returns elapsed."""
    sel = selectors.DefaultSelector()
    for p in peers:
        sel.register(p.sock, selectors.EVENT_READ, p)
    start = time.perf_counter()
    end = start + seconds
    last_progress = start
    while True:
        now = time.perf_counter()
        if now >= end:
            return now - start
        for p in peers:
            p.pump_out()
        events = sel.select(min(1.0, end - now))
        if not events and any(not p.out for p in peers) and now - last_progress > STALL_SECONDS:
            raise SystemExit("stalled: nothing received for %ss" % STALL_SECONDS)
        for key, _ in events:
            msgs = key.data.pump_in()
            if msgs:
                last_progress = now
                on_messages(key.data, msgs)


def run_rpc(args):
    callee = Peer(args.host, args.port, args.realm)
    caller = Peer(args.host, args.port, args.realm)
    procedure = "bench.echo.%d" % os.getpid()        # several clients may run at once
    callee.send([64, 1, {}, procedure])
    registration = expect(callee, 65)
    del registration
    count = [0]
    call_frames = [frame('[48,%d,{},"%s",[%d]]' % (i, procedure, i)) for i in range(1, args.window + 1)]
    for f in call_frames:
        caller.send_raw(f)

    def on_messages(peer, msgs):
        if peer is callee:
            for m in msgs:                         # INVOCATION -> YIELD [CALL's args[0]]
                if not m.startswith(b"[68,"):
                    raise SystemExit("callee got %r" % (m,))
                request = m[4:m.index(b",", 4)]
                arg = m[m.rindex(b"[") + 1:m.index(b"]", m.rindex(b"["))]
                callee.send_raw(frame("[70,%s,{},[%s]]" % (request.decode(), arg.decode())))
        else:
            for m in msgs:
                if not m.startswith(b"[50,"):      # RESULT
                    raise SystemExit("caller got %r" % (m,))
                count[0] += 1
                caller.send_raw(call_frames[(int(m[4:m.index(b",", 4)]) - 1) % args.window])
    elapsed = loop([callee, caller], on_messages, args.seconds)
    return count[0], elapsed


def run_events(args):
    subs = [Peer(args.host, args.port, args.realm) for _ in range(args.subscribers)]
    pub = Peer(args.host, args.port, args.realm)
    topic = "bench.topic.%d" % os.getpid()            # several clients may run at once
    for s in subs:
        s.send([32, 1, {}, topic])
        expect(s, 33)
    count = [0]
    first_seen = [0]
    published = [0]
    publish_frame = frame('[16,1,{},"%s",["payload-0123456789"]]' % topic)

    def top_up():
        while published[0] - first_seen[0] < args.window:
            pub.send_raw(publish_frame)
            published[0] += 1
    top_up()

    def on_messages(peer, msgs):
        n = sum(1 for m in msgs if m.startswith(b"[36,"))     # EVENT
        count[0] += n
        if peer is subs[0]:
            first_seen[0] += n
            top_up()
    elapsed = loop(subs + [pub], on_messages, args.seconds)
    return count[0], elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("rpc", "events"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("realm")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--subscribers", type=int, default=2)
    args = ap.parse_args()
    count, elapsed = (run_rpc if args.mode == "rpc" else run_events)(args)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"mode": args.mode, "rate": count / elapsed, "count": count, "seconds": elapsed,
                      "client_cpu": usage.ru_utime + usage.ru_stime}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
