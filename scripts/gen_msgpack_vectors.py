#!/usr/bin/env python3
"""Regenerate tests/data/msgpack_oracle.json with the ``msgpack`` package (the oracle).

Usage: ``python3 -m venv /tmp/mp && /tmp/mp/bin/pip install msgpack &&
PYTHONPATH=. /tmp/mp/bin/python scripts/gen_msgpack_vectors.py``.  For each
value of tests/msgpack_values.py it stores the packed bytes (hex, or their
SHA-256 and length when longer than 1 KiB, to keep the file small).
"""

import argparse
import hashlib
import json
import os
import sys

import msgpack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from msgpack_values import VALUES  # noqa: E402


def main() -> int:
    """Write the vectors (to ``--output``, default the committed file)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="where to write (default: tests/data/msgpack_oracle.json)")
    args = parser.parse_args()
    entries = []
    for value in VALUES:
        data = msgpack.packb(value, use_bin_type=True)
        if len(data) <= 1024:
            entries.append({"hex": data.hex()})
        else:
            entries.append({"sha256": hashlib.sha256(data).hexdigest(), "length": len(data)})
    path = args.output or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                                       "msgpack_oracle.json")
    with open(path, "w") as out:
        json.dump({"generator": "msgpack %s: packb(value, use_bin_type=True) for each of tests/msgpack_values.py"
                   % ".".join(map(str, msgpack.version)), "entries": entries}, out, indent=1)
        out.write("\n")
    print("wrote %d entries to %s" % (len(entries), path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
