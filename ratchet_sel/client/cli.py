"""``python -m ratchet_sel client URL``: a wscat-like command line client.

Each line read from stdin is sent as a text message; each message received is
printed on its own line (binary ones as ``[binary N bytes] <hex>``).  When
stdin ends, the client waits until the server has been quiet for ``--wait``
seconds (or until ``--count`` messages arrived), then closes with 1000;
Ctrl-C closes with 1000 at once.  The close code and reason are printed on
stderr; the exit status is in :data:`EXIT_STATUS_HELP`.
"""

import argparse
import logging
import signal
import sys
import threading
from typing import Any, Optional

from ..io.loop import Loop
from ..websocket.rfc6455 import CloseCode
from .handshake import split_header
from .loop import connect_async
from .options import client_ssl_context
from .protocol import DEFAULT_MAX_MESSAGE_SIZE, NORMAL_CLOSE_CODES

__all__ = ["add_client_command", "run_client", "format_message", "describe_close", "EXIT_STATUS_HELP"]

log = logging.getLogger(__name__)

#: The exit statuses of ``python -m ratchet_sel client``, as its ``--help`` shows them.
EXIT_STATUS_HELP = """exit status:
  0    the connection closed normally: code 1000, 1001, or a close frame without a code (1005)
  1    it closed with any other code (1006: dropped without a close frame), or connecting or
       the handshake failed (the reason is on stderr)
  2    a bad argument (a usage error)
  130  interrupted (Ctrl-C) before the connection opened"""


def add_client_command(commands: Any) -> None:
    """Add the ``client`` subcommand to an argparse subparsers object."""
    help_text = "connect to a WebSocket server: stdin lines are sent, messages received are printed"
    command = commands.add_parser("client", help=help_text, description=help_text, epilog=EXIT_STATUS_HELP,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("url", help="ws:// or wss:// URL")
    command.add_argument("--header", "-H", action="append", default=[], metavar="'NAME: VALUE'",
                         help="an extra request header (repeatable)")
    command.add_argument("--subprotocol", "-s", action="append", default=[], metavar="NAME",
                         help="offer this subprotocol (repeatable, in order of preference)")
    command.add_argument("--origin", help="the Origin header")
    command.add_argument("--no-compression", action="store_true", help="do not offer permessage-deflate")
    command.add_argument("--insecure", "-k", action="store_true",
                         help="wss://: do not verify the server's certificate")
    command.add_argument("--cafile", help="wss://: verify against these CA certificates (PEM)")
    command.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                         help="for connecting and each handshake (default: %(default)s)")
    command.add_argument("--wait", type=float, default=1.0, metavar="SECONDS",
                         help="after stdin ends, close once the server was quiet this long (default: %(default)s)")
    command.add_argument("--count", type=int, metavar="N",
                         help="after stdin ends, close as soon as N messages were received in all")
    command.add_argument("--max-message-size", type=int, default=DEFAULT_MAX_MESSAGE_SIZE, metavar="BYTES",
                         help="largest message accepted (default: %(default)s)")
    command.add_argument("--show-headers", action="store_true",
                         help="print the 101 response's headers to stderr once connected")


def describe_close(code: Optional[int], reason: str) -> str:
    """The line printed when the connection ends: its close code and reason."""
    if code is None or code == CloseCode.NO_STATUS:
        return "connection closed without a close code"
    if code == CloseCode.ABNORMAL:
        return "connection closed with code 1006: dropped without a close frame"
    return "connection closed with code %d%s" % (code, ": " + reason if reason else "")


def format_message(message: Any) -> str:
    """How a received message is printed: text as is, binary as length and hex."""
    if isinstance(message, str):
        return message
    return "[binary %d bytes] %s" % (len(message), message.hex())


class _Session:
    """The command's component: prints messages, sends lines, tracks how it ended."""

    def __init__(self, loop: Loop, args: argparse.Namespace, out: Any) -> None:
        self.loop = loop
        self.args = args
        self.out = out
        self.conn: Any = None
        self.received = 0
        self.stdin_done = False
        self.exit_status = 1
        self._quiet_timer: Any = None

    # component callbacks
    def on_open(self, conn: Any) -> None:
        if self.args.show_headers:
            for name, value in conn.response_headers.items():
                print("%s: %s" % (name, value), file=sys.stderr)
        log.info("connected to %s%s", conn.url,
                 " (subprotocol %s)" % conn.subprotocol if conn.subprotocol else "")
        threading.Thread(target=self._read_stdin, name="stdin", daemon=True).start()

    def on_message(self, conn: Any, message: Any) -> None:
        self.received += 1
        try:
            self.out.write(format_message(message) + "\n")
            self.out.flush()
        except BrokenPipeError:
            conn.close()
            return
        if self.stdin_done:
            self._maybe_finish()

    def on_close(self, conn: Any) -> None:
        code = conn.close_code
        print(describe_close(code, conn.close_reason), file=sys.stderr)
        self.exit_status = 0 if code in NORMAL_CLOSE_CODES else 1
        self.loop.stop()

    def on_error(self, conn: Any, exc: BaseException) -> None:
        print("error: %s" % (exc.strerror if isinstance(exc, OSError) and exc.strerror else exc), file=sys.stderr)
        if conn.is_open:
            conn.close(CloseCode.INTERNAL_ERROR, "client error")
        elif self.conn is None or conn.close_code is None:
            self.loop.stop()  # never opened: nothing more will come

    # stdin
    def _read_stdin(self) -> None:
        # A thread: stdin may be a terminal, a pipe or a file, and a regular
        # file cannot be watched by epoll.
        for line in sys.stdin:
            self.loop.call_soon_threadsafe(self._send_line, line.rstrip("\r\n"))
        self.loop.call_soon_threadsafe(self._stdin_ended)

    def _send_line(self, line: str) -> None:
        if self.conn is not None and self.conn.is_open:
            self.conn.send(line)

    def _stdin_ended(self) -> None:
        self.stdin_done = True
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if self.conn is None or not self.conn.is_open:
            return
        if self.args.count is not None and self.received >= self.args.count:
            self.conn.close(CloseCode.NORMAL)
            return
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
        self._quiet_timer = self.loop.call_later(self.args.wait, self._quiet)

    def _quiet(self) -> None:
        if self.conn is not None and self.conn.is_open:
            self.conn.close(CloseCode.NORMAL)

    def interrupt(self) -> None:
        """Ctrl-C: close with 1000 (a second one gives up at once)."""
        if self.conn is not None and self.conn.is_open:
            self.conn.close(CloseCode.NORMAL)
        else:
            self.exit_status = 130  # interrupted before the connection opened
            self.loop.stop()


def run_client(args: argparse.Namespace, out: Optional[Any] = None) -> int:
    """Run the ``client`` command; returns the exit status."""
    try:
        headers = [split_header(text) for text in args.header]
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    context = None
    if args.url.lower().startswith("wss:"):
        context = client_ssl_context(cafile=args.cafile, insecure=args.insecure)
    loop = Loop()
    session = _Session(loop, args, out if out is not None else sys.stdout)
    try:
        session.conn = connect_async(loop, args.url, session, subprotocols=args.subprotocol, headers=headers,
                                     origin=args.origin, timeout=args.timeout,
                                     compression=not args.no_compression, ssl_context=context,
                                     max_message_size=args.max_message_size, close_timeout=args.timeout)
    except ValueError as exc:
        print("error: %s" % exc, file=sys.stderr)
        loop.close()
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, session.interrupt)
    try:
        loop.run()
    finally:
        loop.close()
    return session.exit_status
