"""The command line: ``python -m ratchet_sel echo|chat|wamp --host H --port P``, ``client URL`` and
``bundle APP.py -o APP.pyz``."""

import argparse
import logging
import sys
from typing import Any, List, Optional, Tuple

from . import __version__
from .ops import accelerator, bundle, memory
from .server.addresses import parse_network
from .client.cli import add_client_command, run_client
from .demo import Chat, Echo, RoomPath, chat_http_handler
from .http.request import parse_decimal
from .http.server import HttpServer
from .ops.health import HealthEndpoint
from .ops.metrics import MetricsEndpoint
from .server.origin import OriginCheck
from .server.proxy import TrustedProxies
from .pubsub import PublishEndpoint, RedisPubSub, Topics
from .io.activation import ActivationError, inherited_listeners
from .io.listener import DEFAULT_MAX_CONNECTIONS, IoServer, startup_error_text
from .ops.privileges import PrivilegeError, drop_privileges, lookup_group, lookup_user
from .websocket.server import WsServer
from .workers import MAX_WORKERS, Worker, Workers

log = logging.getLogger("ratchet_sel")


_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _url(scheme: str, host: str, port: int) -> str:
    # A wildcard address is no place to point a browser at: show loopback.
    host = _WILDCARDS.get(host, host)
    return "%s://%s:%d/" % (scheme, "[%s]" % host if ":" in host else host, port)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m ratchet_sel",
        description="WebSocket servers on one selectors loop (RFC 6455, HyBi-10 and Hixie-76 on the same port).")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name, help_text, default_size in (
            ("echo", "echo every text and binary message back, on any path (the conformance target)",
             64 * 1024 * 1024),
            ("chat", "the chat demo: GET / serves the page, an upgrade to / joins the room",
             1024 * 1024),
            ("wamp", "a WAMP router: v2 (wamp.2.json, wamp.2.msgpack) and v1 (wamp) on the same port and "
                     "topics, on any path", 1024 * 1024)):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
        command.add_argument("--port", type=port_number, default=8000,
                             help="port to listen on; 0 picks a free one (default: %(default)s)")
        command.add_argument("--max-message-size", type=int, default=default_size, metavar="BYTES",
                             help="largest message a client may send; larger closes with 1009 "
                                  "(default: %(default)s)")
        command.add_argument("--certfile", help="PEM certificate (chain): serve wss:// with TLS")
        command.add_argument("--keyfile", help="PEM private key for --certfile (if not in it)")
        command.add_argument("--tls-port", type=port_number, metavar="PORT",
                             help="with --certfile: serve TLS on this port and plain on --port; "
                                  "without it, --port itself is TLS")
        command.add_argument("--no-compression", action="store_true",
                             help="do not negotiate permessage-deflate (RFC 7692)")
        if name == "wamp":
            command.add_argument("--realm", type=_realm, action="append", default=[], metavar="URI",
                                 help="a realm to serve; repeat for more; the first one shares its topics "
                                      "with WAMP v1 clients (default: realm1)")
        if name in ("chat", "wamp"):
            command.add_argument("--redis", metavar="URL",
                                 help="span the %s over every server on this Redis "
                                      "(redis://[:password@]host:port/db, or rediss:// for TLS)"
                                      % ("room" if name == "chat" else "topics"))
            command.add_argument("--redis-prefix", default="ratchet_sel:", metavar="PREFIX",
                                 help="Redis channel prefix: %s (default: %%(default)s)"
                                      % ("the room is channel PREFIXchat" if name == "chat"
                                         else "topic T is channel PREFIXT"))
        if name == "chat":
            command.add_argument("--publish-token", metavar="TOKEN",
                                 help="accept POST /publish with 'Authorization: Bearer TOKEN'; "
                                      "its text body goes to every member")
        command.add_argument("--workers", type=worker_count, default=1, metavar="N",
                             help="worker processes accepting on the same port, 1 to %d; the chat room "
                                  "spans them (default: %%(default)s: one process, no SO_REUSEPORT)"
                                  % MAX_WORKERS)
        command.add_argument("--health", type=_health_path, metavar="PATH",
                             help="answer GET PATH (e.g. /healthz) with 200 and a JSON status, whatever the "
                                  "Host header: for load balancers; in every worker")
        command.add_argument("--log-level", default="INFO",
                             choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                             help="logging level (default: %(default)s)")
        add_deployment_options(command)
        add_process_options(command)
    add_client_command(commands)
    bundle.add_arguments(commands.add_parser(
        "bundle", help="build one executable zipapp of APP.py and the ratchet_sel package",
        description="build one executable zipapp of APP.py and the ratchet_sel package"))
    return parser


