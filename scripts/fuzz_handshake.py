#!/usr/bin/env python3
"""Fuzz the opening handshake: the HTTP request parser, version detection, RFC 6455 / HyBi and
draft-75/76 negotiation, permessage-deflate negotiation, and a live server's answers.

Codec cases (``--count``): requests of every kind the server meets (RFC 6455,
HyBi-07/08, draft-76 with key3, draft-75, plain GET, wrong version, wrong
method), left alone or mutated (dropped/duplicated headers, hostile values,
odd request lines and targets, bare LF, folding, Content-Length and
Transfer-Encoding games, too many or too large headers, TLS bytes, draft-76
keys with thousands of digits, broken Sec-WebSocket-Key; then maybe
byte-level flips, inserts, deletes, truncation).  Each request goes to
:class:`RequestParser` whole and in random pieces, then through what
``WsServer`` does with it (``detect_version``, ``negotiate`` with
permessage-deflate, ``check_keys``/``hixie_response``).  Findings: any
exception but ``HttpError``; an ``HttpError`` that is not 4xx/5xx or has no
reason; whole and pieces disagreeing (one accepts, the other refuses, or the
requests differ); a 101 response that is malformed, has a wrong
Sec-WebSocket-Accept or draft-76 answer (recomputed independently), or echoes
an extension the client did not offer; an unmutated request not getting the
status its kind deserves.

Extension cases (a quarter of ``--count``): random Sec-WebSocket-Extensions
offers from a grammar (and mutations of them) against random
:class:`PerMessageDeflate` settings.  Findings: any exception; an accepted
answer that is malformed, out of range or names ``client_max_window_bits``
the client did not offer; a message that does not survive the round trip in
either direction with the agreed parameters.

Live cases (``--live``, the default): the same requests, followed by a close
frame, go in paced random pieces to an echo server in a subprocess (see
``_fuzz_common.py``).  Every connection must end with an HTTP 4xx/5xx with a
reason, or a ``101`` and then a valid close (and EOF); an unmutated request
must get its status.  The server must log no ERROR, keep nothing alive once
all clients are gone, keep its RSS bounded, and exit 0 on SIGTERM.

Usage::

    python scripts/fuzz_handshake.py --seed 1 --count 5000 --seconds 60
    python scripts/fuzz_handshake.py --seed 1 --case 77 --no-live       # replay one codec case
    python scripts/fuzz_handshake.py --seed 1 --live-case 12            # replay one live case

It prints one summary line and exits 1 if anything was found.
"""

import argparse
import base64
import hashlib
import os
import random
import re
import struct
import sys
import time
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _fuzz_common import (ClientInflater, Findings, LiveCase, add_common_arguments, case_rng,  # noqa: E402
                          chunkings, live_session, mutate_bytes, paced, pick, resolve_seed, short)

from ratchet_sel.http.request import HttpError, Request, RequestParser  # noqa: E402
from ratchet_sel.websocket.deflate import PerMessageDeflate, parse_extension_header  # noqa: E402
from ratchet_sel.websocket.handshake import check_upgrade, detect_version, negotiate  # noqa: E402
from ratchet_sel.websocket.hixie import check_keys, hixie_response  # noqa: E402
from ratchet_sel.websocket.rfc6455 import (OP_CLOSE, OP_TEXT, FrameParser, Message,  # noqa: E402
                                           encode_frame)

NAME = "fuzz_handshake"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUBPROTOCOLS = ["chat", "superchat"]
_DEFLATE_PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
                   "server_max_window_bits", "client_max_window_bits")


# -- generation ------------------------------------------------------------------------------------

class Spec:
    """A request to serialise: request line parts, headers, body and what follows it."""

    def __init__(self, kind: str, method: str, target: str, version: str, headers: List[List[str]],
                 trailer: bytes, expected: int) -> None:
        self.kind = kind
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = b""
        self.trailer = trailer          # bytes after the head: key3, then the first frames
        self.expected = expected
        self.newline = "\r\n"

    def to_bytes(self) -> bytes:
        nl = self.newline
        lines = ["%s %s %s" % (self.method, self.target, self.version)]
        lines += ["%s: %s" % (name, value) for name, value in self.headers]
        return (nl.join(lines) + nl + nl).encode("latin-1", "replace") + self.body + self.trailer


