"""Summarize py-spy collapsed stacks (``py-spy record --format raw``): self and total share per function.

    python3 scripts/bench/spy_summary.py FILE [--top N]

Each line of the input is ``frame;frame;...;frame COUNT`` with frames as
``function (file:line)``; a function's *self* share counts the samples where it
is the innermost frame, its *total* share the samples where it is anywhere on
the stack (once per sample).
"""

import argparse
import collections
import os
import re
import sys

_LINE = re.compile(r"\s*\(([^()]*):\d+\)$")


def frame_name(frame):
    """'send (ratchet_sel/server.py:148)' -> 'send (server.py)', dropping the line number."""
    m = _LINE.search(frame)
    if not m:
        return frame.strip()
    path = m.group(1)
    parts = path.split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return "%s (%s)" % (frame[:m.start()].strip(), short)


def summarize(path):
    self_c = collections.Counter()
    total_c = collections.Counter()
    n = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            try:
                c = int(count)
            except ValueError:
                continue
            frames = [frame_name(x) for x in stack.split(";") if x]
            # the first frame is the thread name ("process 123:..."); skip non-code frames
            frames = [x for x in frames if "(" in x]
            if not frames:
                continue
            n += c
            self_c[frames[-1]] += c
            for fr in set(frames):
                total_c[fr] += c
    return n, self_c, total_c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    n, self_c, total_c = summarize(args.file)
    if not n:
        sys.exit("no samples in %s" % args.file)
    print("%s: %d samples" % (os.path.basename(args.file), n))
    print("  self%%  function")
    for fn, c in self_c.most_common(args.top):
        print("  %5.1f  %s" % (100.0 * c / n, fn))
    print("  total%%  function")
    for fn, c in total_c.most_common(args.top):
        print("  %6.1f  %s" % (100.0 * c / n, fn))


if __name__ == "__main__":
    main()
