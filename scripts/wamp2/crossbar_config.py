"""Prints a Crossbar.io config.json: the reference router the WAMP v2 proofs run against.

    python3 crossbar_config.py PORT [REALM]

One router worker, realm REALM (default realm1) whose anonymous role may call,
register, publish and subscribe any URI, and one WebSocket transport on
127.0.0.1:PORT offering the json and msgpack serializers (wamp.2.json,
wamp.2.msgpack).  Nothing is disclosed, as in ratchet_sel's router defaults.
"""

import json
import sys


def config(port, realm="realm1"):
    """The config as a dict."""
    everything = {"call": True, "register": True, "publish": True, "subscribe": True}
    return {
        "version": 2,
        "controller": {},
        "workers": [{
            "type": "router",
            "realms": [{
                "name": realm,
                "roles": [{
                    "name": "anonymous",
                    "permissions": [{
                        "uri": "", "match": "prefix", "allow": everything,
                        "disclose": {"caller": False, "publisher": False}, "cache": True,
                    }],
                }],
            }],
            "transports": [{
                "type": "websocket",
                "endpoint": {"type": "tcp", "interface": "127.0.0.1", "port": port},
                "serializers": ["json", "msgpack"],
            }],
        }],
    }


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or not sys.argv[1].isdigit():
        sys.stderr.write(__doc__)
        sys.exit(2)
    print(json.dumps(config(int(sys.argv[1]), *sys.argv[2:]), indent=2))
