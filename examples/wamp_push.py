"""Ratchet's push tutorial in WAMP v1: a web app announces new posts, subscribed browsers get them.

Run from a checkout, no install needed::

    python examples/wamp_push.py                       # http://127.0.0.1:8080/
    python examples/wamp_push.py --port 0              # any free port (logged)

Open the page in a browser, tick a category; then announce a post from the
web app (any other process) with the HTTP publish endpoint::

    curl -X POST http://127.0.0.1:8080/publish \\
         -d '{"category": "kittens", "title": "New kitten", "when": 1700000000}'

Every page subscribed to ``kittens`` gets an EVENT with that object.  Topics
live on a :class:`~ratchet_sel.pubsub.Topics` hub: give :func:`build_server`
a hub with a backplane (Redis, the worker master) and a web app that writes
``{"title": ...}`` to the topic's channel reaches the browsers the same way,
across processes and hosts.

The WebSocket endpoint is ``ws://HOST:PORT/`` with subprotocol ``wamp``;
besides PubSub it serves a few procedures under ``http://example.com/push#``
(``add``, ``delayed``, ``divide``, ``subscribers``), used by the page and by
the real-client checks in ``scripts/ci_wamp.sh``.  Clients may publish on
the category topics too (comments, with WAMP's exclude/eligible lists).

``--publish-token TOKEN`` makes ``POST /publish`` require the header
``Authorization: Bearer TOKEN``; set one whenever the port is reachable by
others (``--host 0.0.0.0``).
"""

import argparse
import hmac
import json
import logging
import os
import sys
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ratchet_sel import IoServer, WsServer, exit_on_startup_error  # noqa: E402
from ratchet_sel.http import Response  # noqa: E402
from ratchet_sel.pubsub import Topics  # noqa: E402
from ratchet_sel.wamp import CallError, WampServer, WampServerInterface  # noqa: E402

log = logging.getLogger("wamp_push")

#: The URI under which this application's procedures and errors are named.
RPC = "http://example.com/push#"
#: The categories the page offers (any topic name works).
CATEGORIES = ("kittens", "puppies", "ratchet")
#: Longest delay the ``delayed`` procedure accepts, in milliseconds.
MAX_DELAY_MS = 5000

HERE = os.path.dirname(os.path.abspath(__file__))


class Pusher(WampServerInterface):
    """The push application: topics are blog categories; a few procedures for the page."""

    def __init__(self) -> None:
        self.wamp: Optional[WampServer] = None  # set by build_server()

    def on_open(self, conn: Any) -> None:
        log.info("session %s opened from %s", conn.session_id[:8], conn.remote_address)

    def on_close(self, conn: Any) -> None:
        log.info("session %s closed", conn.session_id[:8])

    def on_error(self, conn: Any, exc: BaseException) -> None:
        conn.close(1011, "internal error")

    def on_subscribe(self, conn: Any, topic: Any) -> None:
        log.info("session %s subscribed to %s (%d here)", conn.session_id[:8], topic.id, len(topic))

    def on_call(self, conn: Any, call_id: str, topic: Any, params: List[Any]) -> None:
        name = topic.id[len(RPC):] if topic.id.startswith(RPC) else None
        if name == "add":
            numbers = _numbers(params)
            conn.call_result(call_id, sum(numbers))
        elif name == "delayed":
            # Answers after ``params[0]`` ms: calls in flight come back in another order.
            value, delay = (params + [None, None])[:2]
            if not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_MS:
                raise CallError(RPC + "invalid-argument", "delay must be 0..%d ms" % MAX_DELAY_MS)
            conn.loop.call_later(delay / 1000.0, lambda: conn.call_result(call_id, value))
        elif name == "divide":
            dividend, divisor = _numbers(params, 2)
            if divisor == 0:
                raise CallError(RPC + "division-by-zero", "cannot divide by zero", {"dividend": dividend})
            conn.call_result(call_id, dividend / divisor)
        elif name == "subscribers":
            counts: Dict[str, int] = {}
            if self.wamp is not None:
                counts = {t.id: len(t) for t in self.wamp.topic_manager}
            conn.call_result(call_id, counts)
        else:
            raise CallError(RPC + "no-such-procedure", "no procedure %s" % topic.id)


def _numbers(params: List[Any], count: Optional[int] = None) -> List[Any]:
    if (count is not None and len(params) != count) or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) for p in params):
        raise CallError(RPC + "invalid-argument",
                        "expected %s numbers" % (count if count is not None else "only"))
    return params


