"""Ratchet's connection decorators (as Ratchet's ``Server/``): each wraps the next component.

- :mod:`~ratchet_sel.server.guard`: :class:`Guard`, refusing a connection before the upgrade;
- :mod:`~ratchet_sel.server.auth`: :class:`TokenAuth` and :class:`BasicAuth`, who is connecting;
- :mod:`~ratchet_sel.server.endpoint`: :class:`Endpoint`, answering one URL path itself (metrics, health);
- :mod:`~ratchet_sel.server.origin`: :class:`OriginCheck`;
- :mod:`~ratchet_sel.server.blacklist`: :class:`IpBlackList`;
- :mod:`~ratchet_sel.server.proxy`: :class:`TrustedProxies` (the client's address behind a proxy);
- :mod:`~ratchet_sel.server.flash`: :class:`FlashPolicy`;
- :mod:`~ratchet_sel.server.addresses`: address and network parsing they share.
"""

from .auth import BasicAuth, TokenAuth
from .blacklist import IpBlackList
from .endpoint import Endpoint
from .flash import FlashPolicy
from .guard import Guard, Refusal
from .origin import OriginCheck
from .proxy import TrustedProxies

__all__ = ["Endpoint", "Guard", "Refusal", "TokenAuth", "BasicAuth", "OriginCheck", "IpBlackList", "TrustedProxies", "FlashPolicy"]

# Before wave 3, ``ratchet_sel.server`` was the module of IoServer and its
# transport; those names still import from here, from their new home.
_OLD_NAMES = ("IoServer", "Connection", "TlsConnection", "bind_listener", "DEFAULT_MAX_CONNECTIONS",
              "kernel_unsent_bytes", "RECV_SIZE", "DIRECT_WRITE_SIZE")


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """The names ``ratchet_sel.server`` had before it became this package (PEP 562)."""
    if name in _OLD_NAMES:
        from ..io import listener, stream
        return getattr(listener, name, None) or getattr(stream, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
