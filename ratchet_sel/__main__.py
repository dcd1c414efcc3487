"""The command line: ``python -m ratchet_sel echo|chat --host H --port P``."""

import argparse
import logging
import sys
from typing import List, Optional

from . import accelerator
from .demo import Chat, Echo, chat_page
from .pubsub import Topics
from .server import IoServer
from .websocket.server import WsServer

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
        description="WebSocket servers on one selectors loop (RFC 6455 and HyBi-10 on the same port).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name, help_text, default_size in (
            ("echo", "echo every text and binary message back, on any path (the conformance target)",
             64 * 1024 * 1024),
            ("chat", "the chat demo: GET / serves the page, an upgrade to / joins the room",
             1024 * 1024)):
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
        command.add_argument("--port", type=int, default=8000,
                             help="port to listen on; 0 picks a free one (default: %(default)s)")
        command.add_argument("--max-message-size", type=int, default=default_size, metavar="BYTES",
                             help="largest message a client may send; larger closes with 1009 "
                                  "(default: %(default)s)")
        command.add_argument("--certfile", help="PEM certificate (chain): serve wss:// with TLS")
        command.add_argument("--keyfile", help="PEM private key for --certfile (if not in it)")
        command.add_argument("--tls-port", type=int, metavar="PORT",
                             help="with --certfile: serve TLS on this port and plain on --port; "
                                  "without it, --port itself is TLS")
        command.add_argument("--no-compression", action="store_true",
                             help="do not negotiate permessage-deflate (RFC 7692)")
        command.add_argument("--log-level", default="INFO",
                             choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                             help="logging level (default: %(default)s)")
    return parser


def build_topics(args: argparse.Namespace) -> Topics:
    """The hub behind the chat room: in-process today; a backplane spans it over processes."""
    return Topics()


def main(argv: Optional[List[str]] = None) -> int:
    """Run the chosen server until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = dict(max_message_size=args.max_message_size)
    if args.no_compression:
        options["compression"] = None
    if args.command == "echo":
        log.info("masking: %s", accelerator.status)
        ws = WsServer(Echo(), **options)
    else:
        ws = WsServer(Chat(build_topics(args)), http_handler=chat_page, **options)
    context = None
    if args.certfile:
        import ssl  # only here: a Python without OpenSSL still serves plain ws://

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            context.load_cert_chain(args.certfile, args.keyfile)
        except (OSError, ssl.SSLError) as exc:
            log.error("cannot load the certificate %s: %s", args.certfile, exc)
            return 1
    elif args.keyfile or args.tls_port is not None:
        log.error("--keyfile and --tls-port need --certfile")
        return 2
    try:
        if context is not None and args.tls_port is None:
            server = IoServer(ws, args.host, args.port, ssl_context=context)
            listeners = [(True, server.socket)]
        else:
            server = IoServer(ws, args.host, args.port)
            listeners = [(False, server.socket)]
            if context is not None:
                listeners.append((True, server.listen(args.host, args.tls_port, ssl_context=context)))
    except OSError as exc:
        log.error("cannot listen on %s: %s", args.host, exc)
        return 1
    if args.host in _WILDCARDS:
        log.info("listening on all interfaces (%s)", args.host or "0.0.0.0")
    for secure, sock in listeners:
        host, port = sock.getsockname()[:2]
        ws_url = _url("wss" if secure else "ws", host, port)
        if args.command == "echo":
            log.info("echo server listening on %s", ws_url)
        else:
            log.info("chat demo listening on %s (WebSocket %s)", _url("https" if secure else "http", host, port),
                     ws_url)
    server.run()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
