"""Push over HTTP: ``POST /publish`` with a text body publishes it to a topic.

For hosts without Redis: the web application that wants to push (a new blog
post, an order shipped) makes one authenticated HTTP request to the socket
server, and every subscriber of the topic gets the body as a text message::

    curl -H "Authorization: Bearer $TOKEN" --data-binary "new post" \\
         "http://127.0.0.1:8000/publish?topic=news"

The endpoint is a callable ``(request) -> Response``: pass it to
``WsServer(http_handler=...)`` (the chat demo's ``--publish-token`` does) or to
an App route through :class:`~ratchet_sel.http.Responder`.
"""

import hmac
import json
import logging
from typing import Optional

from ..http.request import Request
from ..http.response import Response, error_response
from .topics import Topics

__all__ = ["PublishEndpoint", "MAX_PUBLISH_BODY"]

log = logging.getLogger(__name__)

#: The largest body a publish request may carry (64 KiB); larger gets 413.
MAX_PUBLISH_BODY = 64 * 1024


class PublishEndpoint:
    """Answers ``POST path`` by publishing the request body to a topic of ``topics``.

    ``token``: the bearer token the request must carry (``Authorization:
    Bearer TOKEN``); compared in constant time.  ``topic``: the topic to
    publish to; when ``None`` the request names it in the query
    (``?topic=news``).  Answers: 401 without a token, 403 with a wrong one,
    413 past ``max_body`` bytes, 400 for a body that is not UTF-8 or a
    missing topic, 405 for another method, and 200 with a JSON object
    ``{"topic": ..., "local_subscribers": N}`` once published (subscribers in
    other processes get it through the hub's backplane).  Requests for
    another path get ``None`` (not mine).
    """

    def __init__(self, topics: Topics, token: str, *, topic: Optional[str] = None, path: str = "/publish",
                 max_body: int = MAX_PUBLISH_BODY) -> None:
        if not token:
            raise ValueError("a publish endpoint needs a non-empty token")
        self.topics = topics
        self._token = token.encode("utf-8")
        self.topic = topic
        self.path = path
        self.max_body = max_body

    def __call__(self, request: Request) -> Optional[Response]:
        if request.path != self.path:
            return None
        if request.method != "POST":
            return error_response(405, "Use POST to publish", {"Allow": "POST"})
        given = self._bearer(request)
        if given is None:
            log.info("publish refused: no bearer token")
            return error_response(401, "A bearer token is required",
                                  {"WWW-Authenticate": 'Bearer realm="publish"'})
        if not hmac.compare_digest(given, self._token):
            log.warning("publish refused: wrong bearer token")
            return error_response(403, "Wrong token")
        declared = request.headers.get("Content-Length") or "0"
        if len(request.body) > self.max_body or (declared.isdigit() and int(declared) > self.max_body):
            log.info("publish refused: body of %s bytes past %d", declared, self.max_body)
            return error_response(413, "The body is larger than %d bytes" % self.max_body)
        topic = self.topic if self.topic is not None else request.query.get("topic", "")
        if not topic:
            return error_response(400, "Name the topic: ?topic=NAME")
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return error_response(400, "The body must be UTF-8 text")
        count = self.topics.publish(topic, text)
        log.debug("published %d chars to %r over HTTP (%d local subscribers)", len(text), topic, count)
        body = json.dumps({"topic": topic, "local_subscribers": count}) + "\n"
        return Response(200, body, {"Content-Type": "application/json", "Cache-Control": "no-store"})

    @staticmethod
    def _bearer(request: Request) -> Optional[bytes]:
        value = request.headers.get("Authorization")
        if not value:
            return None
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        return credentials.strip().encode("utf-8", "replace")

