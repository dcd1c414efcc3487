"""A WAMP v2 application: procedures and a topic defined in Python, a page that uses them with autobahn-js.

Run from a checkout, no install needed::

    python examples/wamp2_app.py                              # http://127.0.0.1:8080/
    python examples/wamp2_app.py --port 0 --static DIR        # any free port; serve DIR's files

The page (``GET /``) loads ``/autobahn.min.js``, the browser build of the
npm package ``autobahn`` (``node_modules/autobahn-browser/autobahn.min.js``
or ``node_modules/autobahn/build/autobahn.min.js``): copy it into a
directory and give that directory as ``--static DIR``.  Every file directly
in ``DIR`` is served as ``/NAME``.

The WebSocket endpoint is ``ws://HOST:PORT/`` (any path) with subprotocols
``wamp.2.json`` and ``wamp.2.msgpack`` (WAMP v2, realm ``--realm``,
default ``realm1``) and ``wamp`` (WAMP v1, sharing the topics of the first
realm).  The application defines, in every realm:

- ``com.example.add(a, b)``: ``a + b``;
- ``com.example.divide(a, b)``: ``a / b``, or the error
  ``com.example.divide_by_zero`` (args ``["cannot divide by zero"]``,
  kwargs ``{"dividend": a}``);
- ``com.example.echo(*args, **kwargs)``: the same args and kwargs back;
- ``com.example.whoami()``: the caller's session id, authid and authrole;
- topic ``com.example.chat``: the server logs every publication and counts
  them (``com.example.chat_count()`` returns the count).

``--ticket SECRET`` requires WAMP-Ticket authentication (any authid, that
ticket); without it, clients join anonymously.
"""

import argparse
import hmac
import logging
import mimetypes
import os
import sys
from typing import Any, Dict, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ratchet_sel import IoServer, WsServer, exit_on_startup_error  # noqa: E402
from ratchet_sel.http import Response  # noqa: E402
from ratchet_sel.pubsub import Topics  # noqa: E402
from ratchet_sel.wamp import WampServer, WampServerInterface  # noqa: E402
from ratchet_sel.wamp.v2 import ApplicationError, Result, WampRouter, WampVersions  # noqa: E402

log = logging.getLogger("wamp2_app")


def build_router(realms: Any = ("realm1",), topics: Optional[Topics] = None,
                 ticket: Optional[str] = None) -> WampRouter:
    """The router with the application's procedures and its chat topic handler."""
    def check_ticket(realm: str, authid: str, given: str) -> Any:
        return "user" if hmac.compare_digest(given.encode(), str(ticket).encode()) else None

    router = WampRouter(list(realms), topics, authenticator=check_ticket if ticket is not None else None)
    counts: Dict[str, int] = {"chat": 0}

    def divide(a: float, b: float) -> float:
        if b == 0:
            raise ApplicationError("com.example.divide_by_zero", "cannot divide by zero", dividend=a)
        return a / b

    def whoami(details: Any) -> Dict[str, Any]:
        session = details.session
        return {"session": session.session_id, "authid": session.authid, "authrole": session.authrole}

    def chat(*args: Any, **kwargs: Any) -> None:
        counts["chat"] += 1
        log.info("chat: %r %r", args, kwargs)

    router.register("com.example.add", lambda a, b: a + b)
    router.register("com.example.divide", divide)
    router.register("com.example.echo", lambda *args, **kwargs: Result(*args, **kwargs))
    router.register("com.example.whoami", whoami, details=True)
    router.register("com.example.chat_count", lambda: counts["chat"])
    router.subscribe("com.example.chat", chat)
    return router


