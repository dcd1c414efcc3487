"""Ratchet's push tutorial in ratchet_sel: a blog pushes "new post in category X" to browsers.

Three programs, each its own process:

- ``server``: the WebSocket server.  Its page (``/``) lets a browser subscribe
  to categories; each subscribed browser gets every new post of them at once.
- ``webapp``: a tiny blog (stdlib ``http.server``) with a "new post" form.  When
  a post is saved it pushes it to the socket server, which has no idea the blog
  exists: through Redis (``PUBLISH ratchet_sel:<category> <json>``) or through
  the socket server's ``POST /publish`` endpoint, with
  :class:`ratchet_sel.pubsub.Publisher` either way.
- ``post``: the same push, once, from the command line (what a cron job or a
  CMS hook would do).

Through Redis (any number of socket servers, on any hosts)::

    python examples/push.py server --port 8080 --redis redis://127.0.0.1:6379/0
    python examples/push.py webapp --port 8081 --redis redis://127.0.0.1:6379/0
    python examples/push.py post --redis redis://127.0.0.1:6379/0 --category kittens --title "Hello"

Without Redis, through HTTP (one socket server)::

    python examples/push.py server --port 8080 --publish-token s3cret
    python examples/push.py webapp --port 8081 --http http://127.0.0.1:8080 --token s3cret
    python examples/push.py post --http http://127.0.0.1:8080 --token s3cret --category kittens --title "Hello"

Open http://127.0.0.1:8080/?category=kittens in a browser, then post in the
blog at http://127.0.0.1:8081/.  The browser protocol is two JSON messages,
``{"subscribe": "kittens"}`` and ``{"unsubscribe": "kittens"}``, each answered
with ``{"subscribed": ...}`` or ``{"unsubscribed": ...}``; a post arrives as the
JSON the blog published: ``{"category", "title", "article", "when"}``.
"""

import argparse
import html
import json
import logging
import os
import re
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ratchet_sel import IoServer, MessageComponent, WsServer, exit_on_startup_error  # noqa: E402
from ratchet_sel.http import Request, Response  # noqa: E402
from ratchet_sel.pubsub import PublishEndpoint, PublishError, Publisher, RedisPubSub, Topics  # noqa: E402
from ratchet_sel.websocket import CloseCode  # noqa: E402

log = logging.getLogger("push")

#: Category names: they become topics, and Redis channels ``<prefix><category>``.
CATEGORY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# -- the socket server -----------------------------------------------------------------------
class Pusher(MessageComponent):
    """Browsers subscribe to categories; posts published to a category reach its subscribers.

    The server never builds a message itself: whatever is published to topic
    ``<category>`` (by this process, another server through Redis, ``POST
    /publish``, or ``redis-cli``) is sent to the subscribers as it is.
    """

    def __init__(self, topics: Topics, max_categories: int = 32) -> None:
        self.topics = topics
        self.max_categories = max_categories

    def on_message(self, conn: Any, msg: Any) -> None:
        try:
            command = json.loads(msg) if isinstance(msg, str) else None
        except ValueError:
            command = None
        if not isinstance(command, dict) or len(command) != 1:
            conn.close(CloseCode.UNSUPPORTED_DATA if not isinstance(msg, str) else CloseCode.POLICY_VIOLATION,
                       'expected {"subscribe": CATEGORY} or {"unsubscribe": CATEGORY}')
            return
        (action, category), = command.items()
        if action not in ("subscribe", "unsubscribe") or not isinstance(category, str) \
                or not CATEGORY.match(category):
            conn.send(json.dumps({"error": "unknown command or bad category name"}))
            return
        if action == "subscribe":
            if len(self.topics.topics_of(conn)) >= self.max_categories:
                conn.send(json.dumps({"error": "at most %d categories" % self.max_categories}))
                return
            self.topics.subscribe(conn, category)
            log.info("connection #%d subscribed to %s", conn.resource_id, category)
            conn.send(json.dumps({"subscribed": category}))
        else:
            self.topics.unsubscribe(conn, category)
            conn.send(json.dumps({"unsubscribed": category}))

    def on_error(self, conn: Any, exc: BaseException) -> None:
        log.error("connection #%d: %r", conn.resource_id, exc)
        conn.close(CloseCode.INTERNAL_ERROR, "server error")


