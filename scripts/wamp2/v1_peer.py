# -*- coding: utf-8 -*-
"""The WAMP v1 side of v1v2.mjs: AutobahnPython 0.8.15 (Python 2.7 + Twisted).

    py2 scripts/wamp2/v1_peer.py SITE_DIR ws://127.0.0.1:PORT/ TOPIC

Connects with the `wamp` subprotocol, subscribes to TOPIC and publishes
{"from": "v1", "n": 1} to TOPIC with excludeMe=False.  Its own event coming back
proves the SUBSCRIBE was handled (one connection's messages are handled in order),
so only then it prints `READY <session>`.  It prints every event it receives as
`EVENT <json>` until it has seen one whose value is "from-v2", then exits 0.  Exits 1 after 30 seconds without it.  (Python 2.7 code.)
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
            status[0] = 0
            reactor.callLater(0.1, reactor.stop)


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
