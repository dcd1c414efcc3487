"""The WebSocket layer: WsServer, the connection object, and the sans-IO codecs."""

from .connection import WsConnection, broadcast
from .rfc6455 import CloseCode
from .server import DEFAULT_MAX_MESSAGE_SIZE, WsServer

__all__ = ["WsServer", "WsConnection", "broadcast", "CloseCode", "DEFAULT_MAX_MESSAGE_SIZE"]
