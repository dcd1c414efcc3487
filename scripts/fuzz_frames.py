#!/usr/bin/env python3
"""Fuzz the frame codecs (RFC 6455/HyBi, permessage-deflate, draft-76) and a live server's framing.

Codec cases (``--count``): a random valid stream of frames -- text and binary
messages of every length class, fragmented at random (also inside UTF-8
sequences), pings and pongs between fragments, sometimes compressed, sometimes
a close frame -- is either left alone or mutated (structure-aware: RSV bits,
opcodes, FIN, masks, length fields, close codes, invalid UTF-8, control
payloads over 125 bytes, zip bombs, dropped/duplicated/swapped frames; then
maybe byte-level flips, inserts, deletes, truncation).  Each stream is fed to
a fresh parser whole and to another in random pieces.  Findings: any
exception; a difference between the two event lists; events after a Close or
Failure; a Failure whose close code a server may not send; a message over the
limit; for an unmutated stream, any event that differs from what was encoded.
Draft-76 streams get the same treatment with :class:`HixieParser`.

Live cases (``--live``, the default): the same kinds of streams, after a valid
handshake (RFC 6455, HyBi-08, with or without permessage-deflate, or draft-76)
and followed by a close frame, go in paced random pieces to an echo server in
a subprocess (see ``_fuzz_common.py``).  Every connection must end with a
close frame carrying a valid code and then EOF; an unmutated stream must be
echoed exactly and closed with our code.  The server must log no ERROR, keep
no connection or WsConnection object alive once all clients are gone, keep its
RSS bounded, and exit 0 on SIGTERM.

Usage::

    python scripts/fuzz_frames.py --seed 1 --count 5000 --seconds 60
    python scripts/fuzz_frames.py --seed 1 --case 1234 --no-live     # replay one codec case

It prints one summary line and exits 1 if anything was found.
"""

import argparse
import base64
import os
import random
import sys
import time
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fuzz_common import (Findings, LiveCase, add_common_arguments, case_rng, chunkings,  # noqa: E402
                          live_session, mutate_bytes, paced, pick, resolve_seed, short)

from ratchet_sel.http.request import RequestParser  # noqa: E402
from ratchet_sel.websocket.deflate import PerMessageDeflate  # noqa: E402
from ratchet_sel.websocket.hixie import HixieParser, hixie76_answer  # noqa: E402
from ratchet_sel.websocket.rfc6455 import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG,  # noqa: E402
                                           OP_TEXT, Close, Failure, FrameParser, Message, Ping, Pong,
                                           apply_mask, is_valid_close_code)

NAME = "fuzz_frames"
FAILURE_CODES = {1002, 1007, 1009}          # what the parser may fail a connection with
_TAIL = b"\x00\x00\xff\xff"
_DEFLATE_REQUEST = RequestParser().feed(b"GET / HTTP/1.1\r\nHost: h\r\n"
                                        b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")

_ALPHABETS = ["abcdefghijklmnopqrstuvwxyz0123456789 ", "éàüßçñø", "Ωπλ", "中文字符", "😀🚀", "\x00\x7f"]


# -- generation ------------------------------------------------------------------------------------

def random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.getrandbits(size * 8).to_bytes(size, "little") if size else b""


def random_text(rng: random.Random, nbytes: int) -> str:
    """A string of at most ``nbytes`` UTF-8 bytes from several scripts (a random start, repeated)."""
    parts: List[str] = []
    size = 0
    while size < min(nbytes, 256):
        alphabet = rng.choice(_ALPHABETS)
        run = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 16)))
        parts.append(run)
        size += len(run.encode("utf-8"))
    text = "".join(parts)
    if size and size < nbytes:
        text *= nbytes // size + 1
    raw = text.encode("utf-8")[:nbytes]
    return raw.decode("utf-8", "ignore")


def random_size(rng: random.Random, limit: int) -> int:
    choice = rng.random()
    if choice < 0.35:
        size = rng.randint(0, 20)
    elif choice < 0.6:
        size = rng.choice((124, 125, 126, 127, 128, 200))
    elif choice < 0.8:
        size = rng.randint(0, 4000)
    elif choice < 0.93:
        size = rng.choice((65535, 65536, 65537, 30000))
    else:
        size = rng.randint(0, limit)
    return min(size, limit)


