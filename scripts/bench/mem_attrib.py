"""Where ratchet_sel's memory per idle connection goes (tracemalloc), for the benchmark notes.

    python3 scripts/bench/mem_attrib.py [--conns 10000] [--client PATH_TO_WSLOAD]

Runs the benchmark app of server_ratchet_sel.py in this process (the loop in a
thread), opens the connections with wsload (broadcast mode, --hold, no
broadcast), and prints the allocations that grew, by source line, plus the
RSS delta per connection.
"""

import argparse
import base64
import hashlib
import os
import subprocess
import sys
import threading
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)

from _common import raise_nofile  # noqa: E402
from server_ratchet_sel import BenchApp  # noqa: E402

from ratchet_sel import IoServer, WsServer  # noqa: E402


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--client", default="/tmp/ratchet_sel-bench/wsload")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    raise_nofile()
    server = IoServer(WsServer(BenchApp()), "127.0.0.1", 0)
    threading.Thread(target=server.loop.run, daemon=True).start()
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
    common = ["--port", str(server.port), "--key", key, "--accept", accept, "--timeout", "120"]
    # warm up: one connection, one message
    subprocess.run([args.client, "echo", "--conns", "1", "--warmup", "0", "--duration", "0.2"] + common,
                   stdout=subprocess.DEVNULL, check=True)
    time.sleep(0.5)
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    rss0 = rss_kib()
    proc = subprocess.Popen([args.client, "broadcast", "--conns", str(args.conns), "--count", "0", "--hold"] + common,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("READY"):
            break
    time.sleep(1.0)
    rss1 = rss_kib()
    after = tracemalloc.take_snapshot()
    proc.stdin.write("GO\n")
    proc.stdin.flush()
    proc.communicate(timeout=60)
    stats = after.compare_to(before, "lineno")
    grown = sum(s.size_diff for s in stats)
    print("RSS delta: %.0f B/conn (with tracemalloc running); traced Python allocations: %.0f B/conn"
          % ((rss1 - rss0) * 1024 / args.conns, grown / args.conns))
    print("%8s %8s  %s" % ("B/conn", "objs/c", "where"))
    for s in stats[:args.top]:
        fr = s.traceback[0]
        path = fr.filename.replace(os.path.dirname(os.path.dirname(HERE)) + "/", "")
        print("%8.0f %8.2f  %s:%d" % (s.size_diff / args.conns, s.count_diff / args.conns, path, fr.lineno))
    os._exit(0)


if __name__ == "__main__":
    main()
