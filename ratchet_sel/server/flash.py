"""FlashPolicy: the cross-domain socket policy that Flash-based WebSocket shims ask for.

Before it opens a socket, Flash (web-socket-js and similar polyfills for old
browsers) connects to port 843 of the host, or failing that to the target
port itself, sends ``<policy-file-request/>`` and a NUL byte, and expects the
policy XML followed by a NUL byte, after which the server closes.
"""

import logging
import re
from typing import Any, Dict, List, Optional, Tuple
from xml.sax.saxutils import quoteattr

from ..component import MessageComponent

__all__ = ["FlashPolicy", "POLICY_REQUEST"]

log = logging.getLogger(__name__)

#: What a Flash client sends, NUL byte included.
POLICY_REQUEST = b"<policy-file-request/>\0"

_DOCTYPE = ('<!DOCTYPE cross-domain-policy SYSTEM '
            '"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd">')
# Ratchet's rules: a host name, optionally with a scheme, or "*."-wildcarded, or "*".
_DOMAIN = re.compile(r"^((https?://)?([a-z0-9\-_]+\.|\*\.)*([a-z0-9\-_.]+)|\*)$", re.IGNORECASE)
_PORTS = re.compile(r"^(\*|(\d+[,\-]?)*\d+)$")
# "by-content-type" and "by-ftp-filename" do not apply to socket policies.
_SITE_CONTROLS = ("none", "master-only", "all")


class FlashPolicy(MessageComponent):
    """Answers Flash's policy request, as Ratchet's FlashPolicy.

    Configure it with :meth:`add_allowed_access` (at least once: a policy
    without any entry lets no one in) and :meth:`set_site_control`.

    Alone under an :class:`~ratchet_sel.IoServer` (port 843) it answers the
    request and closes.  Given a ``component`` it shares a port with it: a
    connection whose first byte is ``<`` (no HTTP request starts so) gets the
    policy, any other is handed to ``component`` with its bytes intact.  A
    client must send its request within ``timeout`` seconds.
    """

    def __init__(self, component: Any = None, *, timeout: float = 10.0) -> None:
        self.component = component
        self.timeout = timeout
        self._access: List[Tuple[str, str, bool]] = []
        self._site_control = "all"
        self._cache: Optional[bytes] = None
        # Connections still deciding or reading their request -> [buffer, timer].
        self._pending: Dict[Any, list] = {}
        self._passed: set = set()

    # -- configuration ---------------------------------------------------------------
    def add_allowed_access(self, domain: str, ports: Any = "*", secure: bool = False) -> "FlashPolicy":
        """Let pages from ``domain`` connect to ``ports`` (``"*"``, ``"8080"``, ``"80,443"``, ``"1000-2000"``).

        ``secure=True`` admits only pages served over HTTPS.  Raises
        ValueError for a malformed domain or port list.
        """
        ports = str(ports)
        if not _DOMAIN.match(domain):
            raise ValueError("invalid domain for a Flash policy: %r" % (domain,))
        if not _PORTS.match(ports):
            raise ValueError("invalid port list for a Flash policy: %r" % (ports,))
        self._access.append((domain, ports, bool(secure)))
        self._cache = None
        return self

    def clear_allowed_access(self) -> "FlashPolicy":
        """Remove every entry added by :meth:`add_allowed_access`."""
        self._access = []
        self._cache = None
        return self

    def set_site_control(self, permitted_cross_domain_policies: str = "all") -> "FlashPolicy":
        """Which policy files the host honours: ``"none"``, ``"master-only"`` or ``"all"``."""
        if permitted_cross_domain_policies not in _SITE_CONTROLS:
            raise ValueError("site control must be one of %s" % ", ".join(_SITE_CONTROLS))
        self._site_control = permitted_cross_domain_policies
        self._cache = None
        return self

    def render_policy(self) -> str:
        """The policy XML document."""
        entries = "".join(
            "<allow-access-from domain=%s to-ports=%s secure=%s/>"
            % (quoteattr(domain), quoteattr(ports), quoteattr("true" if secure else "false"))
            for domain, ports, secure in self._access)
        return ('<?xml version="1.0"?>\n%s\n<cross-domain-policy>'
                "<site-control permitted-cross-domain-policies=%s/>%s</cross-domain-policy>\n"
                % (_DOCTYPE, quoteattr(self._site_control), entries))

    def policy_bytes(self) -> bytes:
        """What is sent: the XML and a NUL byte."""
        if self._cache is None:
            if not self._access:
                log.warning("Flash policy has no allowed access: every Flash client is denied "
                            "(call add_allowed_access)")
            self._cache = self.render_policy().encode("utf-8") + b"\0"
        return self._cache

    # -- the component ---------------------------------------------------------------
    def on_open(self, conn: Any, *args: Any) -> None:
        timer = conn.loop.call_later(self.timeout, self._on_timeout, conn)
        self._pending[conn] = [bytearray(), timer]

    def on_message(self, conn: Any, data: Any) -> None:
        if conn in self._passed:
            self.component.on_message(conn, data)
            return
        pending = self._pending.get(conn)
        if pending is None:
            return
        buffer = pending[0]
        if not buffer and self.component is not None and data[:1] != b"<":
            self._pass_on(conn, data)
            return
        buffer += data
        end = buffer.find(b"\0")
        if end < 0:
            if len(buffer) >= len(POLICY_REQUEST):
                self._reject(conn, "no policy request in the first %d bytes" % len(buffer))
            return
        if bytes(buffer[:end + 1]) != POLICY_REQUEST:
            self._reject(conn, "not a policy request: %r" % bytes(buffer[:end + 1])[:40])
            return
        self._forget(conn)
        log.debug("%r: sending the Flash policy", conn)
        conn.send(self.policy_bytes())
        conn.close()

    def on_close(self, conn: Any) -> None:
        self._forget(conn)
        if conn in self._passed:
            self._passed.discard(conn)
            self.component.on_close(conn)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        if conn in self._passed:
            self.component.on_error(conn, exc)
        else:
            self._forget(conn)
            conn.close()

    def on_shutdown(self, conn: Any) -> None:
        """Pass a server shutdown on for connections handed on; close the others."""
        handler = getattr(self.component, "on_shutdown", None)
        if conn in self._passed and handler is not None:
            handler(conn)
        else:
            self._forget(conn)
            conn.close()

    def on_refuse(self, conn: Any) -> None:
        """The server is full: let the wrapped component answer (e.g. 503), if there is one."""
        handler = getattr(self.component, "on_refuse", None)
        if handler is not None:
            handler(conn)

    def _pass_on(self, conn: Any, data: Any) -> None:
        self._forget(conn)
        self._passed.add(conn)
        self.component.on_open(conn)
        if conn in self._passed and not conn.closed:
            self.component.on_message(conn, data)

    def _reject(self, conn: Any, why: str) -> None:
        log.info("%r: closed: %s", conn, why)
        self._forget(conn)
        conn.close()

    def _on_timeout(self, conn: Any) -> None:
        if conn in self._pending:
            self._reject(conn, "no policy request within %g s" % self.timeout)

    def _forget(self, conn: Any) -> None:
        pending = self._pending.pop(conn, None)
        if pending is not None:
            pending[1].cancel()
