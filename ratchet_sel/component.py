"""The component interfaces, as in Ratchet.

A server is a stack of components.  Each one gets ``on_open``, ``on_message``,
``on_close`` and ``on_error`` for every connection and passes them on to the
component it wraps (changing the connection or the message on the way, or
answering by itself).  Callbacks are plain synchronous methods that run on the
loop thread.
"""

from typing import Any

__all__ = ["ComponentInterface", "MessageComponent", "ComponentDecorator", "HttpServerInterface"]


class ComponentInterface:
    """What every component gets: a connection opens, fails, closes.

    ``on_close`` is called exactly once for every connection whose ``on_open``
    was called.  An exception raised by ``on_open``/``on_message`` is passed to
    ``on_error`` of the same component; it never stops the server.
    """

    def on_open(self, conn: Any) -> None:
        """A connection opened."""

    def on_close(self, conn: Any) -> None:
        """The connection closed (for whatever reason); it is not usable any more."""

    def on_error(self, conn: Any, exc: BaseException) -> None:
        """A callback for ``conn`` raised ``exc`` (already logged).  The default closes."""
        conn.close()


class MessageComponent(ComponentInterface):
    """A component that also receives messages.

    Under a WebSocket server ``msg`` is ``str`` for text and ``bytes`` for
    binary messages; directly under :class:`~ratchet_sel.IoServer` it is the
    ``bytes`` read from the socket.
    """

    def on_message(self, conn: Any, msg: Any) -> None:
        """A message arrived on ``conn``."""


class HttpServerInterface(MessageComponent):
    """A component that starts from a parsed HTTP request.

    ``on_open(conn, request)`` receives the :class:`~ratchet_sel.http.Request`
    (``None`` when the component sits directly under the socket server and must
    read the request itself); further bytes of the connection arrive through
    ``on_message``.
    """

    def on_open(self, conn: Any, request: Any = None) -> None:  # type: ignore[override]
        """A connection opened with a parsed request (or ``None``)."""


class ComponentDecorator(MessageComponent):
    """Base of components that wrap another one and pass events through.

    Subclasses override what they need and call ``super()`` (or
    ``self.component``) for the rest.  The wrapped component's ``subprotocols``
    are visible through the decorator, so decorators can stand between a
    WebSocket server and the application.
    """

    def __init__(self, component: Any) -> None:
        self.component = component

    @property
    def subprotocols(self) -> Any:
        """The subprotocols of the wrapped component (Ratchet's getSubProtocols)."""
        return getattr(self.component, "subprotocols", ())

    def on_open(self, conn: Any, *args: Any) -> None:
        self.component.on_open(conn, *args)

    def on_message(self, conn: Any, msg: Any) -> None:
        self.component.on_message(conn, msg)

    def on_close(self, conn: Any) -> None:
        self.component.on_close(conn)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        self.component.on_error(conn, exc)

    def on_shutdown(self, conn: Any) -> None:
        """The server is stopping: let the wrapped component say goodbye, or close."""
        handler = getattr(self.component, "on_shutdown", None)
        if handler is not None:
            handler(conn)
        else:
            conn.close()

    def on_server_stopping(self, conn: Any) -> None:
        """The server will close ``conn`` (1001): pass it on for a last word, if the wrapped component has one."""
        handler = getattr(self.component, "on_server_stopping", None)
        if handler is not None:
            handler(conn)

    def on_refuse(self, conn: Any) -> None:
        """The server is full: let the wrapped component answer (e.g. 503), if it can."""
        handler = getattr(self.component, "on_refuse", None)
        if handler is not None:
            handler(conn)