def hixie_key(rng: random.Random) -> str:
    spaces = rng.randint(1, 12)
    number = rng.randrange(0, 0xFFFFFFFF // spaces + 1)
    chars = list(str(number * spaces))
    for _ in range(spaces):
        chars.insert(rng.randint(1, len(chars)), " ")
    for _ in range(rng.randint(0, 6)):
        chars.insert(rng.randint(1, len(chars)), rng.choice("abcXYZ%$#@!.:,"))
    return "k" + "".join(chars) + "z"


def random_offer(rng: random.Random) -> str:
    """A Sec-WebSocket-Extensions value from a loose grammar."""
    elements = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        name = rng.choice(("permessage-deflate", "permessage-deflate", "Permessage-Deflate",
                           "x-webkit-deflate-frame", "foo", ""))
        params = []
        for _ in range(rng.choice((0, 1, 2, 3, 4))):
            param = rng.choice(_DEFLATE_PARAMS + ("unknown_param",))
            if param.endswith("window_bits") and rng.random() < 0.8:
                value = rng.choice(("8", "9", "10", "12", "15", "7", "16", "0", "", "abc", '"10"', "010", "²",
                                    "15 ", "99999999999999999999"))
                param += "=" + value
            elif rng.random() < 0.1:
                param += "=" + rng.choice(("1", "true", '""'))
            params.append(param)
        space = rng.choice(("", " ", "  "))
        elements.append((";" + space).join([name] + params))
    return rng.choice((", ", ",", " , ")).join(elements)


def base_spec(rng: random.Random) -> Spec:
    kind = rng.choice(("rfc6455", "rfc6455", "rfc6455", "hybi", "hixie-76", "hixie-75", "plain",
                       "bad-version", "bad-method"))
    target = rng.choice(("/", "/chat", "/room/1?user=ann&x=%20y", "/" + "a" * rng.randint(0, 300)))
    headers = [["Host", rng.choice(("127.0.0.1", "example.com:8080", "[::1]:80"))]]
    if kind in ("rfc6455", "hybi", "bad-version", "bad-method"):
        headers += [["Upgrade", rng.choice(("websocket", "WebSocket", "websocket, foo"))],
                    ["Connection", rng.choice(("Upgrade", "keep-alive, Upgrade", "upgrade"))],
                    ["Sec-WebSocket-Key", base64.b64encode(bytes(rng.getrandbits(8) for _ in range(16))).decode()],
                    ["Sec-WebSocket-Version", {"rfc6455": "13", "hybi": rng.choice(("8", "7")),
                                               "bad-version": rng.choice(("12", "14", "0", "9")),
                                               "bad-method": "13"}[kind]]]
        if rng.random() < 0.4:
            headers.append(["Sec-WebSocket-Extensions", random_offer(rng)])
        if rng.random() < 0.3:
            headers.append(["Sec-WebSocket-Protocol", rng.choice(("chat", "superchat, chat", "other", "a, b, chat"))])
        trailer = encode_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye", mask=os.urandom(4))
    elif kind == "hixie-76":
        headers += [["Connection", "Upgrade"], ["Upgrade", "WebSocket"], ["Sec-WebSocket-Key1", hixie_key(rng)],
                    ["Sec-WebSocket-Key2", hixie_key(rng)], ["Origin", "http://example.com"]]
        trailer = bytes(rng.getrandbits(8) for _ in range(8)) + b"\x00hello\xff\xff\x00"
    elif kind == "hixie-75":
        headers += [["Upgrade", "WebSocket"], ["Connection", "Upgrade"], ["Origin", "http://example.com"]]
        trailer = b"\x00hi\xff\xff\x00"
    else:
        trailer = b""
    if rng.random() < 0.3:
        headers.append(["Cookie", "sid=abc; theme=dark"])
    if rng.random() < 0.3:
        headers.append(["Origin", "http://example.com"])
    rng.shuffle(headers)
    method = "PUT" if kind == "bad-method" else "GET"
    expected = {"rfc6455": 101, "hybi": 101, "hixie-76": 101, "hixie-75": 101, "plain": 426,
                "bad-version": 426, "bad-method": 405}[kind]
    return Spec(kind, method, target, "HTTP/1.1", headers, trailer, expected)


_NASTY_VALUES = ("", " ", "\x00", "\x7f", "\t", "a" * 9000, "é\xff\xfe", ",,,", '"', ";", "=", "Upgrade, Upgrade",
                 "websocket\x01", "%00", "\\", "0" * 5000, "1 " * 3000, "-1", "99999999999999999999999")


def mutate_spec(rng: random.Random, spec: Spec) -> None:
    """One to three structural mutations."""
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(22)
        headers = spec.headers
        index = rng.randrange(len(headers)) if headers else 0
        if op == 0 and headers:
            del headers[index]
        elif op == 1 and headers:
            headers.insert(rng.randrange(len(headers) + 1), [headers[index][0], rng.choice(_NASTY_VALUES[:10])])
        elif op == 2 and headers:
            headers[index][0] = rng.choice((headers[index][0].upper(), headers[index][0].lower(), "X Bad",
                                            "X:Bad", "", "\x01", "Bad\x80"))
        elif op == 3 and headers:
            headers[index][1] = rng.choice(_NASTY_VALUES)
        elif op == 4:
            spec.method = rng.choice(("POST", "get", "HEAD", "G ET", "", "CONNECT", "X" * 100, "GET\x00"))
        elif op == 5:
            spec.target = rng.choice(("", "*", "http://example.com/x", "https://h", "/%zz%", "/?a=%ff&&=",
                                      "no-slash", "/a b",
                                      # request lines of 8191, 8192 (the limit) and 8193 bytes, and more
                                      "/" + "a" * rng.choice((8177, 8178, 8179, 8200, 9000))))
        elif op == 6:
            spec.version = rng.choice(("HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "HTTP/1", "HTTP/1.10", "http/1.1",
                                       "HTTP/9.9", ""))
        elif op == 7:
            spec.newline = "\n"
        elif op == 8 and headers:
            headers.insert(index, [" folded", "continuation"])      # becomes an obs-fold line
        elif op == 9:
            headers.append(["Content-Length", rng.choice(("0", "8", "5", "-1", "abc", "99999999", "1048577", " 3"))])
            spec.body = bytes(rng.getrandbits(8) for _ in range(rng.choice((0, 3, 5, 8))))
        elif op == 10:
            headers.append(["Transfer-Encoding", "chunked"])
        elif op == 11:
            headers.extend([["X-Many-%d" % i, "v"] for i in range(rng.choice((99, 100, 101, 150)))])
        elif op == 12:
            headers.append(["X-Huge", "h" * rng.choice((60000, 65400, 70000))])
        elif op == 13:
            spec.method = "\x16\x03\x01" + spec.method
        elif op == 14:
            for header in headers:
                if header[0].lower().startswith("sec-websocket-key"):
                    header[1] = rng.choice(("1" * rng.choice((30, 4299, 4301, 6000)) + " 2",
                                            "0" * 5000 + " 1 2", "12345", "1 2 3 4", " " * 10, "abc def",
                                            "4294967296 ", "8589934590  "))
        elif op == 15:
            for header in headers:
                if header[0].lower() == "sec-websocket-key":
                    header[1] = rng.choice(("short", base64.b64encode(b"x" * 15).decode(),
                                            base64.b64encode(b"x" * 17).decode(), "!!!!" * 6, "  " + header[1],
                                            header[1] + "=", "é" * 24))
        elif op == 16:
            headers.append(["Sec-WebSocket-Version", rng.choice(("13", "8", "13, 8", "١٣", ""))])
        elif op == 17:
            headers.append(["Sec-WebSocket-Extensions", random_offer(rng)])
        elif op == 18:
            headers.append(["Host", "other.example"])
        elif op == 19:
            spec.trailer = spec.trailer[:rng.randint(0, len(spec.trailer))]
        elif op == 20:
            headers.append(["Sec-WebSocket-Protocol", rng.choice(("", ",", "chat, chat", "x" * 5000))])
        elif op == 21:
            headers.append(["Upgrade", rng.choice(("websocket", "h2c", ""))])


def generate(rng: random.Random) -> Tuple[Spec, bytes, bool]:
    spec = base_spec(rng)
    mutated = rng.random() < 0.65
    if mutated:
        mutate_spec(rng, spec)
    data = spec.to_bytes()
    if mutated and rng.random() < 0.3:
        head_end = data.find(b"\r\n\r\n")
        head_end = len(data) if head_end < 0 else head_end + 4
        data = mutate_bytes(rng, data[:head_end]) + data[head_end:]
    return spec, data, mutated


# -- independent recomputations ------------------------------------------------------------------

def expected_accept(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode()


def hixie_number(key: str) -> Optional[int]:
    """The draft-76 key number, or None when the key must be refused (independent of the library)."""
    digits = "".join(ch for ch in key if "0" <= ch <= "9").lstrip("0") or ("0" if any(
        "0" <= ch <= "9" for ch in key) else "")
    spaces = key.count(" ")
    if not digits or not spaces or len(digits) > 20:
        return None
    number = int(digits)
    if number % spaces or number // spaces > 0xFFFFFFFF:
        return None
    return number // spaces


# -- codec oracles ----------------------------------------------------------------------------------

def parse(pieces: List[bytes]) -> Tuple[str, Any, bytes]:
    """('ok', request, rest) or ('error', HttpError, b'') or ('incomplete', None, b'')."""
    parser = RequestParser()
    for position, piece in enumerate(pieces):
        request = parser.feed(piece)
        if request is not None:
            return "ok", request, parser.remaining + b"".join(pieces[position + 1:])
    return "incomplete", None, b""


def summary(request: Request) -> Tuple[Any, ...]:
    return (request.method, request.target, request.version, request.headers.items(), request.body)


def check_http_error(findings: Findings, case_id: str, exc: HttpError, data: bytes) -> None:
    if not 400 <= exc.status <= 599 or not exc.reason:
        findings.add("http-error", case_id, "HttpError %r %r for %s" % (exc.status, exc.reason, short(data)))


def check_response_head(findings: Findings, case_id: str, response: bytes, data: bytes) -> List[str]:
    head, sep, _ = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not sep or not lines[0].startswith("HTTP/1.1 101 "):
        findings.add("response", case_id, "malformed 101 response %s for %s" % (short(response), short(data)))
    for line in lines[1:]:
        if not re.match(r"[A-Za-z0-9-]+: [\t\x20-\x7e\x80-\xff]*\Z", line):      # no control characters
            findings.add("response", case_id, "malformed header line %r for %s" % (line[:100], short(data)))
    return lines


def handshake_case(findings: Findings, case_id: str, request: Request, rest: bytes, data: bytes,
                   spec: Spec, mutated: bool) -> Optional[int]:
    """Do what WsServer does with ``request``; returns the status it would answer with."""
    try:
        version = detect_version(request)
        if version is None:
            return 426                      # the default http_handler
        if version in ("hixie-76", "hixie-75"):
            check_upgrade(request)
            key3 = None
            if version == "hixie-76":
                check_keys(request)
                stream = request.body + rest
                if len(stream) < 8:
                    return 408              # the server would wait for key3, then time out
                key3 = stream[:8]
            response, _ = hixie_response(request, version, subprotocols=SUBPROTOCOLS, key3=key3)
            check_response_head(findings, case_id, response[:-16] if key3 else response, data)
            if key3 is not None:
                numbers = [hixie_number(request.headers.get(name) or "")
                           for name in ("Sec-WebSocket-Key1", "Sec-WebSocket-Key2")]
                if None in numbers:
                    findings.add("hixie-keys", case_id, "draft-76 keys accepted that are invalid: %s" % short(data))
                else:
                    answer = hashlib.md5(struct.pack("!II", numbers[0], numbers[1]) + key3).digest()
                    if response[-16:] != answer:
                        findings.add("hixie-answer", case_id, "wrong draft-76 answer for %s" % short(data))
            return 101
        agreement = negotiate(request, subprotocols=SUBPROTOCOLS, negotiate_extensions=PerMessageDeflate().negotiate)
        lines = check_response_head(findings, case_id, agreement.response, data)
        key = request.headers.get("Sec-WebSocket-Key", "").strip()
        if "Sec-WebSocket-Accept: " + expected_accept(key) not in lines:
            findings.add("accept", case_id, "wrong Sec-WebSocket-Accept for %s" % short(data))
        offered = " ".join(request.headers.get_all("Sec-WebSocket-Extensions")).lower()
        for line in lines:
            if line.lower().startswith("sec-websocket-extensions:"):
                check_agreed_extension(findings, case_id, line.split(":", 1)[1].strip(), offered, data)
            if line.lower().startswith("sec-websocket-protocol:"):
                chosen = line.split(":", 1)[1].strip()
                if chosen not in SUBPROTOCOLS or chosen not in request.headers.get("Sec-WebSocket-Protocol", ""):
                    findings.add("subprotocol", case_id, "chose %r for %s" % (chosen, short(data)))
        return 101
    except HttpError as exc:
        check_http_error(findings, case_id, exc, data)
        return exc.status
    except Exception as exc:  # anything else escapes WsServer: a finding
        findings.add("exception", case_id, "%r in the handshake of %s" % (exc, short(data, 300)))
        return None


def check_agreed_extension(findings: Findings, case_id: str, value: str, offered: str, data: bytes) -> None:
    try:
        agreed = parse_extension_header([value])
    except Exception as exc:
        findings.add("extension", case_id, "unparsable answer %r: %r" % (value, exc))
        return
    if len(agreed) != 1 or agreed[0][0] != "permessage-deflate":
        findings.add("extension", case_id, "answer %r is not one permessage-deflate" % value)
        return
    for name, param in agreed[0][1]:
        if name not in _DEFLATE_PARAMS:
            findings.add("extension", case_id, "unknown parameter %r in %r" % (name, value))
        elif name.endswith("window_bits") and (param is None or not param.isdigit() or not 8 <= int(param) <= 15):
            findings.add("extension", case_id, "bad %s=%r in %r" % (name, param, value))
        elif name.endswith("no_context_takeover") and param is not None:
            findings.add("extension", case_id, "%s with a value in %r" % (name, value))
        if name == "client_max_window_bits" and "client_max_window_bits" not in offered:
            findings.add("extension", case_id, "client_max_window_bits answered but not offered: %r for %r"
                         % (value, offered))


def request_case(findings: Findings, seed: int, index: int) -> None:
    rng = case_rng(seed, "handshake", index)
    spec, data, mutated = generate(rng)
    case_id = "handshake seed=%d case=%d %s%s" % (seed, index, spec.kind, " mutated" if mutated else "")
    outcomes = []
    # (few pieces for big requests: RequestParser rescans its whole buffer on every feed)
    for pieces in ([data], chunkings(rng, data, max_pieces=300)):
        try:
            outcomes.append(parse(pieces))
        except HttpError as exc:
            check_http_error(findings, case_id, exc, data)
            outcomes.append(("error", exc, b""))
        except Exception as exc:
            findings.add("exception", case_id, "RequestParser raised %r for %s" % (exc, short(data, 300)))
            return
    (kind_a, a, rest_a), (kind_b, b, rest_b) = outcomes
    if kind_a != kind_b or (kind_a == "ok" and (summary(a) != summary(b) or rest_a != rest_b)):
        findings.add("chunking", case_id, "whole: %s %s / in pieces: %s %s; input %s" % (
            kind_a, a if kind_a != "ok" else a.target[:40], kind_b, b if kind_b != "ok" else b.target[:40],
            short(data)))
    status = None
    if kind_a == "ok":
        status = handshake_case(findings, case_id, a, rest_a, data, spec, mutated)
    elif kind_a == "error":
        status = a.status
    if not mutated and status != spec.expected:
        findings.add("status", case_id, "a valid %s request gets %r, expected %d: %s" % (
            spec.kind, status, spec.expected, short(data)))


# -- permessage-deflate negotiation -------------------------------------------------------------------

def extension_case(findings: Findings, seed: int, index: int) -> None:
    rng = case_rng(seed, "extension", index)
    case_id = "extension seed=%d case=%d" % (seed, index)
    offer = random_offer(rng)
    if rng.random() < 0.3:
        offer = mutate_bytes(rng, offer.encode("latin-1")).decode("latin-1")
    offer = offer.replace("\r", "").replace("\n", "").strip(" \t")
    try:
        config = PerMessageDeflate(server_no_context_takeover=rng.random() < 0.5,
                                   client_no_context_takeover=rng.random() < 0.5,
                                   server_max_window_bits=rng.randint(8, 15),
                                   client_max_window_bits=rng.randint(8, 15), threshold=rng.choice((0, 16, 128)))
        request = RequestParser().feed(("GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Extensions: %s\r\n\r\n"
                                        % offer).encode("latin-1"))
    except HttpError:
        return                                  # not a header the parser takes: nothing to negotiate
    try:
        extension, answer = config.negotiate(request)
    except Exception as exc:
        findings.add("exception", case_id, "negotiate raised %r for offer %r" % (exc, offer))
        return
    if extension is None:
        if answer is not None:
            findings.add("extension", case_id, "no extension but an answer %r" % answer)
        return
    check_agreed_extension(findings, case_id, answer, offer.lower(), offer.encode("latin-1"))
    # Server to client: what it compresses, a client reads back.
    messages = ["short", "x" * 300, "ünïcödé " * 40, bytes(range(256)) * 8, ""]
    try:
        frames = b"".join(b"".join(extension.encode_message(m, rng.choice((0, 0, 50)))) for m in messages)
        client = FrameParser(require_mask=False, max_message_size=1 << 20,
                             extension=ClientInflater("server_no_context_takeover" in answer))
        got = [e.data for e in client.feed(frames) if isinstance(e, Message)]
        if got != messages:
            findings.add("roundtrip", case_id, "server->client messages changed with %r" % answer)
        # Client to server: compressed with the window the server asked for (8 means Huffman only).
        bits = extension.client_bits
        compressor = (zlib.compressobj(6, zlib.DEFLATED, -9, 8, zlib.Z_HUFFMAN_ONLY) if bits == 8
                      else zlib.compressobj(6, zlib.DEFLATED, -bits))
        parser = FrameParser(max_message_size=1 << 20, extension=extension)
        events = []
        for message in messages:
            raw = message.encode("utf-8") if isinstance(message, str) else message
            payload = compressor.compress(raw) + compressor.flush(zlib.Z_SYNC_FLUSH)
            if extension.client_takeover is False:
                compressor = (zlib.compressobj(6, zlib.DEFLATED, -9, 8, zlib.Z_HUFFMAN_ONLY) if bits == 8
                              else zlib.compressobj(6, zlib.DEFLATED, -bits))
            opcode = OP_TEXT if isinstance(message, str) else 0x2
            events += parser.feed(encode_frame(opcode, payload[:-4], rsv1=True, mask=os.urandom(4)))
        got = [e.data if isinstance(e, Message) else e for e in events]
        if got != messages:
            findings.add("roundtrip", case_id, "client->server messages changed with %r: %r" % (answer, got[-1:]))
    except Exception as exc:
        findings.add("exception", case_id, "%r in the round trip with %r" % (exc, answer))


# -- live cases -------------------------------------------------------------------------------------

def live_cases(seed: int, count: int, deadline: float) -> Iterator[LiveCase]:
    for index in range(count):
        if time.monotonic() >= deadline:
            return
        rng = case_rng(seed, "live-handshake", index)
        spec, data, mutated = generate(rng)
        case_id = "live-handshake seed=%d case=%d %s%s" % (seed, index, spec.kind, " mutated" if mutated else "")
        pieces = chunkings(rng, data)
        expect = None
        if not mutated and spec.expected == 101:
            expect = ([] if spec.kind.startswith("rfc") or spec.kind == "hybi" else ["hello"],
                      1000 if spec.kind in ("rfc6455", "hybi") else None)
            if spec.kind == "hixie-75":
                expect = (["hi"], None)
        yield LiveCase(case_id, pieces, rng, pace=paced(rng, pieces), expect=expect,
                       expect_status=None if mutated else spec.expected)


# -- main -------------------------------------------------------------------------------------------

def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, count=4000, seconds=60.0)
    args = parser.parse_args(argv)
    seed = resolve_seed(args.seed)
    findings = Findings(NAME, verbose=args.verbose or args.case is not None or args.live_case is not None)
    started = time.monotonic()
    deadline = started + args.seconds
    codec_deadline = started + (args.seconds * 0.5 if args.live else args.seconds)
    done = 0
    if args.case is not None:
        request_case(findings, seed, args.case)
        extension_case(findings, seed, args.case)
        done = 1
    elif args.live_case is None:
        for index in range(args.count):
            if time.monotonic() >= codec_deadline:
                break
            request_case(findings, seed, index)
            if index % 4 == 0:
                extension_case(findings, seed, index // 4)
            done += 1
    live: Dict[str, Any] = {}
    if args.live and args.case is None:
        live_count = args.live_count if args.live_count is not None else min(2000, max(1, args.count // 5))
        if args.live_case is not None:
            live_count = args.live_case + 1
        live = live_session(NAME, findings, pick(live_cases(seed, live_count, deadline), args.live_case),
                            deadline=deadline, parallel=args.parallel)
    elapsed = time.monotonic() - started
    print("%s: seed=%d codec_cases=%d live_cases=%d (upgraded %d, http errors %d, inconclusive %d) findings=%d %s "
          "server_rss_kib=%s->%s (peak %s) elapsed=%.1fs" % (
              NAME, seed, done, live.get("finished", 0), live.get("upgraded", 0), live.get("http-error", 0),
                  live.get("inconclusive", 0),
              len(findings), findings.kinds() or "", live.get("rss_start_kib", "-"), live.get("rss_end_kib", "-"),
              live.get("peak_rss_kib", "-"), elapsed))
    return 1 if len(findings) else 0


if __name__ == "__main__":
    sys.exit(main())
