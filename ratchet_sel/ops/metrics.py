"""Prometheus metrics: the process's counters in text exposition format 0.0.4 at ``GET /metrics``.

- :class:`MetricsEndpoint` is a component of the HTTP layer: placed under
  :class:`~ratchet_sel.http.HttpServer`, it answers ``GET /metrics`` on the
  same port as the WebSockets and hands every other request on.  Access:
  with a ``token``, only requests carrying ``Authorization: Bearer <token>``
  (from anywhere, loopback included); without one, only loopback peers
  (127.0.0.0/8, ::1) whose request has no ``X-Forwarded-For``/``Forwarded``
  header -- a reverse proxy on the same host would otherwise make every
  outside request look local.  Others get 401 (token) or 403 (loopback).
- :func:`snapshot` is this process's figures as a plain, JSON-ready dict;
  :func:`render` turns one or several snapshots into the exposition.  With
  several worker processes, each worker's snapshot goes to whoever answers
  the scrape (the master, or the worker that got the request, collecting the
  others' over its channel to them) and :func:`render` combines them:
  counters and connection gauges are summed over the workers; the loop's lag
  and busy ratio, which mean nothing summed, stay per worker with a
  ``worker`` label.
- :class:`LoopMonitor` measures the loop: how late a timer fires (lag) and
  the CPU time the process spends per second of wall time (busy ratio: the
  loop is single-threaded, so this is the loop's share of one core).

The counters live in :mod:`ratchet_sel.stats`: one integer increment per
event where it happens; everything else is computed at scrape time.
"""

import hmac
import ipaddress
import logging
import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ..server.endpoint import Endpoint
from ..http.response import Response
from ..http.server import refuse, send_response
from .stats import STATS

__all__ = ["MetricsEndpoint", "LoopMonitor", "snapshot", "render", "CONTENT_TYPE", "METRICS"]

log = logging.getLogger(__name__)

#: The Content-Type of the exposition (Prometheus text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: WebSocket versions always listed by ``ratchet_sel_connections_open`` (zero when none is open).
VERSIONS = ("rfc6455", "hybi-10", "hixie-76", "hixie-75")

# name -> (type, help, how snapshots combine: "sum" over workers, or "worker": one series each)
METRICS: Dict[str, Tuple[str, str, str]] = {
    "ratchet_sel_connections_open": (
        "gauge", "Open WebSocket connections, by protocol version.", "sum"),
    "ratchet_sel_connections_accepted_total": (
        "counter", "TCP connections accepted (those refused for capacity included).", "sum"),
    "ratchet_sel_messages_received_total": (
        "counter", "WebSocket messages received and delivered to the application.", "sum"),
    "ratchet_sel_messages_sent_total": (
        "counter", "WebSocket messages sent (handed to a connection's transport).", "sum"),
    "ratchet_sel_received_bytes_total": (
        "counter", "Bytes read from client sockets (after TLS decryption).", "sum"),
    "ratchet_sel_sent_bytes_total": (
        "counter", "Bytes written to client sockets (before TLS encryption).", "sum"),
    "ratchet_sel_closes_total": (
        "counter", "WebSocket connections ended, by close code (1006: no close frame).", "sum"),
    "ratchet_sel_handshakes_refused_total": (
        "counter", "Requests answered with an HTTP error status and a reason, by status.", "sum"),
    "ratchet_sel_slow_clients_total": (
        "counter", "Clients that did not read: closed with 1008, or that began to lose messages (drop).",
        "sum"),
    "ratchet_sel_messages_dropped_total": (
        "counter", "Messages not sent to clients that did not read (slow_client_policy drop).", "sum"),
    "ratchet_sel_loop_lag_seconds": (
        "gauge", "How late the event loop ran a timer, at the last measurement.", "worker"),
    "ratchet_sel_loop_busy_ratio": (
        "gauge", "CPU seconds the process used per wall-clock second over the last interval.", "worker"),
}


def _labels(**labels: Any) -> str:
    """A label set in exposition syntax (without braces), values escaped."""
    parts = []
    for name, value in labels.items():
        text = str(value).replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")
        parts.append('%s="%s"' % (name, text))
    return ",".join(parts)


def snapshot(worker: Optional[str] = None) -> Dict[str, Any]:
    """This process's figures: ``{"worker": id, "metrics": {name: {label set: value}}}`` (plain, JSON-ready).

    ``worker`` names the process in a combined exposition (default: its pid).
    """
    stats = STATS
    open_by_version = {version: 0 for version in VERSIONS}
    for version, count in stats.websockets_open.items():
        open_by_version[version] = max(0, count)
    figures: Dict[str, Dict[str, Any]] = {
        "ratchet_sel_connections_open": {_labels(version=v): n for v, n in open_by_version.items()},
        "ratchet_sel_connections_accepted_total": {"": stats.connections_accepted},
        "ratchet_sel_messages_received_total": {"": stats.messages_received},
        "ratchet_sel_messages_sent_total": {"": stats.messages_sent},
        "ratchet_sel_received_bytes_total": {"": stats.bytes_received},
        "ratchet_sel_sent_bytes_total": {"": stats.bytes_sent},
        "ratchet_sel_closes_total": {_labels(code=code): n for code, n in sorted(stats.closes.items())},
        "ratchet_sel_handshakes_refused_total": {_labels(status=status): n
                                                 for status, n in sorted(stats.refused.items())},
        "ratchet_sel_slow_clients_total": {_labels(action="closed"): stats.slow_clients_closed,
                                           _labels(action="dropping"): stats.slow_clients_dropping},
        "ratchet_sel_messages_dropped_total": {"": stats.messages_dropped},
        "ratchet_sel_loop_lag_seconds": {} if stats.loop_lag is None else {"": stats.loop_lag},
        "ratchet_sel_loop_busy_ratio": {} if stats.loop_busy is None else {"": stats.loop_busy},
    }
    return {"worker": worker if worker is not None else str(os.getpid()), "metrics": figures}


