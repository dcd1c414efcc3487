#!/usr/bin/env python3
"""Measure permessage-deflate settings: zlib memory per connection against compression ratio.

For each setting it negotiates the extension for many connections, has each one
inflate a client message and compress an outgoing one (so that every lazily
made zlib object exists), and reports the memory held per connection (zlib's
allocations go through Python's allocator, so tracemalloc sees them) and the
compressed size of three workloads: a 16 KiB JSON document, a stream of 200
small chat-like JSON messages, and 64 KiB of random bytes.

    python3 scripts/measure_deflate.py [--connections 200]

It is how the defaults of ratchet_sel.websocket.deflate.PerMessageDeflate were
chosen; see docs/deflate.md for a run and the reasoning.
"""

import argparse
import json
import os
import random
import sys
import tracemalloc
import zlib

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ratchet_sel.http.request import RequestParser  # noqa: E402
from ratchet_sel.websocket.deflate import PerMessageDeflate  # noqa: E402
from ratchet_sel.websocket.rfc6455 import OP_TEXT, FrameParser, encode_frame  # noqa: E402

OFFER = "permessage-deflate; client_max_window_bits"


def json_document(size: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    items = []
    while len(json.dumps(items)) < size:
        items.append({"id": rng.randrange(10 ** 6), "user": "user%d" % rng.randrange(500),
                      "status": rng.choice(["online", "away", "busy"]), "score": round(rng.random() * 100, 2),
                      "tags": rng.sample(["red", "green", "blue", "admin", "beta", "pro"], 2)})
    return json.dumps(items)[:size]


def chat_messages(count: int, seed: int = 2) -> list:
    rng = random.Random(seed)
    words = "hello there how are you doing today the meeting starts at noon see you soon ok".split()
    return [json.dumps({"type": "message", "room": "general", "from": "user%d" % rng.randrange(50),
                        "text": " ".join(rng.choice(words) for _ in range(rng.randrange(3, 12)))})
            for _ in range(count)]


def client_frame(payload: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return encode_frame(OP_TEXT, data[:-4], rsv1=True, mask=os.urandom(4))


def request():
    return RequestParser().feed(("GET / HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Extensions: %s\r\n\r\n"
                                 % OFFER).encode())


def memory_per_connection(config: PerMessageDeflate, connections: int) -> float:
    frame = client_frame(json_document(2048).encode())
    outgoing = json_document(2048)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = []
    for _ in range(connections):
        extension, _ = config.negotiate(request())
        parser = FrameParser(extension=extension)
        parser.feed(frame)
        extension.encode_message(outgoing)
        keep.append((extension, parser))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / connections


def compressed_sizes(config: PerMessageDeflate) -> tuple:
    extension, _ = config.negotiate(request())

    def size(message) -> int:
        return sum(len(frame) for frame in extension.encode_message(message))

    document = json_document(16 * 1024)
    chat = chat_messages(200)
    noise = os.urandom(64 * 1024)
    return (size(document), len(document)), (sum(size(m) for m in chat), sum(len(m) for m in chat)), \
        (size(noise), len(noise))


SETTINGS = [
    ("default: no context takeover, window 15, memLevel 8, client window 12", dict()),
    ("no context takeover, window 12, memLevel 8", dict(server_max_window_bits=12)),
    ("no context takeover, window 15, memLevel 5", dict(mem_level=5)),
    ("context takeover, window 15, memLevel 8", dict(server_no_context_takeover=False)),
    ("context takeover, window 12, memLevel 5", dict(server_no_context_takeover=False, server_max_window_bits=12,
                                                    mem_level=5)),
    ("context takeover, window 10, memLevel 4", dict(server_no_context_takeover=False, server_max_window_bits=10,
                                                    mem_level=4)),
    ("context takeover, window 15, memLevel 8, no threshold", dict(server_no_context_takeover=False,
                                                                  threshold=0)),
    ("no context takeover, no threshold", dict(threshold=0)),
    ("client window 15 (inflater 32 KiB)", dict(client_max_window_bits=15)),
    ("client window 10", dict(client_max_window_bits=10)),
]


def inbound_ratio(config: PerMessageDeflate) -> float:
    """What the client achieves on the 16 KiB document within the window we allow it."""
    extension, _ = config.negotiate(request())
    document = json_document(16 * 1024).encode()
    compressor = zlib.compressobj(6, zlib.DEFLATED, -max(extension.client_bits, 9))
    return len(compressor.compress(document) + compressor.flush(zlib.Z_SYNC_FLUSH)) / len(document)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    print("| setting | KiB per connection | 16 KiB JSON | 200 chat messages | 64 KiB random | 16 KiB JSON from the client |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, options in SETTINGS:
        config = PerMessageDeflate(**options)
        memory = memory_per_connection(config, args.connections)
        (doc, doc_raw), (chat, chat_raw), (noise, noise_raw) = compressed_sizes(PerMessageDeflate(**options))
        print("| %s | %.1f | %.1f%% | %.1f%% | %.1f%% | %.1f%% |" % (
            name, memory / 1024, 100 * doc / doc_raw, 100 * chat / chat_raw, 100 * noise / noise_raw,
            100 * inbound_ratio(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
