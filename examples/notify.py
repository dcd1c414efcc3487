"""Per-user notifications: who is connecting (a token) and a push to all of one user's connections.

The program of docs/tutorial/auth-and-push.md.  Each client presents a token,
in the query (``ws://host:port/?token=TOKEN``, what a browser can do) or in a
header (``Authorization: Bearer TOKEN``).  ``--tokens FILE`` maps tokens to
users, one ``TOKEN USER`` pair a line (``#`` starts a comment)::

    s3cret-alice alice
    s3cret-bob   bob

A handshake without a token is answered ``401`` with ``WWW-Authenticate:
Bearer realm="notify"``, one with an unknown token ``403``, both before any
upgrade.  An admitted connection is on two topics: ``user:<id>`` (that user's
connections only, wherever they are) and ``all`` (everyone).  The server sends
whatever is published there, as it is, and ignores what clients send.

Publishing is another program's business (a web view, a cron job)::

    python examples/notify.py --port 8080 --tokens tokens.txt --redis redis://127.0.0.1:6379/0
    python -c 'from ratchet_sel.pubsub import publish; publish("redis://127.0.0.1:6379/0", "user:alice", "hi")'

Without ``--redis`` the topics live in this process (or span the ``--workers``
through the master); ``--publish-token T`` then opens ``POST /publish?topic=...``
(``publish("http://127.0.0.1:8080/publish?token=T", "user:alice", "hi")``).
With ``--redis`` any number of these servers, on any hosts, share the topics.
"""

import argparse
import logging
import os
import sys
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ratchet_sel import (IoServer, MessageComponent, TokenAuth, WsServer, exit_on_startup_error,  # noqa: E402
                         run_workers, user_topic)
from ratchet_sel.__main__ import port_number, worker_count  # noqa: E402  (the command line's own checks)
from ratchet_sel.http import Request, Response  # noqa: E402
from ratchet_sel.pubsub import PublishEndpoint, RedisPubSub, Topics  # noqa: E402
from ratchet_sel.pubsub.redis import parse_redis_url  # noqa: E402

log = logging.getLogger("notify")

#: The topic every admitted connection is on, besides its user's.
EVERYONE = "all"


class Notify(MessageComponent):
    """Puts each admitted connection on its user's topic and on ``all``; the hub does the rest.

    ``conn.user`` is the user :class:`~ratchet_sel.TokenAuth` found for the
    connection's token.  A connection leaves its topics by itself when it closes.
    """

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    def on_open(self, conn: Any) -> None:
        self.topics.subscribe(conn, user_topic(conn.user))
        self.topics.subscribe(conn, EVERYONE)
        log.info("%s connected from %s (connection #%d)", conn.user, conn.remote_address, conn.resource_id)

    def on_message(self, conn: Any, msg: Any) -> None:
        pass  # a notification channel: clients listen (text they send, e.g. keepalives, is ignored)

    def on_close(self, conn: Any) -> None:
        log.info("%s disconnected (connection #%d)", conn.user, conn.resource_id)


class UsageError(Exception):
    """A bad command line or tokens file: the message is printed, the exit status is 2."""


def read_tokens(path: str) -> Dict[str, str]:
    """``{token: user}`` from a file of ``TOKEN USER`` lines; :class:`UsageError` names a bad line."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError("--tokens: cannot read %s: %s" % (path, getattr(exc, "strerror", None) or exc)) from None
    tokens: Dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2:
            raise UsageError("%s:%d: expected 'TOKEN USER', got %d field(s)" % (path, number, len(fields)))
        token, user = fields
        if token in tokens:
            raise UsageError("%s:%d: this token is already given to %s" % (path, number, tokens[token]))
        tokens[token] = user
    if not tokens:
        raise UsageError("--tokens: %s has no 'TOKEN USER' line" % path)
    return tokens


def http_handler(endpoint: Optional[PublishEndpoint]) -> Callable[[Request], Optional[Response]]:
    """Plain HTTP requests: ``POST /publish`` when enabled, else the WebSocket server's 426."""
    return lambda request: endpoint(request) if endpoint is not None else None


def build_server(topics: Topics, tokens: Dict[str, str], publish_token: Optional[str]) -> WsServer:
    """The WebSocket server: TokenAuth wrapping the application; it still answers before the upgrade."""
    endpoint = PublishEndpoint(topics, publish_token) if publish_token else None
    return WsServer(TokenAuth(Notify(topics), tokens=tokens, realm="notify"),
                    http_handler=http_handler(endpoint))


def serve_alone(args: argparse.Namespace, tokens: Dict[str, str]) -> int:
    topics: Topics = RedisPubSub(args.redis, prefix=args.redis_prefix) if args.redis else Topics()
    with exit_on_startup_error():  # a busy port: one line, exit status 1
        server = IoServer(build_server(topics, tokens, args.publish_token), args.host, args.port)
    if isinstance(topics, RedisPubSub):
        topics.bind(server.loop)
    host, port = server.socket.getsockname()[:2]
    log.info("notify listening on ws://%s:%d/ for %d user(s); topics %s", host, port, len(set(tokens.values())),
             "on Redis " + args.redis if args.redis else "in this process")
    try:
        server.run()
    finally:
        topics.close()
    return 0


def serve_workers(args: argparse.Namespace, tokens: Dict[str, str]) -> int:
    def build(worker: Any) -> WsServer:
        if args.redis:
            topics: Topics = RedisPubSub(args.redis, prefix=args.redis_prefix)
            topics.bind(worker.loop)
            worker.on_stop(topics.close)
        else:
            topics = worker.topics  # spans the workers through the master
        return build_server(topics, tokens, args.publish_token)

    return run_workers(build, args.host, args.port, workers=args.workers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=8080, help="0 picks a free port (logged)")
    parser.add_argument("--tokens", required=True, metavar="FILE", help="lines of 'TOKEN USER'")
    parser.add_argument("--redis", metavar="URL", help="redis://[:password@]host:port/db: share the topics")
    parser.add_argument("--redis-prefix", default="ratchet_sel:", metavar="PREFIX", help="(default: %(default)s)")
    parser.add_argument("--workers", type=worker_count, default=1, help="processes sharing the port (default: 1)")
    parser.add_argument("--publish-token", metavar="TOKEN", help="enable POST /publish?topic=T with this token")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    try:
        tokens = read_tokens(args.tokens)
        if args.redis:
            parse_redis_url(args.redis)
    except UsageError as exc:
        parser.error(str(exc))
    except ValueError as exc:
        parser.error("--redis: %s" % exc)
    return serve_workers(args, tokens) if args.workers > 1 else serve_alone(args, tokens)


if __name__ == "__main__":
    sys.exit(main())
