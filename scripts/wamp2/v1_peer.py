# -*- coding: utf-8 -*-
"""The WAMP v1 side of v1v2.mjs: AutobahnPython 0.8.15 (Python 2.7 + Twisted).

    py2 scripts/wamp2/v1_peer.py SITE_DIR ws://127.0.0.1:PORT/ TOPIC

Connects with the `wamp` subprotocol, subscribes to TOPIC and publishes
{"from": "v1", "n": 1} to TOPIC with excludeMe=False.  Its own event coming back
proves the SUBSCRIBE was handled (one connection's messages are handled in order),
so only then it prints `READY <session>`.  It prints every event it receives as
`EVENT <json>`.  On the event "from-v2" it publishes {"args": [1], "kwargs": {"x": 2}}
(excludeMe); it exits 0 once it has also seen {"args": ["a", "b"], "kwargs": {"k": 1}}
(how a v2 publication of another shape reaches v1, per docs/wamp.md).  Exits 1 after 30 seconds without it.  (Python 2.7 code.)
"""
from __future__ import print_function

import json
import site
import sys

SITE_DIR, URL, TOPIC = sys.argv[1], sys.argv[2], sys.argv[3]
site.addsitedir(SITE_DIR)
sys.path.remove(SITE_DIR)
sys.path.insert(0, SITE_DIR)

from twisted.internet import reactor  # noqa: E402

from autobahn.twisted.websocket import connectWS  # noqa: E402
from autobahn.wamp1.protocol import WampClientFactory, WampClientProtocol  # noqa: E402

status = [1]


def say(line):
    print(line)
    sys.stdout.flush()


class Peer(WampClientProtocol):
    def onSessionOpen(self):
        self.ready = False
        self.subscribe(TOPIC, self.on_event)
        self.publish(TOPIC, {"from": "v1", "n": 1}, excludeMe=False)

    def on_event(self, topic, event):
        say("EVENT %s" % json.dumps(event, sort_keys=True, separators=(",", ":")))
        if not self.ready and event == {"from": "v1", "n": 1}:
            self.ready = True
            say("READY %s" % self.session_id)
        if event == "from-v2":
            # The documented mapping of other shapes: a v1 event that is exactly
            # {"args": [...], "kwargs": {...}} reaches v2 subscribers as those.
            self.publish(TOPIC, {"args": [1], "kwargs": {"x": 2}}, excludeMe=True)
            self.seen_v2 = True
        if event == {"args": ["a", "b"], "kwargs": {"k": 1}} and getattr(self, "seen_v2", False):
            status[0] = 0
            reactor.callLater(0.5, reactor.stop)


def main():
    factory = WampClientFactory(URL)
    factory.protocol = Peer
    connectWS(factory)
    reactor.callLater(30, reactor.stop)
    reactor.run()
    if status[0]:
        say("FAIL: no v2 publication arrived within 30 s")
    return status[0]


if __name__ == "__main__":
    sys.exit(main())
