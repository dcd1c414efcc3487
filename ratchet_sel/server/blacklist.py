"""IpBlackList: close connections from blocked addresses before the application sees them."""

import logging
from typing import Any, Dict, List, Optional

from .addresses import IpNetwork, address_in, parse_network
from .guard import Guard, Refusal, refuse_connection
from ..ops.ratelimit import RateLimitedLog
from ..websocket.connection import WsConnection

__all__ = ["IpBlackList"]

log = logging.getLogger(__name__)

# A blocked address retrying in a loop would write a line per attempt: one per 10 s, with a count.
_refusals_log = RateLimitedLog(log)


class IpBlackList(Guard):
    """Refuses connections whose ``remote_address`` is blocked (Ratchet's IpBlackList).

    Entries are addresses (``"203.0.113.9"``, ``"2001:db8::1"``) or networks
    (``"198.51.100.0/24"``); anything else is matched literally.  The address
    checked is ``conn.remote_address`` when the connection opens, so placed
    behind :class:`~ratchet_sel.proxy.TrustedProxies` it sees the client's
    address, not the proxy's.  Blocking an address does not close
    connections already open from it.

    A refused connection is answered ``403`` with a reason when it came with
    an HTTP request, and closed with 1008 when it is a WebSocket connection.
    Directly under :class:`~ratchet_sel.IoServer` (no request read yet) it is
    sent the ``403`` response at once, unless ``http_answer=False`` (for
    protocols other than HTTP): then it is just closed.
    """

    def __init__(self, component: Any, *, http_answer: bool = True) -> None:
        super().__init__(component)
        self.http_answer = http_answer
        # The text as given -> its network (None: matched literally).
        self._blocked: Dict[str, Optional[IpNetwork]] = {}

    def block_address(self, address: str) -> "IpBlackList":
        """Block an address or a network; returns self, as in Ratchet."""
        self._blocked[address.strip()] = parse_network(address)
        return self

    def unblock_address(self, address: str) -> "IpBlackList":
        """Unblock an address or network blocked before (no error if it was not)."""
        network = parse_network(address)
        for text, blocked in list(self._blocked.items()):
            if text == address.strip() or (network is not None and blocked == network):
                del self._blocked[text]
        return self

    def is_blocked(self, address: str) -> bool:
        """Whether connections from ``address`` are refused."""
        if self._blocked.get(address.strip(), 0) is None:
            return True
        return address_in(address, [n for n in self._blocked.values() if n is not None])

    def blocked_addresses(self) -> List[str]:
        """The blocked addresses and networks, as given (Ratchet's getBlockedAddresses)."""
        return list(self._blocked)

    def check(self, conn: Any, request: Any) -> Optional[Refusal]:
        address = conn.remote_address
        if self.is_blocked(address):
            return Refusal(403, "Forbidden: address %s is blocked" % address)
        return None

    def refuse(self, conn: Any, refusal: Refusal, request: Any) -> None:
        if request is None and not self.http_answer and not isinstance(conn, WsConnection):
            _refusals_log.info("blocked", "%r: closed: %s", conn, refusal.reason)
            conn.close()
        else:
            refuse_connection(conn, refusal.status, refusal.reason)
