"""The opening handshake of RFC 6455 and HyBi-07/08/10, sans-IO.

:func:`negotiate` checks an upgrade request and returns what was agreed
(version, subprotocol, extension) with the ``101`` response to send, or raises
:class:`~ratchet_sel.http.HttpError` with the status and reason to refuse it
with.  The draft-75/76 handshakes live in :mod:`ratchet_sel.websocket.hixie`.
"""

import base64
import binascii
import hashlib
from typing import Any, Callable, List, Optional, Sequence, Tuple

from ..http.request import HttpError, Request, header_tokens

__all__ = ["GUID", "accept_key", "negotiate", "Agreement", "detect_version",
           "offered_subprotocols", "select_subprotocol", "check_upgrade", "SUPPORTED_VERSIONS",
           "SUPPORTED_VERSION_LIST"]

#: The fixed GUID that RFC 6455 section 1.3 appends to the client's key.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Sec-WebSocket-Version values understood, to the name ``conn.version`` gets.
#: HyBi-07 and HyBi-08 (versions 7 and 8) frame exactly like HyBi-10.
SUPPORTED_VERSIONS = {"13": "rfc6455", "8": "hybi-10", "7": "hybi-10"}
#: What a 426 answer advertises, in order of preference.
SUPPORTED_VERSION_LIST = ", ".join(SUPPORTED_VERSIONS)


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for a client's Sec-WebSocket-Key."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def detect_version(request: Request) -> Optional[str]:
    """Which protocol a WebSocket upgrade request asks for.

    ``"rfc6455"``/``"hybi-10"`` (by Sec-WebSocket-Version), ``"hixie-76"`` (keys
    1 and 2, no version), ``"hixie-75"`` (``Upgrade: WebSocket`` and neither),
    ``"unknown"`` for a version this server does not speak, ``None`` when the
    request is no WebSocket upgrade at all.
    """
    headers = request.headers
    if "websocket" not in header_tokens(headers.get("Upgrade")):
        return None
    version = headers.get("Sec-WebSocket-Version")
    if version is not None:
        return SUPPORTED_VERSIONS.get(version.strip(), "unknown")
    if "Sec-WebSocket-Key1" in headers or "Sec-WebSocket-Key2" in headers:
        return "hixie-76"
    if "Sec-WebSocket-Key" in headers:
        return "unknown"  # a HyBi key without a version: not a draft request
    return "hixie-75"


def check_upgrade(request: Request) -> None:
    """The request-level rules every WebSocket version shares (RFC 6455 4.2.1)."""
    if request.method != "GET":
        raise HttpError(405, "WebSocket upgrades must use GET", {"Allow": "GET"})
    if request.version != "1.1":
        raise HttpError(400, "WebSocket upgrades need HTTP/1.1")
    if not request.headers.get("Host"):
        raise HttpError(400, "Missing Host header")
    if "upgrade" not in header_tokens(request.headers.get("Connection")):
        raise HttpError(400, "Connection header must contain 'Upgrade'")


def offered_subprotocols(request: Request) -> List[str]:
    """The subprotocols the client offered, in its order of preference."""
    offered: List[str] = []
    for value in request.headers.get_all("Sec-WebSocket-Protocol"):
        offered.extend(token.strip() for token in value.split(",") if token.strip())
    return offered


def select_subprotocol(request: Request, supported: Sequence[str], strict: bool = False) -> Optional[str]:
    """The first subprotocol in the client's list that the server supports.

    With none in common: ``None`` (no header is sent), or, when ``strict`` and
    the client offered some, a refusal.
    """
    offered = offered_subprotocols(request)
    for name in offered:
        if name in supported:
            return name
    if strict and offered:
        raise HttpError(400, "None of the offered subprotocols is supported")
    return None


class Agreement:
    """What a successful handshake settled, and the response that says so."""

    __slots__ = ("version", "subprotocol", "extension", "response")

    def __init__(self, version: str, subprotocol: Optional[str], extension: Any, response: bytes) -> None:
        self.version = version
        self.subprotocol = subprotocol
        self.extension = extension
        self.response = response


def _client_key(request: Request) -> str:
    keys = request.headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        raise HttpError(400, "Exactly one Sec-WebSocket-Key is required")
    key = keys[0].strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise HttpError(400, "Sec-WebSocket-Key is not base64") from None
    if len(raw) != 16:
        raise HttpError(400, "Sec-WebSocket-Key must encode 16 bytes")
    return key


def negotiate(request: Request, *, subprotocols: Sequence[str] = (), strict_subprotocols: bool = False,
              negotiate_extensions: Optional[Callable[[Request], Tuple[Any, Optional[str]]]] = None
              ) -> Agreement:
    """Check an RFC 6455 / HyBi upgrade request and build the ``101`` response.

    ``negotiate_extensions(request)`` returns ``(extension, header_value)``,
    ``(None, None)`` when nothing is agreed.  Raises
    :class:`~ratchet_sel.http.HttpError` (400, 405, 426) to refuse.
    """
    version = detect_version(request)
    if version not in ("rfc6455", "hybi-10"):
        raise HttpError(426, "Unsupported WebSocket version; this server speaks 13, 8 and 7",
                        {"Sec-WebSocket-Version": SUPPORTED_VERSION_LIST})
    check_upgrade(request)
    key = _client_key(request)
    subprotocol = select_subprotocol(request, subprotocols, strict_subprotocols)
    extension, extension_header = (negotiate_extensions(request) if negotiate_extensions
                                   else (None, None))
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + accept_key(key),
    ]
    if subprotocol is not None:
        lines.append("Sec-WebSocket-Protocol: " + subprotocol)
    if extension_header:
        lines.append("Sec-WebSocket-Extensions: " + extension_header)
    response = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return Agreement(version, subprotocol, extension, response)