def worker_count(text: str) -> int:
    """An argparse type: a number of worker processes, 1 to MAX_WORKERS (usage error otherwise)."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text) from None
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError("must be from 1 to %d, not %d" % (MAX_WORKERS, count))
    return count


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535 (usage error otherwise)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a port number: %r" % text) from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError("a port is from 0 to 65535, not %d" % port)
    return port


def _count(text: str) -> int:
    value = parse_decimal(text.strip(), 9)
    if not value:
        raise argparse.ArgumentTypeError("expected a whole number of at least 1, not %r" % text)
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e7:    # also refuses nan and inf
        raise argparse.ArgumentTypeError("expected a number of seconds above 0, not %r" % text)
    return value


def _origin(text: str) -> str:
    if not text.strip() or any(ch.isspace() for ch in text.strip()):
        raise argparse.ArgumentTypeError("expected a host, *.host, a full origin or *, not %r" % text)
    return text.strip()


def _network(text: str) -> str:
    if parse_network(text) is None:
        raise argparse.ArgumentTypeError("expected an IP address or a CIDR network, not %r" % text)
    return text.strip()


def _health_path(text: str) -> str:
    if not text.startswith("/") or any(c in text for c in "?# \t"):
        raise argparse.ArgumentTypeError("a health path starts with '/' and has no query, such as /healthz; "
                                         "not %r" % text)
    return text


def _realm(text: str) -> str:
    from .wamp.v2.messages import is_loose_uri

    if not is_loose_uri(text):
        raise argparse.ArgumentTypeError("a realm is a URI such as realm1 or com.example, not %r" % text)
    return text


def _token(text: str) -> str:
    if len(text) < 16 or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise argparse.ArgumentTypeError("expected at least 16 printable characters without spaces")
    return text


def _user(text: str) -> str:
    try:
        lookup_user(text)
    except PrivilegeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _group(text: str) -> str:
    try:
        lookup_group(text)
    except PrivilegeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_process_options(command: argparse.ArgumentParser) -> None:
    """``--user`` and ``--group``: who the server runs as once its ports are bound.

    With them, a server command calls :func:`inherited_sockets` before binding
    (systemd socket activation) and :func:`drop_privileges_after_bind` after.
    """
    group = command.add_argument_group("privileges (see docs/tutorial/deployment.md#port-80-without-staying-root)")
    group.add_argument("--user", type=_user, metavar="NAME",
                       help="started as root to bind a port below 1024: switch to this user (name or uid) for good "
                            "right after binding, before serving; the server stops if it cannot. With systemd "
                            "socket activation (LISTEN_FDS) the server serves the sockets it is given and needs "
                            "no root at all")
    group.add_argument("--group", type=_group, metavar="NAME",
                       help="with --user: this group (name or gid) instead of the user's primary group")


def add_deployment_options(command: argparse.ArgumentParser) -> None:
    """The limits and policies a deployment tunes (see the README's limits table)."""
    group = command.add_argument_group("deployment limits")
    group.add_argument("--max-connections", type=_count, default=DEFAULT_MAX_CONNECTIONS, metavar="N",
                       help="simultaneous connections; more are answered 503 with Retry-After "
                            "(on a TLS port: closed before the TLS handshake) (default: %(default)s)")
    group.add_argument("--idle-timeout", type=_seconds, metavar="SECONDS",
                       help="close (1001) a WebSocket silent for this long (default: off)")
    group.add_argument("--keepalive", type=_seconds, metavar="SECONDS",
                       help="ping every WebSocket this often; close (1011) one that did not answer the "
                            "previous ping (default: off)")
    group.add_argument("--allowed-origin", type=_origin, action="append", default=[], metavar="ORIGIN",
                       help="admit WebSocket handshakes only from this Origin (a host, *.host, a full origin "
                            "like https://example.com:8443, or *); repeat for more; requests without an "
                            "Origin (non-browser clients) pass; others get 403 (default: every origin)")
    group.add_argument("--trusted-proxy", type=_network, action="append", default=[], metavar="CIDR",
                       help="a reverse proxy's address or network; connections from it take the client's "
                            "address from X-Forwarded-For; repeat for more (default: none)")
    group.add_argument("--metrics", action="store_true",
                       help="serve Prometheus metrics at GET /metrics on the same port, to loopback peers "
                            "only (or to holders of --metrics-token)")
    group.add_argument("--metrics-token", type=_token, metavar="TOKEN",
                       help="with it, /metrics needs 'Authorization: Bearer TOKEN' (at least 16 characters) "
                            "from every peer instead of being loopback-only; implies --metrics")


def build_stack(args: argparse.Namespace, ws: WsServer, worker: Optional[Worker] = None) -> Any:
    """``ws`` with the deployment options applied: the component IoServer serves.

    In a worker of ``--workers``, ``/metrics`` answers for every worker.  The chat room
    admits upgrades on ``/`` only (:class:`~ratchet_sel.demo.RoomPath`).
    """
    if args.idle_timeout:
        ws.idle_timeout = args.idle_timeout
    if args.keepalive:
        ws.enable_keepalive(args.keepalive)
    component: Any = ws
    if args.command == "chat":
        component = RoomPath(component)  # an upgrade to any other path: 404, before the upgrade
    if args.allowed_origin:
        component = OriginCheck(component, args.allowed_origin, allow_missing=True)
    if args.trusted_proxy:
        component = TrustedProxies(component, args.trusted_proxy)
    if args.metrics or args.metrics_token:
        if worker is None:
            component = MetricsEndpoint(component, token=args.metrics_token)   # judges the socket's peer
        else:
            worker.share_metrics()
            component = MetricsEndpoint(component, token=args.metrics_token, snapshots=worker.metrics_snapshots)
            component.watch_loop(worker.loop)
    if args.health:   # outermost: no origin check or proxy rule may refuse a load balancer's probe
        component = HealthEndpoint(component, args.health, topics=getattr(ws.component, "topics", None),
                                   worker=None if worker is None else worker.index)
    if component is not ws:
        component = HttpServer(component)    # the guards need the parsed request
    return component


def build_topics(args: argparse.Namespace, worker: Optional[Worker] = None) -> Topics:
    """The hub behind the chat room: on Redis with ``--redis``, else in this process
    (in a worker of ``--workers``: through the master's hub, spanning every worker).

    In a worker, a Redis hub is bound to the worker's loop.  Raises
    ``ValueError`` for a malformed ``--redis`` URL.
    """
    if getattr(args, "redis", None):
        redis = RedisPubSub(args.redis, prefix=args.redis_prefix)
        if worker is not None:
            redis.bind(worker.loop)
            worker.on_stop(redis.close)
        return redis
    if worker is not None:
        return worker.topics
    return Topics()


def build_component(args: argparse.Namespace, topics: Optional[Topics] = None,
                    worker: Optional[Worker] = None) -> WsServer:
    """The WebSocket server of the chosen command; the chat room (or the WAMP topics) on ``topics``."""
    options = dict(max_message_size=args.max_message_size)
    if args.no_compression:
        options["compression"] = None
    if args.command == "echo":
        return WsServer(Echo(), **options)
    if args.command == "wamp":
        return WsServer(build_wamp(args, topics, worker), **options)
    chat = Chat(topics)
    publish = PublishEndpoint(chat.topics, args.publish_token, topic=chat.room) if args.publish_token else None
    return WsServer(chat, http_handler=chat_http_handler(publish), **options)


def build_wamp(args: argparse.Namespace, topics: Optional[Topics] = None, worker: Optional[Worker] = None) -> Any:
    """The ``wamp`` command's component: a WAMP v2 router and a v1 server on one hub, by subprotocol.

    In a worker of ``--workers``, calls are routed between the workers too.
    """
    from .wamp import WampServer, WampServerInterface
    from .wamp.v2 import WampRouter, WampVersions

    topics = topics if topics is not None else Topics()
    router = WampRouter(args.realm or ["realm1"], topics)
    if worker is not None:
        router.span_workers(worker)
    return WampVersions(router, WampServer(WampServerInterface(), topics))


class StartupFailed(Exception):
    """The server cannot start: the message is logged, ``status`` is the exit status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def configure_server_logging(args: argparse.Namespace) -> None:
    """Log lines with a timestamp; with ``--workers`` above 1, each names its process."""
    process = "[%(process)d] " if args.workers > 1 else ""
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s " + process + "%(name)s: %(message)s")


def single_process_topics(args: argparse.Namespace) -> Optional[Topics]:
    """The chat room's hub when this process serves alone; ``None`` for echo and for workers.

    With ``--workers`` the hub is still built once here, so that a malformed
    ``--redis`` URL stops the start; each worker then builds its own after fork.
    """
    if args.command not in ("chat", "wamp"):
        return None
    try:
        topics = build_topics(args)
    except ValueError as exc:
        raise StartupFailed(2, "--redis: %s" % exc) from None
    if args.workers > 1:
        topics.close()
        return None
    return topics


def tls_context(args: argparse.Namespace) -> Any:
    """The ``ssl.SSLContext`` of ``--certfile`` (and ``--keyfile``), or ``None`` without it."""
    if not args.certfile:
        if args.keyfile or args.tls_port is not None:
            raise StartupFailed(2, "--keyfile and --tls-port need --certfile")
        return None
    import ssl  # only here: a Python without OpenSSL still serves plain ws://

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(args.certfile, args.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise StartupFailed(1, "cannot load the certificate %s: %s" % (args.certfile, exc)) from None
    return context


def inherited_sockets(args: argparse.Namespace, context: Any) -> Optional[List[Tuple[Any, Any]]]:
    """The listening sockets systemd passed (``LISTEN_PID`` is this process), each with its TLS context.

    ``None`` when none were passed (the server binds ``--host``/``--port``).
    Without ``--tls-port`` every socket gets ``context`` (TLS with
    ``--certfile``); with it, the sockets named ``tls`` (``FileDescriptorName=tls``)
    speak TLS and the others plain.  Raises :class:`StartupFailed` for a
    descriptor that is not a listening TCP socket.
    """
    try:
        inherited = inherited_listeners()
    except ActivationError as exc:
        raise StartupFailed(1, str(exc)) from None
    if not inherited:
        return None
    log.info("serving %d socket(s) from systemd (LISTEN_FDS); --host and --port are not used", len(inherited))
    if args.tls_port is None:
        return [(item.socket, context) for item in inherited]
    tls_count = sum(item.name == "tls" for item in inherited)
    if not 0 < tls_count < len(inherited):
        raise StartupFailed(2, "--tls-port with socket activation: name the TLS socket FileDescriptorName=tls "
                               "in the .socket unit, and the plain one otherwise")
    return [(item.socket, context if item.name == "tls" else None) for item in inherited]


def close_unstarted(server: Any) -> None:
    """Release a server that never ran (an IoServer and its loop, or Workers' sockets)."""
    if isinstance(server, IoServer):
        server.close()
        server.loop.close()
    elif server is not None:
        server.close()


def listen(args: argparse.Namespace, topics: Optional[Topics], context: Any) -> Tuple[Any, List[Tuple[bool, Any]]]:
    """The server (an IoServer, or Workers with ``--workers``) bound to its ports, or on systemd's sockets.

    Returns it with ``(is_tls, (host, port))`` for each listening socket.  A port
    that cannot be bound closes what was opened and raises :class:`StartupFailed`.
    """
    wanted = [(context, args.port)] if args.tls_port is None else [(None, args.port), (context, args.tls_port)]
    inherited = inherited_sockets(args, context)
    server: Any = None
    try:
        if args.workers > 1:
            # Shared sockets (not SO_REUSEPORT) under --user: see Workers; inherited ones are always shared.
            server = Workers(lambda worker: build_stack(args, build_component(
                args, build_topics(args, worker) if args.command in ("chat", "wamp") else None, worker), worker),
                args.workers,
                server_options=dict(max_connections=args.max_connections),
                reuse_port=False if (args.user or inherited) else None)
            if inherited:
                bound = [(tls is not None, server.adopt(sock, tls)[:2]) for sock, tls in inherited]
            else:
                bound = [(tls is not None, server.listen(args.host, port, tls)) for tls, port in wanted]
        elif inherited:
            server = IoServer(build_stack(args, build_component(args, topics)), sock=inherited[0][0],
                              ssl_context=inherited[0][1], max_connections=args.max_connections)
            for sock, tls in inherited[1:]:
                server.adopt(sock, ssl_context=tls)
            bound = [(tls is not None, sock.getsockname()[:2]) for sock, tls in inherited]
        else:
            server = IoServer(build_stack(args, build_component(args, topics)), args.host, args.port,
                              ssl_context=wanted[0][0], max_connections=args.max_connections)
            bound = [(wanted[0][0] is not None, server.socket.getsockname()[:2])]
            if len(wanted) > 1:
                bound.append((True, server.listen(args.host, args.tls_port, ssl_context=context).getsockname()[:2]))
    except OSError as exc:
        close_unstarted(server)
        raise StartupFailed(1, startup_error_text(exc)) from None  # names the address and the port
    return server, bound


def drop_privileges_after_bind(args: argparse.Namespace, server: Any = None) -> None:
    """``--user``/``--group``: become that user now that the ports are bound, before serving or forking.

    Logs what was done; raises :class:`StartupFailed` (status 2 for a usage
    error, 1 when the switch fails) after releasing ``server``.
    """
    try:
        done = drop_privileges(getattr(args, "user", None), getattr(args, "group", None))
    except PrivilegeError as exc:
        close_unstarted(server)
        raise StartupFailed(exc.status, str(exc)) from None
    if done:
        log.info("running as %s", done)


def announce(args: argparse.Namespace, bound: List[Tuple[bool, Any]]) -> None:
    """Log the URL of each listening socket (loopback in place of a wildcard address)."""
    if args.host in _WILDCARDS:
        log.info("listening on all interfaces (%s)", args.host or "0.0.0.0")
    for secure, (host, port) in bound:
        ws_url = _url("wss" if secure else "ws", host, port)
        if args.command == "echo":
            log.info("echo server listening on %s", ws_url)
        elif args.command == "wamp":
            log.info("WAMP router listening on %s (realms %s; wamp.2.json, wamp.2.msgpack, wamp)", ws_url,
                     ", ".join(args.realm or ["realm1"]))
        else:
            log.info("chat demo listening on %s (WebSocket %s)", _url("https" if secure else "http", host, port),
                     ws_url)
    if args.command == "chat" and args.publish_token:
        log.info("POST /publish accepted with the bearer token")


def serve(server: Any, topics: Optional[Topics]) -> int:
    """Run ``server`` until SIGINT/SIGTERM; returns the exit status."""
    if isinstance(server, Workers):
        return server.run()
    if isinstance(topics, RedisPubSub):
        topics.bind(server.loop)  # connect now: an unreachable Redis is reported at start
    try:
        server.run()
    finally:
        if topics is not None:
            topics.close()
    log.info("stopped")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the chosen command (a server until SIGINT/SIGTERM); returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.command == "bundle":
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
        return bundle.run(args)
    if args.command == "client":
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s: %(message)s")
        return run_client(args)
    configure_server_logging(args)
    memory.fix_mmap_threshold()   # before the workers fork: they inherit it (ratchet_sel/ops/memory.py)
    if args.command == "echo":
        log.info("masking: %s", accelerator.status)
    try:
        topics = single_process_topics(args)
        server, bound = listen(args, topics, tls_context(args))
        drop_privileges_after_bind(args, server)
    except StartupFailed as exc:
        log.error("%s", exc)
        return exc.status
    announce(args, bound)
    return serve(server, topics)


if __name__ == "__main__":
    sys.exit(main())
