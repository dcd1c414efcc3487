"""Defaults shared by the blocking and the loop-based client."""

from typing import Any, Optional

from ..websocket.deflate import DeflateOffer

__all__ = ["client_offer", "client_ssl_context"]


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
