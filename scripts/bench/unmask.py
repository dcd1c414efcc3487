"""Unmasking speed on one payload: ratchet_sel.apply_mask against a per-byte loop.

For context it also times the peers' own unmasking, which are C extensions
(websockets.speedups, aiohttp's Cython mask) when they are installed.
Prints one JSON object: {"size": n, "results": {name: {"gib_s": x, "seconds": t}}}.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from ratchet_sel import accelerator  # noqa: E402
from ratchet_sel.websocket.rfc6455 import apply_mask, apply_mask_python  # noqa: E402


def per_byte(data, mask):
    """The textbook loop: one XOR per byte."""
    out = bytearray(len(data))
    for i in range(len(data)):
        out[i] = data[i] ^ mask[i & 3]
    return bytes(out)


def best_time(fn, min_total=0.3, max_reps=200):
    """The fastest of repeated calls (at least 3, until min_total seconds were spent)."""
    best = float("inf")
    spent = 0.0
    reps = 0
    while reps < 3 or (spent < min_total and reps < max_reps):
        t0 = time.perf_counter()
        fn()
        t = time.perf_counter() - t0
        best = min(best, t)
        spent += t
        reps += 1
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=1024 * 1024)
    parser.add_argument("--min-time", type=float, default=0.3)
    args = parser.parse_args()
    data = os.urandom(args.size)
    mask = os.urandom(4)
    expected = per_byte(data, mask)
    if apply_mask(data, mask) != expected:
        raise SystemExit("apply_mask gives a wrong result")

    results = {}

    def measure(name, fn):
        t = best_time(fn, min_total=args.min_time if name != "per-byte loop" else 0.0)
        results[name] = {"seconds": t, "gib_s": args.size / t / 2 ** 30}

    # Ours first: importing the peers' packages (aiohttp above all) into this
    # process was measured to slow the pure-Python XOR by about 40%.
    measure("ratchet_sel apply_mask", lambda: apply_mask(data, mask))
    if accelerator.enabled:  # the pure-Python reference too, which the line above then is not
        if apply_mask_python(data, mask) != expected:
            raise SystemExit("apply_mask_python gives a wrong result")
        measure("ratchet_sel apply_mask_python (pure)", lambda: apply_mask_python(data, mask))
    measure("per-byte loop", lambda: per_byte(data, mask))
    try:
        from websockets.speedups import apply_mask as ws_mask
        if ws_mask(data, mask) == expected:
            measure("websockets.speedups (C)", lambda: ws_mask(data, mask))
    except ImportError:
        pass
    try:
        from aiohttp._websocket.helpers import websocket_mask

        def aio():
            buf = bytearray(data)
            websocket_mask(mask, buf)
            return buf
        if bytes(aio()) == expected:
            measure("aiohttp websocket_mask (%s)" % ("Cython" if "cython" in websocket_mask.__name__ else "Python"),
                    aio)
    except ImportError:
        pass

    print(json.dumps({"size": args.size, "results": results}))


if __name__ == "__main__":
    main()