def http_handler(wamp: WampServer, token: Optional[str]) -> Any:
    """The page, the JavaScript client, and ``POST /publish`` (the web app's way in)."""
    with open(os.path.join(HERE, "wamp1.js"), "rb") as f:
        client_js = f.read()

    def handle(request: Any) -> Response:
        if request.path == "/publish":
            return publish(request)
        if request.method not in ("GET", "HEAD"):
            return _text(405, "method not allowed\n", {"Allow": "GET, HEAD"})
        if request.path == "/":
            return Response(200, PAGE, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"})
        if request.path == "/wamp1.js":
            return Response(200, client_js, {"Content-Type": "text/javascript; charset=utf-8",
                                             "Cache-Control": "no-cache"})
        return _text(404, "not found\n")

    def publish(request: Any) -> Response:
        if request.method != "POST":
            return _text(405, "POST a JSON object with a category\n", {"Allow": "POST"})
        if token is not None:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), ("Bearer " + token).encode()):
                return _text(401, "wrong or missing Authorization: Bearer token\n")
        try:
            entry = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _text(400, "the body must be a JSON object\n")
        if not isinstance(entry, dict) or not isinstance(entry.get("category"), str) or not entry["category"]:
            return _text(400, "the JSON object needs a non-empty \"category\" string\n")
        topic = wamp.get_topic(entry["category"])
        local = len(topic)
        topic.broadcast(entry)
        log.info("web app published to %s (%d local subscribers)", topic.id, local)
        return _text(202, "published to %s\n" % topic.id)

    return handle


def _text(status: int, body: str, headers: Optional[Dict[str, str]] = None) -> Response:
    all_headers = {"Content-Type": "text/plain; charset=utf-8"}
    all_headers.update(headers or {})
    return Response(status, body, all_headers)


def build_server(host: str = "127.0.0.1", port: int = 8080, topics: Optional[Topics] = None,
                 publish_token: Optional[str] = None) -> IoServer:
    """The push server: the page, ``POST /publish`` and WAMP on one port."""
    pusher = Pusher()
    wamp = WampServer(pusher, topics)
    pusher.wamp = wamp
    return IoServer(WsServer(wamp, http_handler=http_handler(wamp, publish_token)), host, port)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ratchet_sel WAMP push</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
  #events { list-style: none; padding: .5rem; height: 16rem; overflow-y: auto; border: 1px solid #ccc; }
  fieldset { margin: 1rem 0; }
</style>
<script src="/wamp1.js"></script>
</head>
<body>
<h1>New posts, pushed</h1>
<p>Status: <span id="status">connecting</span> &middot; session <code id="session">-</code></p>
<fieldset id="categories"><legend>Categories</legend></fieldset>
<ul id="events"></ul>
<form id="comment">
  <input id="text" autocomplete="off" placeholder="Comment on the first ticked category">
  <button id="send" type="submit">Publish</button>
</form>
<p><button id="count" type="button">Who is subscribed? (RPC)</button> <code id="result"></code></p>
<script>
  const CATEGORIES = %(categories)s;
  const RPC = %(rpc)s;
  const statusEl = document.getElementById("status");
  const events = document.getElementById("events");
  const show = (text) => {
    const li = document.createElement("li");
    li.textContent = text;
    events.appendChild(li);
    events.scrollTop = events.scrollHeight;
  };
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const session = new Wamp1(scheme + location.host + "/", {
    onopen(s) {
      statusEl.textContent = "connected";
      document.getElementById("session").textContent = s.sessionId;
    },
    onclose(code, reason) { statusEl.textContent = "closed (" + code + (reason ? ": " + reason : "") + ")"; },
  });
  window.wampSession = session;
  session.prefix("push", RPC);
  const onEvent = (topic, event) => {
    if (event && typeof event === "object") {
      show(topic + ": " + (event.title || event.text || JSON.stringify(event)));
    } else {
      show(topic + ": " + String(event));
    }
  };
  for (const name of CATEGORIES) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = "cat-" + name;
    box.addEventListener("change", () => {
      if (box.checked) session.subscribe(name, onEvent);
      else session.unsubscribe(name);
    });
    label.append(box, " " + name + " ");
    document.getElementById("categories").appendChild(label);
  }
  document.getElementById("comment").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = document.getElementById("text");
    const ticked = CATEGORIES.filter((name) => document.getElementById("cat-" + name).checked);
    if (!text.value || !ticked.length) return;
    session.publish(ticked[0], { text: text.value }, false);
    text.value = "";
  });
  document.getElementById("count").addEventListener("click", () => {
    session.call("push:subscribers").then(
      (counts) => { document.getElementById("result").textContent = JSON.stringify(counts); },
      (error) => { document.getElementById("result").textContent = "error " + error.uri + ": " + error.desc; });
  });
</script>
</body>
</html>
""" % {"categories": repr(list(CATEGORIES)).replace("'", '"'), "rpc": '"%s"' % RPC}


def main() -> int:
    """Parse the command line and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--publish-token", default=os.environ.get("WAMP_PUSH_TOKEN"),
                        help="require 'Authorization: Bearer TOKEN' on POST /publish "
                             "(default: $WAMP_PUSH_TOKEN; none)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.publish_token is None and args.host not in ("127.0.0.1", "::1", "localhost"):
        log.warning("POST /publish is open to anyone who reaches %s: set --publish-token", args.host)
    with exit_on_startup_error():  # a busy port: one logged line and exit status 1
        server = build_server(args.host, args.port, publish_token=args.publish_token)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    log.info("WAMP push demo listening on http://%s:%d/ (WAMP ws://%s:%d/)", host, server.port, host, server.port)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