def random_message(rng: random.Random, limit: int) -> Any:
    size = random_size(rng, limit)
    if rng.random() < 0.5:
        return random_text(rng, size)
    style = rng.random()
    if style < 0.3:
        return bytes(size)
    if style < 0.6:
        block = random_bytes(rng, min(size, 512)) or b"\x00"
        return (block * (size // len(block) + 1))[:size]
    return (b"ratchet" * (size // 7 + 1))[:size]


class Frame:
    """One frame to serialise; fields may be set to anything, valid or not."""

    __slots__ = ("fin", "rsv", "opcode", "mask", "payload", "length", "encoding")

    def __init__(self, opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
                 mask: Optional[bytes] = b"", length: Optional[int] = None, encoding: str = "min") -> None:
        self.fin = fin
        self.rsv = rsv                  # bits 0x40, 0x20, 0x10
        self.opcode = opcode
        self.mask = mask                # b"" -> a random mask is drawn; None -> unmasked
        self.payload = payload
        self.length = length            # None -> len(payload)
        self.encoding = encoding        # "min", "16", "64"

    def to_bytes(self, rng: random.Random) -> bytes:
        length = len(self.payload) if self.length is None else self.length
        first = (0x80 if self.fin else 0) | self.rsv | (self.opcode & 0x0F)
        mask_bit = 0x80 if self.mask is not None else 0
        encoding = self.encoding
        if encoding == "min":
            encoding = "7" if length < 126 else "16" if length < 0x10000 else "64"
        if encoding == "7" and length < 126:
            head = bytes((first, mask_bit | length))
        elif encoding in ("7", "16") and length < 0x10000:
            head = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
        else:
            head = bytes((first, mask_bit | 127)) + (length & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "big")
        if self.mask is None:
            return head + self.payload
        mask = self.mask or bytes(rng.getrandbits(8) for _ in range(4))
        return head + mask + apply_mask(self.payload, mask)


class ClientDeflater:
    """What a client does to compress (context takeover: one compressor for every message).

    ``window_bits`` 9 honours any ``client_max_window_bits`` a server may ask for (9 to 15).
    """

    def __init__(self, window_bits: int = 15) -> None:
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -window_bits)

    def __call__(self, payload: bytes) -> bytes:
        data = self.compressor.compress(payload) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
        return data[:-4] if data.endswith(_TAIL) else data


def valid_stream(rng: random.Random, limit: int, deflate: Optional[ClientDeflater] = None,
                 allow_close: bool = True) -> Tuple[List[Frame], List[Any], List[Any]]:
    """(frames, the events a parser must produce, the messages) of a valid client stream."""
    frames: List[Frame] = []
    events: List[Any] = []
    messages: List[Any] = []

    def control() -> None:
        kind = rng.choice((OP_PING, OP_PONG))
        payload = random_bytes(rng, rng.choice((0, 1, 10, 125)))
        frames.append(Frame(kind, payload))
        events.append(Ping(payload) if kind == OP_PING else Pong(payload))

    for _ in range(rng.choice((0, 1, 1, 2, 3, 5, 8))):
        if rng.random() < 0.2:
            control()
        message = random_message(rng, limit)
        if isinstance(message, str):
            opcode, payload = OP_TEXT, message.encode("utf-8")
        else:
            opcode, payload = OP_BINARY, bytes(message)
        compressed = deflate is not None and rng.random() < 0.7
        if compressed:
            payload = deflate(payload)
        pieces = 1 if rng.random() < 0.6 else rng.randint(2, 6)
        cuts = sorted(rng.randint(0, len(payload)) for _ in range(pieces - 1))
        bounds = [0] + cuts + [len(payload)]
        for index in range(pieces):
            chunk = payload[bounds[index]:bounds[index + 1]]
            last = index == pieces - 1
            frames.append(Frame(opcode if index == 0 else OP_CONTINUATION, chunk, fin=last,
                                rsv=0x40 if compressed and index == 0 else 0))
            if not last and rng.random() < 0.3:
                control()
        events.append(Message(message))
        messages.append(message)
    if allow_close and rng.random() < 0.5:
        if rng.random() < 0.2:
            frames.append(Frame(OP_CLOSE, b""))
            events.append(Close(None, ""))
        else:
            code = rng.choice((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999))
            reason = random_text(rng, rng.choice((0, 5, 30, 123)))
            frames.append(Frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode("utf-8")))
            events.append(Close(code, reason))
    return frames, events, messages


_BAD_CLOSE_CODES = (0, 1, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000, 65535)


def mutate_frames(rng: random.Random, frames: List[Frame], limit: int) -> List[Frame]:
    """Structure-aware mutations (one to three of them)."""
    frames = list(frames) or [Frame(OP_TEXT, b"x")]
    for _ in range(rng.randint(1, 3)):
        index = rng.randrange(len(frames))
        frame = frames[index]
        op = rng.randrange(18)
        if op == 0:
            frame.rsv = rng.choice((0x40, 0x20, 0x10, 0x70))
        elif op == 1:
            frame.opcode = rng.randrange(16)
        elif op == 2:
            frame.mask = None
        elif op == 3:
            frame.fin = not frame.fin
        elif op == 4:
            frame.length = max(0, len(frame.payload) + rng.choice((-2, -1, 1, 2, 100)))
        elif op == 5:
            frame.length = rng.choice((1 << 63, (1 << 64) - 1, 1 << 40, limit + 1, 0x7FFFFFFFFFFFFFFF))
        elif op == 6:
            frame.encoding = rng.choice(("16", "64"))      # non-minimal length encodings
        elif op == 7 and frame.opcode in (OP_TEXT, OP_CONTINUATION):
            pos = rng.randint(0, len(frame.payload))
            bad = rng.choice((b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"))
            frame.payload = frame.payload[:pos] + bad + frame.payload[pos:]
        elif op == 8:
            frames.insert(index, Frame(OP_CLOSE, rng.choice((b"\x03", b"\x03\xe8\xff", b"\x03\xe8\xc0\xaf"))))
        elif op == 9:
            code = rng.choice(_BAD_CLOSE_CODES)
            frames.insert(index, Frame(OP_CLOSE, code.to_bytes(2, "big") + b"bye"))
        elif op == 10:
            frames.insert(index, Frame(rng.choice((OP_PING, OP_PONG, OP_CLOSE)), b"p" * rng.choice((126, 200, 65536))))
        elif op == 11:
            frames.insert(index, Frame(OP_PING, b"frag", fin=False))
        elif op == 12:
            frames.insert(index, Frame(OP_CONTINUATION, b"orphan", fin=rng.random() < 0.5))
        elif op == 13:
            frames.insert(index, Frame(rng.choice((OP_TEXT, OP_BINARY)), b"interleaved", fin=False))
        elif op == 14 and len(frames) > 1:
            del frames[index]
        elif op == 15:
            frames.insert(index, Frame(frame.opcode, frame.payload, frame.fin, frame.rsv, frame.mask,
                                       frame.length, frame.encoding))
        elif op == 16 and len(frames) > 1:
            other = rng.randrange(len(frames))
            frames[index], frames[other] = frames[other], frames[index]
        elif op == 17:
            bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = bomb.compress(bytes(rng.choice((limit + 1, 4 * limit, 1 << 22)))) + bomb.flush(zlib.Z_SYNC_FLUSH)
            if rng.random() < 0.5:
                payload = random_bytes(rng, rng.randint(1, 64))      # not deflate at all
            frames.insert(index, Frame(rng.choice((OP_TEXT, OP_BINARY)), payload[:-4], rsv=0x40))
    return frames


def hixie_stream(rng: random.Random, limit: int) -> Tuple[bytes, List[Any], List[str]]:
    events: List[Any] = []
    messages: List[str] = []
    data = bytearray()
    for _ in range(rng.choice((0, 1, 2, 4))):
        text = random_text(rng, random_size(rng, limit))
        data += b"\x00" + text.encode("utf-8") + b"\xff"
        events.append(Message(text))
        messages.append(text)
    if rng.random() < 0.5:
        data += b"\xff\x00"
        events.append(Close(None, ""))
    return bytes(data), events, messages


def mutate_hixie(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        pos = rng.randint(0, len(buf))
        buf[pos:pos] = rng.choice((b"\x80\x05hello", b"\xff", b"\xff\x01", b"\x01abc\xff", b"\x00\xc0\xaf\xff",
                                   b"\x00", b"\x00" + b"a" * 70000, b"\xfe"))
    return mutate_bytes(rng, bytes(buf), 1) if rng.random() < 0.3 else bytes(buf)


# -- codec oracles ---------------------------------------------------------------------------------

def normalise(events: List[Any]) -> List[Tuple[str, Any]]:
    out = []
    for event in events:
        kind = event.__class__.__name__
        if kind == "Message":
            out.append((kind, type(event.data).__name__, event.data))
        elif kind in ("Ping", "Pong"):
            out.append((kind, event.payload))
        elif kind == "Close":
            out.append((kind, event.code, event.reason))
        elif kind == "Failure":
            out.append((kind, event.code, event.reason))
        else:
            out.append((kind, repr(event)))
    return out


def feed_all(make: Callable[[], Any], pieces: List[bytes]) -> Tuple[List[Any], Optional[BaseException]]:
    parser = make()
    events: List[Any] = []
    try:
        for piece in pieces:
            events.extend(parser.feed(piece))
        after = parser.feed(b"\x81\x80abcd\x00garbage") if events and events[-1].__class__ in (Close, Failure) else []
        if after:
            events.append(("after-the-end", after))
    except Exception as exc:  # any exception is a finding
        return events, exc
    return events, None


def check_codec(findings: Findings, case_id: str, make: Callable[[], Any], data: bytes, rng: random.Random,
                limit: int, expected: Optional[List[Any]]) -> None:
    whole, error = feed_all(make, [data])
    if error is not None:
        findings.add("exception", case_id, "%r feeding %s" % (error, short(data)))
        return
    pieces = chunkings(rng, data)
    split, error = feed_all(make, pieces)
    if error is not None:
        findings.add("exception", case_id, "%r feeding %d pieces of %s" % (error, len(pieces), short(data)))
        return
    if normalise(whole) != normalise(split):
        findings.add("chunking", case_id, "whole: %s / in %d pieces: %s; input %s" % (
            normalise(whole)[-3:], len(pieces), normalise(split)[-3:], short(data)))
    for index, event in enumerate(whole):
        if isinstance(event, tuple):
            findings.add("after-end", case_id, "events after Close/Failure: %r" % (event,))
            continue
        if event.__class__ in (Close, Failure) and index != len(whole) - 1:
            findings.add("after-end", case_id, "%r is not the last event" % (event,))
        if event.__class__ is Failure:
            if event.code not in FAILURE_CODES or not is_valid_close_code(event.code) or not event.reason:
                findings.add("failure-code", case_id, "%r" % (event,))
        elif event.__class__ is Close and event.code is not None and not is_valid_close_code(event.code):
            findings.add("close-code", case_id, "parser accepted close code %r" % (event.code,))
        elif event.__class__ is Message:
            size = len(event.data.encode("utf-8")) if isinstance(event.data, str) else len(event.data)
            if size > limit:
                findings.add("limit", case_id, "a message of %d bytes passed a limit of %d" % (size, limit))
    if expected is not None and normalise(whole) != normalise(expected):
        findings.add("valid-stream", case_id, "a valid stream parsed as %s, expected %s; input %s" % (
            normalise(whole)[:3], normalise(expected)[:3], short(data)))


def codec_input(seed: int, index: int) -> Tuple[str, Callable[[], Any], bytes, random.Random, int,
                                               Optional[List[Any]]]:
    """Codec case ``index`` of ``seed``: (case id, parser factory, bytes, its generator, limit, expected events).

    The generator is returned in the state the bytes left it in (the random
    splits of :func:`check_codec` continue from it), so a case replays exactly.
    """
    rng = case_rng(seed, "frames", index)
    case_id = "frames seed=%d case=%d" % (seed, index)
    kind = rng.random()
    if kind < 0.2:
        hixie_limit = rng.choice((1000, 65536))
        data, expected, _ = hixie_stream(rng, hixie_limit)
        if rng.random() < 0.6:
            data, expected = mutate_hixie(rng, data), None
        return (case_id + " hixie", lambda: HixieParser(max_message_size=hixie_limit), data, rng, hixie_limit,
                expected)
    deflate = kind < 0.45
    tiny = kind > 0.9
    limit = rng.choice((100, 300)) if tiny else rng.choice((65536, 1 << 20))
    frame_limit = rng.choice((None, 50, 126)) if tiny else None
    frames, expected, _ = valid_stream(rng, limit if not tiny else 4 * limit, ClientDeflater() if deflate else None)
    mutated = tiny or rng.random() < 0.6
    if mutated:
        frames = mutate_frames(rng, frames, limit)
    data = b"".join(frame.to_bytes(rng) for frame in frames)
    if mutated and rng.random() < 0.3:
        data = mutate_bytes(rng, data)

    def make() -> FrameParser:
        extension = PerMessageDeflate().negotiate(_DEFLATE_REQUEST)[0] if deflate else None
        return FrameParser(max_message_size=limit, max_frame_size=frame_limit, extension=extension)

    return case_id + (" deflate" if deflate else ""), make, data, rng, limit, None if mutated else expected


def codec_case(findings: Findings, seed: int, index: int) -> None:
    case_id, make, data, rng, limit, expected = codec_input(seed, index)
    check_codec(findings, case_id, make, data, rng, limit, expected)


# -- live cases ------------------------------------------------------------------------------------

def _hixie_key(rng: random.Random) -> str:
    spaces = rng.randint(1, 12)
    number = rng.randrange(0, 0xFFFFFFFF // spaces + 1)
    chars = list(str(number * spaces))
    for _ in range(spaces):
        chars.insert(rng.randint(1, len(chars)), " ")
    for _ in range(rng.randint(0, 6)):
        chars.insert(rng.randint(1, len(chars)), rng.choice("abcXYZ%$#@!.:,"))
    return "k" + "".join(chars) + "z"


def live_cases(seed: int, count: int, deadline: float) -> Iterator[LiveCase]:
    server_limit = 64 * 1024
    for index in range(count):
        if time.monotonic() >= deadline:
            return
        rng = case_rng(seed, "live-frames", index)
        case_id = "live-frames seed=%d case=%d" % (seed, index)
        mutated = rng.random() < 0.6
        if rng.random() < 0.12:
            key1, key2 = _hixie_key(rng), _hixie_key(rng)
            key3 = bytes(rng.getrandbits(8) for _ in range(8))
            hixie76_answer(key1, key2, key3)            # a valid pair, by construction
            handshake = ("GET /demo HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key2: %s\r\nUpgrade: WebSocket\r\nSec-WebSocket-Key1: %s\r\n"
                         "Origin: http://example.com\r\n\r\n" % (key2, key1)).encode("latin-1") + key3
            stream, _, messages = hixie_stream(rng, 4000)
            if not stream.endswith(b"\xff\x00"):
                stream += b"\xff\x00"
            if mutated:
                stream = mutate_hixie(rng, stream) + b"\xff\x00"
            expect = None if mutated else (messages, None)
            case_id += " hixie-76"
        else:
            deflate = rng.random() < 0.35
            version = rng.choice(("13", "13", "13", "8"))
            lines = ["GET /fuzz HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
                     "Sec-WebSocket-Key: " + base64.b64encode(
                         bytes(rng.getrandbits(8) for _ in range(16))).decode(),
                     "Sec-WebSocket-Version: " + version]
            if deflate:
                lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
            if rng.random() < 0.3:
                lines.append("Sec-WebSocket-Protocol: superchat, chat")
            handshake = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            frames, _, messages = valid_stream(rng, server_limit, ClientDeflater(9) if deflate else None,
                                               allow_close=False)
            close_code = rng.choice((1000, 1001, 3000, 4999))
            if mutated:
                frames = mutate_frames(rng, frames, server_limit)
            frames.append(Frame(OP_CLOSE, close_code.to_bytes(2, "big") + b"fuzz done"))
            stream = b"".join(frame.to_bytes(rng) for frame in frames)
            if mutated and rng.random() < 0.3:
                stream = mutate_bytes(rng, stream[:-15]) + stream[-15:]
            expect = None if mutated else (messages, close_code)
            case_id += " v%s%s%s" % (version, " deflate" if deflate else "", " mutated" if mutated else "")
        pieces = chunkings(rng, handshake + stream)
        yield LiveCase(case_id, pieces, rng, pace=paced(rng, pieces), expect=expect, expect_status=101)


# -- main -----------------------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, count=3000, seconds=60.0)
    args = parser.parse_args(argv)
    seed = resolve_seed(args.seed)
    findings = Findings(NAME, verbose=args.verbose or args.case is not None)
    started = time.monotonic()
    deadline = started + args.seconds
    codec_deadline = started + (args.seconds * 0.5 if args.live else args.seconds)
    done = 0
    if args.case is not None:
        codec_case(findings, seed, args.case)
        done = 1
    elif args.live_case is None:
        for index in range(args.count):
            if time.monotonic() >= codec_deadline:
                break
            codec_case(findings, seed, index)
            done += 1
    live: Dict[str, Any] = {}
    if args.live and args.case is None:
        live_count = args.live_count if args.live_count is not None else min(2000, max(1, args.count // 5))
        if args.live_case is not None:
            live_count = args.live_case + 1
            findings.verbose = True
        live = live_session(NAME, findings, pick(live_cases(seed, live_count, deadline), args.live_case),
                            deadline=deadline, parallel=args.parallel)
    elapsed = time.monotonic() - started
    summary = "%s: seed=%d codec_cases=%d live_cases=%d (upgraded %d, http errors %d, inconclusive %d) " \
              "findings=%d %s " \
              "server_rss_kib=%s->%s (peak %s) elapsed=%.1fs" % (
                  NAME, seed, done, live.get("finished", 0), live.get("upgraded", 0), live.get("http-error", 0),
                  live.get("inconclusive", 0),
                  len(findings), findings.kinds() or "", live.get("rss_start_kib", "-"), live.get("rss_end_kib", "-"),
                  live.get("peak_rss_kib", "-"), elapsed)
    print(summary)
    return 1 if len(findings) else 0


if __name__ == "__main__":
    sys.exit(main())
