"""The applications behind the command line: an echo server and a chat room."""

from typing import Any, Callable, Optional

from .component import MessageComponent
from .http.request import Request
from .http.response import Response
from .pubsub import Topics
from .server.guard import Guard, Refusal
from .websocket.connection import WsConnection
from .websocket.handshake import detect_version

__all__ = ["Echo", "Chat", "RoomPath", "chat_page", "chat_http_handler"]


class Echo(MessageComponent):
    """Sends every message back as it came: text as text, binary as binary."""

    def on_message(self, conn: WsConnection, msg: Any) -> None:
        conn.send(msg)


class Chat(MessageComponent):
    """Relays each message to every other member of the room.

    The room is the topic ``room`` (default ``"chat"``) of ``topics``: give it
    a hub with a backplane (workers, Redis) and the room spans processes and
    hosts.  Members leave the topic by themselves when they close.
    """

    def __init__(self, topics: Optional[Topics] = None, room: str = "chat") -> None:
        self.topics = topics if topics is not None else Topics()
        self.room = room

    def on_open(self, conn: WsConnection) -> None:
        self.topics.subscribe(conn, self.room)

    def on_message(self, conn: WsConnection, msg: Any) -> None:
        self.topics.publish(self.room, msg, exclude=conn)

    def on_error(self, conn: WsConnection, exc: BaseException) -> None:
        conn.close()


class RoomPath(Guard):
    """Answers 404 to a WebSocket upgrade on any path but ``path`` (the chat demo's room is ``/``).

    Requests without Upgrade pass (the page, ``POST /publish``).  Put it under
    :class:`~ratchet_sel.http.HttpServer`, in front of the ``WsServer``, so
    that the refusal is an HTTP answer before any upgrade.
    """

    def __init__(self, component: Any, path: str = "/") -> None:
        super().__init__(component)
        self.path = path

    def check(self, conn: Any, request: Any) -> Optional[Refusal]:
        """``None`` for the room's path and for plain HTTP requests; a 404 refusal for any other upgrade."""
        if request is None or request.path == self.path or detect_version(request) is None:
            return None
        return Refusal(404, "no chat room at %s; the room is at %s" % (request.path, self.path))


CHAT_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ratchet_sel chat</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { list-style: none; padding: .5rem; height: 20rem; overflow-y: auto; border: 1px solid #ccc; }
  #log li.me { color: #555; }
  form { display: flex; gap: .5rem; }
  #message { flex: 1; padding: .4rem; }
</style>
</head>
<body>
<h1>Chat</h1>
<p>Status: <span id="status">connecting</span></p>
<ul id="log"></ul>
<form id="form">
  <input id="message" autocomplete="off" placeholder="Say something" autofocus>
  <button id="send" type="submit">Send</button>
</form>
<script>
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const input = document.getElementById("message");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const ws = new WebSocket(scheme + location.host + location.pathname);
  ws.binaryType = "arraybuffer";
  function show(text, mine) {
    const li = document.createElement("li");
    li.textContent = text;
    if (mine) li.className = "me";
    log.appendChild(li);
    log.scrollTop = log.scrollHeight;
  }
  ws.onopen = () => { status.textContent = "connected"; };
  ws.onclose = (e) => { status.textContent = "closed (" + e.code + ")"; };
  ws.onmessage = (e) => {
    show(typeof e.data === "string" ? e.data : "[binary, " + e.data.byteLength + " bytes]", false);
  };
  document.getElementById("form").addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value && ws.readyState === WebSocket.OPEN) {
      ws.send(input.value);
      show("me: " + input.value, true);
      input.value = "";
    }
  });
</script>
</body>
</html>
"""


def chat_page(request: Request) -> Optional[Response]:
    """The chat page for a plain GET of ``/``; 404 elsewhere."""
    if request.method not in ("GET", "HEAD"):
        return Response(405, "Method not allowed\n", {"Allow": "GET, HEAD",
                                                       "Content-Type": "text/plain; charset=utf-8"})
    if request.path != "/":
        return Response(404, "Not found\n", {"Content-Type": "text/plain; charset=utf-8"})
    response = Response(200, CHAT_PAGE, {"Content-Type": "text/html; charset=utf-8",
                                         "Cache-Control": "no-cache"})
    if request.method == "HEAD":
        response.headers.append(("Content-Length", str(len(response.body))))
        response.body = b""
    return response


def chat_http_handler(publish: Optional[Callable[[Request], Optional[Response]]] = None
                      ) -> Callable[[Request], Optional[Response]]:
    """The chat demo's HTTP side: the page on ``/`` and, when given, a publish endpoint.

    ``publish`` is a :class:`~ratchet_sel.pubsub.PublishEndpoint` (or any
    handler returning ``None`` for requests that are not its own).
    """
    if publish is None:
        return chat_page

    def handle(request: Request) -> Optional[Response]:
        response = publish(request)
        return response if response is not None else chat_page(request)

    return handle