PUSH_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ratchet_sel push</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #posts { list-style: none; padding: .5rem; min-height: 10rem; border: 1px solid #ccc; }
  #posts li { margin: .3rem 0; }
  #posts small { color: #666; }
</style>
</head>
<body>
<h1>New posts, as they are published</h1>
<p>Status: <span id="status">connecting</span>. Subscribed to: <span id="subscribed">nothing</span>.</p>
<form id="form">
  <input id="category" placeholder="category, e.g. kittens" pattern="[A-Za-z0-9_-]{1,64}" required>
  <button type="submit">Subscribe</button>
</form>
<ul id="posts"></ul>
<script>
  const status = document.getElementById("status");
  const subscribedEl = document.getElementById("subscribed");
  const posts = document.getElementById("posts");
  const subscribed = new Set();
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + "/");
  const subscribe = (category) => ws.send(JSON.stringify({subscribe: category}));
  ws.onopen = () => {
    status.textContent = "connected";
    for (const category of new URLSearchParams(location.search).getAll("category")) subscribe(category);
  };
  ws.onclose = (e) => { status.textContent = "closed (" + e.code + ")"; };
  ws.onmessage = (e) => {
    let data;
    try { data = JSON.parse(e.data); } catch (err) { data = {title: String(e.data)}; }
    if (data.subscribed) { subscribed.add(data.subscribed); }
    else if (data.unsubscribed) { subscribed.delete(data.unsubscribed); }
    else if (data.error) { status.textContent = "error: " + data.error; }
    else {
      const li = document.createElement("li");
      li.className = "post";
      li.dataset.category = data.category || "";
      const title = document.createElement("b");
      title.textContent = data.title || "(untitled)";
      const meta = document.createElement("small");
      meta.textContent = " in " + (data.category || "?") + (data.article ? ": " + data.article : "");
      li.append(title, meta);
      posts.prepend(li);
      return;
    }
    subscribedEl.textContent = subscribed.size ? Array.from(subscribed).sort().join(", ") : "nothing";
  };
  document.getElementById("form").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = document.getElementById("category");
    if (input.value) { subscribe(input.value); input.value = ""; }
  });
</script>
</body>
</html>
"""


def page_handler(endpoint: Optional[PublishEndpoint]) -> Callable[[Request], Optional[Response]]:
    """``GET /``: the page; ``POST /publish?topic=CATEGORY``: the endpoint, when enabled."""

    def handle(request: Request) -> Response:
        if endpoint is not None and request.path == endpoint.path:
            return endpoint(request)  # type: ignore[return-value]
        if request.path != "/":
            return Response(404, "Not found\n", {"Content-Type": "text/plain; charset=utf-8"})
        if request.method != "GET":
            return Response(405, "Method not allowed\n", {"Allow": "GET", "Content-Type": "text/plain"})
        return Response(200, PUSH_PAGE, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"})

    return handle


def run_server(args: argparse.Namespace) -> int:
    topics: Topics = RedisPubSub(args.redis, prefix=args.redis_prefix) if args.redis else Topics()
    endpoint = PublishEndpoint(topics, args.publish_token) if args.publish_token else None
    with exit_on_startup_error():  # a busy port, an unreachable Redis: one line, exit status 1
        server = IoServer(WsServer(Pusher(topics), http_handler=page_handler(endpoint)), args.host, args.port)
        if isinstance(topics, RedisPubSub):
            topics.bind(server.loop)
    host, port = server.socket.getsockname()[:2]
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    log.info("push server listening on http://%s:%d/ (WebSocket ws://%s:%d/); publishing: %s", shown, port,
             shown, port, ", ".join(filter(None, ["redis" if args.redis else "",
                                                   "POST /publish" if endpoint else ""])) or "none")
    try:
        server.run()
    finally:
        topics.close()
    return 0


# -- the blog: publishing from another process -----------------------------------------------
def new_post(category: str, title: str, article: str = "") -> str:
    """The message a subscriber gets: the post as JSON."""
    return json.dumps({"category": category, "title": title, "article": article, "when": int(time.time())})


def publisher(args: argparse.Namespace) -> Callable[[str, str], str]:
    """A function ``(category, message) -> summary`` pushing the way the arguments say.

    One :class:`~ratchet_sel.pubsub.Publisher` (blocking, standard library
    only) keeps its connection to Redis or to the socket server for every post.
    """
    if args.redis:
        redis = Publisher(args.redis, prefix=args.redis_prefix)
        return lambda category, message: "%d socket server(s) got it through Redis" % redis.publish(
            category, message)
    if not args.token:
        raise SystemExit("--http needs --token (the socket server's --publish-token)")
    http = Publisher(args.http.rstrip("/") + "/publish", token=args.token)
    return lambda category, message: "%(local_subscribers)d browser(s) got it over HTTP" % http.publish(
        category, message)


def run_post(args: argparse.Namespace) -> int:
    if not CATEGORY.match(args.category):
        log.error("a category is 1 to 64 letters, digits, '-' or '_'")
        return 2
    push = publisher(args)
    try:
        print(push(args.category, new_post(args.category, args.title, args.article)))
    except (OSError, PublishError, ValueError) as exc:
        log.error("could not push: %s", exc)
        return 1
    return 0


BLOG_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>A tiny blog</title>
<style>body{font:16px/1.4 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
label{display:block;margin:.5rem 0}</style></head>
<body><h1>A tiny blog</h1>%s
<form method="post" action="/">
<label>Category <input name="category" value="kittens" pattern="[A-Za-z0-9_-]{1,64}" required></label>
<label>Title <input name="title" required maxlength="200"></label>
<label>Article <textarea name="article" rows="4" cols="50" maxlength="4000"></textarea></label>
<button>Publish</button></form></body></html>
"""


