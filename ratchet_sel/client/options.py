"""Defaults shared by the blocking and the loop-based client."""

from typing import Any, Optional

from ..websocket.deflate import DeflateOffer

__all__ = ["client_offer", "client_ssl_context", "connect_error"]

NOT_TLS = "the server is not speaking TLS (a wss:// URL for a plain ws:// port?)"


def client_offer(compression: Any) -> Optional[DeflateOffer]:
    """The permessage-deflate offer for a ``compression`` argument (True, False/None or a DeflateOffer)."""
    if compression is True:
        return DeflateOffer()
    if not compression:
        return None
    if isinstance(compression, DeflateOffer):
        return compression
    raise TypeError("compression is True, False or a DeflateOffer, not %r" % (compression,))


def client_ssl_context(cafile: Optional[str] = None, insecure: bool = False) -> Any:
    """A TLS context for ``wss://``: the system's CAs (or ``cafile``), certificate and host name verified.

    ``insecure`` turns verification off (for a self-signed test server only).
    """
    import ssl  # here: a Python without OpenSSL still speaks ws://

    context = ssl.create_default_context(cafile=cafile)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect_error(exc: BaseException, host: str, port: int) -> BaseException:
    """``exc`` (from resolving, connecting or the TLS handshake) as the same type, its message naming the address.

    ``ConnectionRefusedError: cannot connect to 127.0.0.1:1234: Connection
    refused`` (with the original ``errno``), so that ``except
    ConnectionRefusedError`` still works; a TLS handshake with a plain port
    says that the server is not speaking TLS.  Other exceptions, and ones
    already naming the address (timeouts), are returned as they are.
    """
    if not isinstance(exc, OSError) or isinstance(exc, TimeoutError):
        return exc
    where = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    text = exc.strerror or str(exc)
    if getattr(exc, "reason", None) in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        text = NOT_TLS
    elif where in text:
        return exc
    message = "cannot connect to %s: %s" % (where, text)
    try:
        if hasattr(exc, "library"):    # ssl.SSLError: its text is its second argument
            named = type(exc)(exc.errno, message)
            named.library, named.reason = exc.library, exc.reason   # type: ignore[attr-defined]
        else:
            named = type(exc)(message)
            named.errno = exc.errno
    except (TypeError, AttributeError):   # a subclass with arguments of its own
        return exc
    return named
