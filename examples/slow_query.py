"""A slow database call that never stalls the other connections: Loop.run_in_thread with SQLite.

    python3 examples/slow_query.py --host 127.0.0.1 --port 8080

A WebSocket client that sends ``query <word>`` gets ``result <word>: N`` (how
many rows of the ``words`` table start with it) after a query that takes half
a second on purpose (``pause(0.5)``, an SQL function this program adds, stands
for a slow index scan or a busy database).  Any other message is echoed at once,
even while twenty queries run: the queries run on the loop's threads
(``conn.loop.run_in_thread``), and their answers come back on the loop thread.
The tutorial page is docs/tutorial/slow-work.md.
"""

import argparse
import logging
import os
import sqlite3
import sys
import tempfile
import threading
import time

try:
    import ratchet_sel  # noqa: F401  (a bundle, an install, or PYTHONPATH)
except ImportError:
    _checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(_checkout, "ratchet_sel", "__init__.py")):
        raise
    sys.path.insert(0, _checkout)

from ratchet_sel import IoServer, MessageComponent, WsServer, exit_on_startup_error  # noqa: E402
from ratchet_sel.io import ThreadJobTimeout, ThreadPoolFull  # noqa: E402

WORDS = ["apple", "apricot", "banana", "blueberry", "cherry", "grape", "lemon", "lime", "mango", "melon"]


def create_database(path):
    """Write the ``words`` table into a new SQLite file."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS words (word TEXT PRIMARY KEY)")
        db.executemany("INSERT OR IGNORE INTO words VALUES (?)", [(word,) for word in WORDS])
    db.close()


class Words:
    """The blocking side: one SQLite connection per thread (sqlite3 connections stay in their thread)."""

    def __init__(self, path, delay=0.5, pause=time.sleep):
        self.path = path
        self.delay = delay
        self.pause = pause          # SQL pause(seconds): time.sleep here, an event in the tests
        self.local = threading.local()

    def count_starting_with(self, prefix):
        """Runs on a pool thread: it may block as long as it needs."""
        db = getattr(self.local, "db", None)
        if db is None:
            db = self.local.db = sqlite3.connect(self.path)
            db.create_function("pause", 1, lambda seconds: self.pause(seconds) or 0)
        (count,) = db.execute("SELECT count(*) + pause(?) FROM words WHERE word LIKE ? || '%'",
                              (self.delay, prefix)).fetchone()
        return count


class SlowQueries(MessageComponent):
    """``query WORD`` runs a slow query off the loop; anything else is echoed at once."""

    def __init__(self, words, timeout=5.0):
        self.words = words
        self.timeout = timeout

    def on_message(self, conn, msg):
        if not isinstance(msg, str) or not msg.startswith("query "):
            conn.send(msg)                                   # the fast path: echo
            return
        word = msg[len("query "):]

        def answer(count):                                  # on the loop thread
            if conn.is_open:                                 # the client may have left meanwhile
                conn.send("result %s: %d" % (word, count))

        def failed(exc):                                    # on the loop thread too
            if isinstance(exc, ThreadPoolFull):
                conn.send("busy %s: try again later" % word)
            elif isinstance(exc, ThreadJobTimeout):
                conn.send("timeout %s" % word)
            else:
                logging.error("query %r failed: %s", word, exc)
                conn.send("error %s" % word)

        conn.loop.run_in_thread(self.words.count_starting_with, word, callback=answer, errback=failed,
                                timeout=self.timeout)


def main():
    parser = argparse.ArgumentParser(description="Slow SQLite queries off the loop; echo for anything else.")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--db", help="SQLite file (default: a new one in a temporary folder)")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds each query takes (default: %(default)s)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory() as folder:
        path = args.db or os.path.join(folder, "words.db")
        create_database(path)
        with exit_on_startup_error():
            server = IoServer.factory(WsServer(SlowQueries(Words(path, args.delay))), args.port, args.host)
        logging.info("slow queries on ws://%s:%d/", args.host, server.port)
        server.run()


if __name__ == "__main__":
    main()
