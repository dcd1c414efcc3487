"""Endpoint: the base of decorators that answer one URL path themselves.

``/metrics`` and the health URL are answered by the decorator that owns the
path, before anything below it sees the request; every other connection
passes through untouched.  The bookkeeping of which connections were answered
here (so that their later events are not handed down to a component that
never saw them open) lives in this one class.
"""

from typing import Any, Set

from ..component import ComponentDecorator
from .guard import request_of

__all__ = ["Endpoint"]


class Endpoint(ComponentDecorator):
    """Answers requests for ``path`` with :meth:`answer`; passes every other connection on.

    Subclasses implement ``answer(conn, request)`` (send a response, or
    refuse); the connection then belongs to the endpoint until it closes, and
    the wrapped component never hears of it.
    """

    def __init__(self, component: Any, path: str) -> None:
        super().__init__(component)
        self.path = path
        self._answered: Set[Any] = set()

    def answer(self, conn: Any, request: Any) -> None:
        """Answer a request for :attr:`path` (subclasses)."""
        raise NotImplementedError

    def on_open(self, conn: Any, *args: Any) -> None:
        request = request_of(conn, args)
        if request is None or request.path != self.path:
            self.component.on_open(conn, *args)
            return
        self._answered.add(conn)
        self.answer(conn, request)

    def on_message(self, conn: Any, msg: Any) -> None:
        if conn not in self._answered:
            self.component.on_message(conn, msg)

    def on_close(self, conn: Any) -> None:
        if conn in self._answered:
            self._answered.discard(conn)
        else:
            self.component.on_close(conn)

    def on_error(self, conn: Any, exc: BaseException) -> None:
        if conn in self._answered:
            conn.close()
        else:
            self.component.on_error(conn, exc)

    def on_shutdown(self, conn: Any) -> None:
        if conn in self._answered:
            conn.close()
        else:
            super().on_shutdown(conn)
