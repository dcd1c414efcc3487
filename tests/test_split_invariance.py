"""The same bytes give the same result however they are split (a property over the fuzzers' corpora).

Every codec case of ``scripts/fuzz_frames.py`` (RFC 6455 frames, with and
without permessage-deflate, and draft-76 streams) and every request of
``scripts/fuzz_handshake.py`` is fed three ways -- whole, one byte at a time,
and in random pieces from a fixed seed -- and the results must be identical:
the same events in the same order, the same close codes and the same reasons
(for requests: the same request, or the same status and reason).
"""

import os
import random
import sys
from typing import Any, Callable, List, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
if SCRIPTS not in sys.path:
    sys.path.insert(0, SCRIPTS)

import fuzz_frames  # noqa: E402
import fuzz_handshake  # noqa: E402
from _fuzz_common import case_rng  # noqa: E402

from ratchet_sel.http.request import HttpError, RequestParser  # noqa: E402

pytestmark = pytest.mark.timeout(300)

FRAME_SEEDS = (20241125, 7)
FRAME_CASES = 1000          # per seed
REQUEST_SEEDS = (1, 99)
REQUEST_CASES = 1000        # per seed
BYTEWISE_LIMIT = 2048      # longer inputs go byte by byte up to here (all headers), then in one piece


def three_ways(data: bytes, rng: random.Random) -> List[Tuple[str, List[bytes]]]:
    """The whole input, one byte at a time, and random pieces (a few hundred for the longest inputs)."""
    head, tail = data[:BYTEWISE_LIMIT], data[BYTEWISE_LIMIT:]
    bytewise = [head[i:i + 1] for i in range(len(head))] + ([tail] if tail else [])
    pieces = []
    pos = 0
    scale = 1 + len(data) // 100000
    while pos < len(data):
        size = rng.choice((1, 2, 3, 5, 17, 64, 300, 4096)) * scale
        pieces.append(data[pos:pos + size])
        pos += size
    return [("whole", [data]), ("bytewise", bytewise), ("random", pieces)]


def frame_outcome(make: Callable[[], Any], pieces: List[bytes]) -> List[Any]:
    parser = make()
    events: List[Any] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    return fuzz_frames.normalise(events)


def request_outcome(pieces: List[bytes]) -> Tuple[Any, ...]:
    parser = RequestParser()
    try:
        for position, piece in enumerate(pieces):
            request = parser.feed(piece)
            if request is not None:
                rest = parser.remaining + b"".join(pieces[position + 1:])
                return ("request",) + fuzz_handshake.summary(request) + (rest,)
    except HttpError as exc:
        return ("refused", exc.status, exc.reason)
    return ("incomplete",)


def differences(outcomes: List[Tuple[str, Any]]) -> List[str]:
    reference = outcomes[0][1]
    return ["%s: %r / whole: %r" % (name, str(outcome)[-300:], str(reference)[-300:])
            for name, outcome in outcomes[1:] if outcome != reference]


@pytest.mark.parametrize("seed", FRAME_SEEDS)
def test_frame_corpus_gives_the_same_events_codes_and_reasons_however_split(seed):
    failures = []
    failed_with_reason = 0
    for index in range(FRAME_CASES):
        case_id, make, data, _, _, _ = fuzz_frames.codec_input(seed, index)
        rng = random.Random("split/%d/%d" % (seed, index))
        outcomes = [(name, frame_outcome(make, pieces)) for name, pieces in three_ways(data, rng)]
        failed_with_reason += any(event[0] == "Failure" for event in outcomes[0][1])
        for difference in differences(outcomes):
            failures.append("%s (python scripts/fuzz_frames.py --seed %d --case %d --no-live): %s"
                            % (case_id, seed, index, difference))
    assert not failures, "\n".join(failures[:10]) + "\n(%d in all)" % len(failures)
    assert failed_with_reason > FRAME_CASES // 10     # the corpus really exercises the failures


@pytest.mark.parametrize("seed", REQUEST_SEEDS)
def test_request_corpus_gives_the_same_request_or_status_and_reason_however_split(seed):
    failures = []
    refused = 0
    for index in range(REQUEST_CASES):
        spec, data, _ = fuzz_handshake.generate(case_rng(seed, "handshake", index))
        rng = random.Random("split/%d/%d" % (seed, index))
        outcomes = [(name, request_outcome(pieces)) for name, pieces in three_ways(data, rng)]
        refused += outcomes[0][1][0] == "refused"
        for difference in differences(outcomes):
            failures.append("handshake seed=%d case=%d %s: %s" % (seed, index, spec.kind, difference))
    assert not failures, "\n".join(failures[:10]) + "\n(%d in all)" % len(failures)
    assert refused > REQUEST_CASES // 10


# -- the examples the issue reported --------------------------------------------------------------------

def _deflate_parser(offer: bytes, limit: int = 1024 * 1024) -> Callable[[], Any]:
    from ratchet_sel.websocket.deflate import PerMessageDeflate
    from ratchet_sel.websocket.rfc6455 import FrameParser
    request = RequestParser().feed(b"GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Extensions: " + offer + b"\r\n\r\n")

    def make() -> Any:
        extension = PerMessageDeflate(client_max_window_bits=9).negotiate(request)[0]
        return FrameParser(max_message_size=limit, extension=extension)
    return make


@pytest.mark.parametrize("make,hex_frame", [
    # compressed with a 15-bit window although client_max_window_bits=9 was agreed
    (_deflate_parser(b"permessage-deflate; client_max_window_bits"),
     "c29800000000ca48cdc9c95728cf2fca4951ac1a05a380062003298d0100"),
    # "\xff" + "a" * 200, compressed, over a 100-byte limit
    (_deflate_parser(b"permessage-deflate", limit=100), "c18600000000fa9f384c0000"),
    # a text message ending inside a UTF-8 sequence
    (lambda: __import__("ratchet_sel.websocket.rfc6455", fromlist=["FrameParser"]).FrameParser(),
     "818100000000c2"),
], ids=["window-ignored", "limit-and-utf8", "utf8-reason"])
def test_reported_examples(make, hex_frame, request):
    data = bytes.fromhex(hex_frame)
    outcomes = [(name, frame_outcome(make, pieces)) for name, pieces in three_ways(data, random.Random(1))]
    assert not differences(outcomes)
    expected = {
        "window-ignored": [("Message", "bytes", b"hello world!" + b"z" * 600 + b"hello world!")],
        "limit-and-utf8": [("Failure", 1009, "decompressed message exceeds the limit of 100 bytes")],
        "utf8-reason": [("Failure", 1007, "invalid UTF-8 in text message")],
    }[request.node.callspec.id]
    assert outcomes[0][1] == expected