def run_webapp(args: argparse.Namespace) -> int:
    push = publisher(args)

    class Blog(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._page("")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > 16384:
                self.send_error(413, "post too long")
                return
            form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            category = form.get("category", [""])[0]
            title = form.get("title", [""])[0]
            if not CATEGORY.match(category) or not title:
                self._page("<p>A post needs a category (letters, digits, - or _) and a title.</p>", 400)
                return
            # A real blog saves the post here, then pushes it.
            try:
                summary = push(category, new_post(category, title, form.get("article", [""])[0]))
            except (OSError, PublishError, ValueError) as exc:
                self._page("<p>Saved, but the push failed: %s</p>" % html.escape(str(exc)), 502)
                return
            self._page("<p>Published &ldquo;%s&rdquo; in %s: %s.</p>" % (html.escape(title), category,
                                                                        html.escape(summary)))

        def _page(self, notice: str, status: int = 200) -> None:
            body = (BLOG_PAGE % notice).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *fmt_args: Any) -> None:
            log.info("blog: " + fmt, *fmt_args)

    httpd = HTTPServer((args.host, args.port), Blog)
    log.info("blog listening on http://%s:%d/", *httpd.server_address[:2])
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


# -- command line ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    server = commands.add_parser("server", help="the WebSocket server and its page")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8080, help="0 picks a free port (logged)")
    server.add_argument("--publish-token", help="enable POST /publish?topic=CATEGORY with this bearer token")
    webapp = commands.add_parser("webapp", help="a tiny blog that pushes each new post")
    webapp.add_argument("--host", default="127.0.0.1")
    webapp.add_argument("--port", type=int, default=8081)
    post = commands.add_parser("post", help="push one new post and exit")
    post.add_argument("--category", required=True)
    post.add_argument("--title", required=True)
    post.add_argument("--article", default="")
    for command in (server, webapp, post):
        command.add_argument("--redis", metavar="URL", help="redis://[:password@]host:port/db")
        command.add_argument("--redis-prefix", default="ratchet_sel:", help="(default: %(default)s)")
    for command in (webapp, post):
        command.add_argument("--http", metavar="URL", help="the socket server, e.g. http://127.0.0.1:8080")
        command.add_argument("--token", help="the socket server's --publish-token")
    return parser


def main(argv: Optional[list] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "server":
        return run_server(args)
    if not args.redis and not args.http:
        log.error("say how to push: --redis URL, or --http URL --token TOKEN")
        return 2
    return run_webapp(args) if args.command == "webapp" else run_post(args)


if __name__ == "__main__":
    sys.exit(main())
