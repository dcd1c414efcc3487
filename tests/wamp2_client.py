"""A small blocking WAMP v2 client for tests: raw messages over tests/wsclient.py's WebSocket client."""

from typing import Any, List, Optional

from ratchet_sel.wamp.v2.serializers import SERIALIZERS
from wsclient import WsClient

CLIENT_ROLES = {"caller": {"features": {"call_canceling": True}}, "callee": {"features": {"call_canceling": True}},
                "publisher": {}, "subscriber": {}}


class Wamp2Client:
    """Sends and receives WAMP messages (lists) with the chosen serializer; ``join`` does HELLO/WELCOME."""

    def __init__(self, port: int, subprotocol: str = "wamp.2.json", path: str = "/") -> None:
        self.serializer = SERIALIZERS[subprotocol]
        self.ws = WsClient(port, path, extra=[("Sec-WebSocket-Protocol", subprotocol)])
        assert self.ws.status == 101, self.ws.status
        assert self.ws.headers.get("sec-websocket-protocol") == subprotocol
        self.session_id: Optional[int] = None
        self._request = 0

    def request_id(self) -> int:
        """A fresh request id."""
        self._request += 1
        return self._request

    def send(self, message: List[Any]) -> None:
        """Send one WAMP message."""
        self.ws.send(self.serializer.encode(message))

    def recv(self) -> List[Any]:
        """The next WAMP message from the router."""
        return self.serializer.decode(self.ws.recv_message())

    def join(self, realm: str = "realm1", **details: Any) -> List[Any]:
        """HELLO and WELCOME; returns the WELCOME."""
        details.setdefault("roles", CLIENT_ROLES)
        self.send([1, realm, details])
        welcome = self.recv()
        assert welcome[0] == 2, welcome
        self.session_id = welcome[1]
        return welcome

    def subscribe(self, topic: str, **options: Any) -> int:
        """SUBSCRIBE and wait for SUBSCRIBED; returns the subscription id."""
        request = self.request_id()
        self.send([32, request, options, topic])
        answer = self.recv()
        assert answer[:2] == [33, request], answer
        return answer[2]

    def register(self, procedure: str) -> int:
        """REGISTER and wait for REGISTERED; returns the registration id."""
        request = self.request_id()
        self.send([64, request, {}, procedure])
        answer = self.recv()
        assert answer[:2] == [65, request], answer
        return answer[2]

    def call(self, procedure: str, args: Optional[list] = None, kwargs: Optional[dict] = None,
             **options: Any) -> List[Any]:
        """CALL and return the answer (RESULT or ERROR)."""
        request = self.request_id()
        message: List[Any] = [48, request, options, procedure]
        if args is not None or kwargs is not None:
            message.append(args or [])
            if kwargs is not None:
                message.append(kwargs)
        self.send(message)
        return self.recv()

    def close(self) -> None:
        """Close the socket."""
        self.ws.shutdown()

    def __enter__(self) -> "Wamp2Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
