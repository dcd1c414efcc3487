"""Chat rooms behind App: two routes, an origin check, and a Flask session.

Run from a checkout::

    python examples/app_routes.py                 # http://localhost:8080/
    python examples/app_routes.py --port 0        # any free port (logged)

Routes (both answer only for the Host name ``--http-host``, localhost by default):

- ``/``: the page.  ``/?login=NAME`` logs in by setting the same signed
  ``session`` cookie a Flask app would set with ``session["username"] = NAME``.
  Browsers send no Origin header when they navigate, so this route allows
  any origin.
- ``/room/{name}``: a WebSocket chat room.  ``App`` wraps it in ``WsServer``
  and in ``OriginCheck`` (only pages from the same host name may connect), and
  ``SessionProvider`` gives every connection ``conn.session``: the Flask
  session.  Connections without a valid session are closed with 1008.

To share the login with a real Flask app, give both the same secret key
(``--secret-key`` or the ``FLASK_SECRET_KEY`` environment variable) and serve
them under the same host name, so the browser sends Flask's cookie here.
"""

import argparse
import html
import logging
import os
import sys
from typing import Any, Dict, Set

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ratchet_sel import App, MessageComponent, Responder, broadcast, exit_on_startup_error  # noqa: E402
from ratchet_sel.http import Response  # noqa: E402
from ratchet_sel.session import FlaskSessionHandler, SessionProvider, load_session  # noqa: E402
from ratchet_sel.websocket import CloseCode  # noqa: E402

log = logging.getLogger("app_routes")

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ratchet_sel rooms</title>
<style>body{font:16px/1.4 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
#log{list-style:none;padding:.5rem;height:18rem;overflow-y:auto;border:1px solid #ccc}</style></head>
<body><h1>Rooms</h1>%s</body></html>
"""

LOGIN_FORM = """<form method="get" action="/"><label>Your name
<input name="login" maxlength="32" autofocus required></label> <button>Log in</button></form>"""

ROOM_UI = """<p>Logged in as <b>%(user)s</b>. Room: <b id="room">lobby</b>
(<span id="status">connecting</span>) &middot; <a href="/?logout=1">log out</a></p>
<ul id="log"></ul>
<form id="form"><input id="message" autocomplete="off" autofocus> <button>Send</button></form>
<script>
const log = document.getElementById("log"), input = document.getElementById("message");
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/room/lobby");
const show = (text) => { const li = document.createElement("li"); li.textContent = text;
  log.appendChild(li); log.scrollTop = log.scrollHeight; };
ws.onopen = () => { document.getElementById("status").textContent = "connected"; };
ws.onclose = (e) => { document.getElementById("status").textContent = "closed: " + e.code + " " + e.reason; };
ws.onmessage = (e) => show(e.data);
document.getElementById("form").addEventListener("submit", (e) => {
  e.preventDefault(); if (input.value) { ws.send(input.value); input.value = ""; } });
</script>"""


class Rooms(MessageComponent):
    """Chat rooms named by the URL (``/room/{name}``), for logged-in users only."""

    def __init__(self) -> None:
        self.rooms: Dict[str, Set[Any]] = {}

    def on_open(self, conn: Any) -> None:
        user = conn.session.get("username")
        if not user:
            conn.close(CloseCode.POLICY_VIOLATION, "log in first")
            return
        conn.user = user
        conn.room = conn.request.params["name"]
        members = self.rooms.setdefault(conn.room, set())
        members.add(conn)
        conn.send("welcome to %s, %s (%d here)" % (conn.room, user, len(members)))
        broadcast(members, "%s joined" % user, exclude=conn)

    def on_message(self, conn: Any, msg: Any) -> None:
        if isinstance(msg, str):
            broadcast(self.rooms.get(conn.room, ()), "%s: %s" % (conn.user, msg))

    def on_close(self, conn: Any) -> None:
        members = self.rooms.get(getattr(conn, "room", None), set())
        if conn in members:
            members.discard(conn)
            broadcast(members, "%s left" % conn.user)
            if not members:
                del self.rooms[conn.room]

    def on_error(self, conn: Any, exc: BaseException) -> None:
        conn.close(CloseCode.INTERNAL_ERROR, "internal error")


def page_handler(sessions: FlaskSessionHandler) -> Any:
    """The ``/`` page: log in, log out, or show the room."""

    def page(request: Any) -> Response:
        name = request.query.get("login", "").strip()[:32]
        if name:
            cookie = "session=%s; Path=/; HttpOnly; SameSite=Lax" % sessions.dumps({"username": name})
            return Response(303, b"", {"Location": "/", "Set-Cookie": cookie})
        if "logout" in request.query:
            return Response(303, b"", {"Location": "/", "Set-Cookie": "session=; Path=/; Max-Age=0"})
        session = load_session(sessions, request)
        user = session.get("username")
        body = ROOM_UI % {"user": html.escape(user)} if user else LOGIN_FORM
        return Response(200, PAGE % body, {"Content-Type": "text/html; charset=utf-8",
                                           "Cache-Control": "no-store"})

    return page


def main() -> int:
    """Parse the command line, build the App, serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--http-host", default="localhost", help="Host name the routes answer for")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free one)")
    parser.add_argument("--secret-key", default=os.environ.get("FLASK_SECRET_KEY"),
                        help="the Flask app's SECRET_KEY (default: $FLASK_SECRET_KEY)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = args.secret_key
    if not secret:
        secret = "dev-only-secret"
        log.warning("no --secret-key or FLASK_SECRET_KEY: using a development secret")
    sessions = FlaskSessionHandler(secret)

    with exit_on_startup_error():  # a busy port: one logged line and exit status 1
        app = App(args.http_host, args.port, args.address)
    app.route("/", Responder(page_handler(sessions)), allowed_origins="*")
    app.route("/room/{name}", SessionProvider(Rooms(), sessions))
    log.info("open http://%s:%d/ in a browser", args.http_host, app.port)
    app.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