def _number(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def render(snapshots: Iterable[Dict[str, Any]]) -> str:
    """The text exposition (format 0.0.4) of one or several :func:`snapshot` dicts.

    Counters and connection gauges are summed over the snapshots; the loop's
    gauges get one series per snapshot, labelled ``worker`` when there are
    several.
    """
    snapshots = list(snapshots)
    lines: List[str] = []
    for name, (kind, help_text, combine) in METRICS.items():
        lines.append("# HELP %s %s" % (name, help_text))
        lines.append("# TYPE %s %s" % (name, kind))
        if combine == "sum":
            totals: Dict[str, Any] = {}
            for snap in snapshots:
                for labels, value in snap["metrics"].get(name, {}).items():
                    totals[labels] = totals.get(labels, 0) + value
            series = list(totals.items())
        else:
            series = []
            for snap in snapshots:
                for labels, value in snap["metrics"].get(name, {}).items():
                    if len(snapshots) > 1:
                        worker = _labels(worker=snap["worker"])
                        labels = worker + ("," + labels if labels else "")
                    series.append((labels, value))
        for labels, value in series:
            lines.append("%s%s %s" % (name, "{%s}" % labels if labels else "", _number(value)))
    return "\n".join(lines) + "\n"


class LoopMonitor:
    """Measures the loop every ``interval`` seconds into :data:`~ratchet_sel.stats.STATS`.

    Lag: how much later than asked a timer ran (a busy loop runs it late).
    Busy ratio: process CPU time over wall time since the previous look.
    """

    def __init__(self, loop: Any, interval: float = 1.0) -> None:
        self.loop = loop
        self.interval = interval
        self._timer: Any = None
        self._due = 0.0
        self._wall = 0.0
        self._cpu = 0.0

    def start(self) -> "LoopMonitor":
        """Begin measuring (idempotent)."""
        if self._timer is None:
            self._wall, self._cpu = time.monotonic(), time.process_time()
            self._schedule()
        return self

    def stop(self) -> None:
        """Stop measuring."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        self._due = self.loop.time() + self.interval
        self._timer = self.loop.call_later(self.interval, self._measure)

    def _measure(self) -> None:
        now = self.loop.time()
        wall, cpu = time.monotonic(), time.process_time()
        STATS.loop_lag = max(0.0, now - self._due)
        if wall > self._wall:
            STATS.loop_busy = min(1.0, max(0.0, (cpu - self._cpu) / (wall - self._wall)))
        self._wall, self._cpu = wall, cpu
        self._schedule()


def _is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class MetricsEndpoint(Endpoint):
    """Answers ``GET path`` (``/metrics``) with the exposition; passes every other request on.

    Place it under :class:`~ratchet_sel.http.HttpServer` and above
    :class:`~ratchet_sel.proxy.TrustedProxies` (so that the peer it judges is
    the socket's): ``IoServer(HttpServer(MetricsEndpoint(WsServer(app))))``.

    - ``token``: when set, a scrape needs ``Authorization: Bearer <token>``
      (401 otherwise); when not, only loopback peers without forwarding
      headers may scrape (403 otherwise).
    - ``snapshots``: a function returning the snapshots to render (default:
      this process's alone); a multi-process server passes one that gathers
      every worker's.
    - ``loop_interval``: how often :class:`LoopMonitor` measures the loop
      (started with the first connection; ``None``: not at all).
    """

    def __init__(self, component: Any, *, token: Optional[str] = None, path: str = "/metrics",
                 snapshots: Optional[Callable[[], List[Dict[str, Any]]]] = None,
                 loop_interval: Optional[float] = 1.0) -> None:
        if token is not None and not token:
            raise ValueError("an empty token would admit everyone; pass None for loopback-only access")
        super().__init__(component, path)
        self.token = token
        self.snapshots = snapshots or (lambda: [snapshot()])
        self.loop_interval = loop_interval
        self.monitor: Optional[LoopMonitor] = None

    def watch_loop(self, loop: Any) -> None:
        """Start measuring ``loop`` now (else it starts with the first connection)."""
        if self.monitor is None and self.loop_interval:
            self.monitor = LoopMonitor(loop, self.loop_interval).start()

    def on_open(self, conn: Any, *args: Any) -> None:
        if self.monitor is None and self.loop_interval and getattr(conn, "loop", None) is not None:
            self.watch_loop(conn.loop)
        super().on_open(conn, *args)

    def answer(self, conn: Any, request: Any) -> None:
        """The exposition to an admitted scrape; 401, 403 or 405 otherwise."""
        refusal = self._refusal(conn, request)
        if refusal is not None:
            status, reason, headers = refusal
            refuse(conn, status, reason, headers)
            return
        body = render(self.snapshots()).encode("utf-8")
        send_response(conn, Response(200, body, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}))

    def _refusal(self, conn: Any, request: Any) -> Optional[Tuple[int, str, Optional[Dict[str, str]]]]:
        if request.method != "GET":
            return 405, "Metrics are read with GET", {"Allow": "GET"}
        if self.token is not None:
            scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode("utf-8"),
                                                                  self.token.encode("utf-8")):
                return None
            log.info("%r: metrics scrape without the right bearer token", conn)
            return 401, "Metrics need the bearer token", {"WWW-Authenticate": 'Bearer realm="metrics"'}
        forwarded = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
        if _is_loopback(str(conn.remote_address)) and not forwarded:
            return None
        log.info("%r: metrics scrape from a non-loopback peer refused", conn)
        return 403, "Metrics are served to loopback peers only", None
