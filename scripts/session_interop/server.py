"""The WebSocket side of the session interop check: this checkout, standard library only.

Usage: ``python3 server.py CONFIG.json``.  Serves ``App("127.0.0.1", 0)``
with one route per session handler; each connection is sent its
``conn.session`` (see common.comparable) as one JSON text message, then
closed.  Prints whether any third-party module got loaded, then the URL.
"""

import json
import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(os.path.dirname(HERE))]

from common import comparable  # noqa: E402
from ratchet_sel import App, MessageComponent  # noqa: E402
from ratchet_sel.session import (DjangoSessionHandler, DjangoSignedCookieHandler,  # noqa: E402
                                 FlaskSessionHandler, SessionProvider)

THIRD_PARTY = ("flask", "django", "itsdangerous", "werkzeug", "markupsafe", "jinja2")


class ShowSession(MessageComponent):
    """Sends the connection's session and closes."""

    def on_open(self, conn):
        conn.send(json.dumps(comparable(dict(conn.session)), sort_keys=True))
        conn.close()


def main():
    with open(sys.argv[1], encoding="utf-8") as file:
        config = json.load(file)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = {
        "/flask": FlaskSessionHandler(config["flask_secret"]),
        "/flask-rotated": FlaskSessionHandler("a newer flask key", fallback_keys=[config["flask_secret"]]),
        "/django-db": DjangoSessionHandler(config["django_db"], config["django_secret"]),
        "/django-db-rotated": DjangoSessionHandler(config["django_db"], "a newer django key",
                                                   fallback_keys=[config["django_secret"]]),
        "/django-cookie": DjangoSignedCookieHandler(config["django_secret"]),
    }
    app = App("127.0.0.1", 0)
    for path, handler in handlers.items():
        app.route(path, SessionProvider(ShowSession(), handler), allowed_origins="*")
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in THIRD_PARTY)
    print("third-party modules loaded: %s" % (", ".join(loaded) or "none"), flush=True)
    print("listening on ws://127.0.0.1:%d/" % app.port, flush=True)
    app.run()


if __name__ == "__main__":
    main()