def http_handler(static_dir: Optional[str]) -> Any:
    """The page on ``/``, and the files directly in ``static_dir`` as ``/NAME``."""
    files = {}
    if static_dir:
        for name in os.listdir(static_dir):
            path = os.path.join(static_dir, name)
            if os.path.isfile(path):
                files["/" + name] = path

    def handle(request: Any) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(405, "GET only\n", {"Allow": "GET, HEAD", "Content-Type": "text/plain"})
        if request.path == "/":
            return Response(200, PAGE, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"})
        path = files.get(request.path)
        if path is None:
            return Response(404, "not found\n", {"Content-Type": "text/plain"})
        with open(path, "rb") as source:
            body = source.read()
        kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
        if kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return Response(200, body, {"Content-Type": kind, "Cache-Control": "no-cache"})

    return handle


def build_component(realms: Any = ("realm1",), static_dir: Optional[str] = None, ticket: Optional[str] = None,
                    topics: Optional[Topics] = None) -> WsServer:
    """The page, the static files, WAMP v2 and WAMP v1 (sharing ``topics``) as one WebSocket server."""
    topics = topics if topics is not None else Topics()
    router = build_router(realms, topics, ticket)
    versions = WampVersions(router, WampServer(WampServerInterface(), topics))
    return WsServer(versions, http_handler=http_handler(static_dir))


def build_server(host: str = "127.0.0.1", port: int = 8080, realms: Any = ("realm1",),
                 static_dir: Optional[str] = None, ticket: Optional[str] = None,
                 topics: Optional[Topics] = None) -> IoServer:
    """:func:`build_component` listening on ``host``:``port``."""
    return IoServer(build_component(realms, static_dir, ticket, topics), host, port)


def main(argv: Optional[list] = None) -> int:
    """Parse the options and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description="a WAMP v2 application with a page (autobahn-js)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--realm", action="append", default=[], help="realm to serve; repeatable (default: realm1)")
    parser.add_argument("--static", metavar="DIR", help="serve the files directly in DIR as /NAME "
                                                        "(put autobahn.min.js there for the page)")
    parser.add_argument("--ticket", metavar="SECRET", help="require WAMP-Ticket authentication with this ticket")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.static and not os.path.isdir(args.static):
        parser.error("--static: %s is not a directory" % args.static)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(message)s")
    with exit_on_startup_error():
        server = build_server(args.host, args.port, args.realm or ["realm1"], args.static, args.ticket)
    log.info("WAMP v2 app listening on http://%s:%d/ (WebSocket ws://%s:%d/, realms %s)", args.host, server.port,
             args.host, server.port, ", ".join(args.realm or ["realm1"]))
    server.run()
    return 0


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ratchet_sel WAMP v2</title>
<style>body { font: 16px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; }</style>
<script src="/autobahn.min.js"></script>
</head>
<body>
<h1>WAMP v2 with autobahn-js</h1>
<p>Status: <span id="status">connecting</span></p>
<p>com.example.add(2, 3) = <code id="call-result">-</code></p>
<p>com.example.divide(1, 0): <code id="call-error">-</code></p>
<p>Last event on com.example.chat: <code id="event">-</code></p>
<script>
  const params = new URLSearchParams(location.search);
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const show = (id, text) => { document.getElementById(id).textContent = text; };
  window.wampResults = {};
  if (typeof autobahn === "undefined") {
    show("status", "autobahn.min.js not loaded (start the example with --static DIR)");
  } else {
    const connection = new autobahn.Connection({
      url: scheme + location.host + "/", realm: params.get("realm") || "realm1", max_retries: 0,
    });
    connection.onopen = (session) => {
      show("status", "joined as session " + session.id);
      window.wampResults.session = session.id;
      session.call("com.example.add", [2, 3]).then((sum) => {
        show("call-result", String(sum));
        window.wampResults.add = sum;
      });
      session.call("com.example.divide", [1, 0]).catch((err) => {
        show("call-error", err.error);
        window.wampResults.divideError = err.error;
      });
      session.subscribe("com.example.chat", (args) => {
        show("event", JSON.stringify(args));
        window.wampResults.event = args;
      }).then(() => session.publish("com.example.chat", ["hello from the browser"], {}, {exclude_me: false}));
    };
    connection.onclose = (reason, details) => { show("status", "closed: " + reason); return false; };
    connection.open();
  }
</script>
</body>
</html>
"""

if __name__ == "__main__":
    sys.exit(main())
