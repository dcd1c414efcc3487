"""Our client against one third-party echo server: text, binary, 1 MiB, compression.

Usage: python check.py URL NAME [CAFILE]
Exits non-zero with a message naming the first check that failed.
"""

import os
import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ratchet_sel.client import connect  # noqa: E402


def main() -> int:
    url, name = sys.argv[1], sys.argv[2]
    context = ssl.create_default_context(cafile=sys.argv[3]) if len(sys.argv) > 3 else None
    with connect(url, ssl_context=context, timeout=20) as conn:
        header = conn.response_headers.get("Sec-WebSocket-Extensions") or ""
        assert conn.extension is not None and "permessage-deflate" in header, \
            "%s: compression not negotiated (%r)" % (name, header)
        conn.send("héllo from ratchet_sel")
        assert conn.recv(20) == "héllo from ratchet_sel", "%s: text echo" % name
        conn.send(bytes(range(256)))
        assert conn.recv(20) == bytes(range(256)), "%s: binary echo" % name
        big = os.urandom(1024 * 1024)
        conn.send(big)
        assert conn.recv(60) == big, "%s: 1 MiB binary echo" % name
        text = "compressible " * (1024 * 1024 // 13)
        conn.send(text, fragment_size=64 * 1024)
        assert conn.recv(60) == text, "%s: 1 MiB fragmented text echo" % name
        conn.ping(b"interop")
        conn.send("after ping")
        assert conn.recv(20) == "after ping" and b"interop" in conn.pongs, "%s: pong" % name
    assert conn.close_code == 1000, "%s: close code %r" % (name, conn.close_code)
    print("ok   %-28s text, binary, 1 MiB, fragments, ping; %s" % (name, header))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as exc:
        print("FAIL %s" % exc, file=sys.stderr)
        sys.exit(1)
