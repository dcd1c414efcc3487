"""SessionProvider: gives each connection the web application's session (Ratchet's SessionProvider)."""

import logging
from types import MappingProxyType
from typing import Any, Mapping, Optional

from ..component import ComponentDecorator
from ..server.guard import request_of
from .base import BadSignature, InvalidSession, SessionExpired, SessionHandler

__all__ = ["SessionProvider", "EMPTY_SESSION", "load_session"]

log = logging.getLogger(__name__)

#: The session of a connection that has none.
EMPTY_SESSION: Mapping[str, Any] = MappingProxyType({})


def load_session(handler: SessionHandler, request: Any, cookie_name: Optional[str] = None, *,
                 context: Any = None) -> Mapping[str, Any]:
    """The session of ``request`` through ``handler``: a read-only mapping, empty if there is none.

    Every reason for having no session is logged (a tampered or forged
    cookie as a warning), naming ``context`` (e.g. the connection); nothing
    is raised.
    """
    name = cookie_name or handler.cookie_name
    value = request.cookies.get(name) if request is not None else None
    if not value:
        return EMPTY_SESSION
    try:
        data = handler.load(value)
    except SessionExpired as exc:
        log.info("%r: session cookie %r expired: %s", context, name, exc)
        return EMPTY_SESSION
    except BadSignature as exc:
        log.warning("%r: session cookie %r rejected (tampered or signed with another key): %s",
                    context, name, exc)
        return EMPTY_SESSION
    except InvalidSession as exc:
        log.warning("%r: session cookie %r rejected: %s", context, name, exc)
        return EMPTY_SESSION
    except Exception:
        log.exception("%r: loading the session failed; going on without one", context)
        return EMPTY_SESSION
    if data is None:
        log.info("%r: no session for the %r cookie", context, name)
        return EMPTY_SESSION
    return MappingProxyType(dict(data))


class SessionProvider(ComponentDecorator):
    """Sets ``conn.session`` from the session cookie before the wrapped component's ``on_open``.

    ``conn.session`` is a read-only mapping, a snapshot taken when the
    connection opened (changes are not saved back; the web application owns
    the session).  It is **always a mapping, never None**: empty when there
    is no cookie, no such session, or a cookie that is tampered with,
    forged, expired or malformed.  Each of those is logged (tampering as a
    warning) and never fails the connection; the application decides
    whether an empty session is acceptable (e.g. close with 1008).

    ``handler`` is a :class:`~ratchet_sel.session.SessionHandler`
    (Flask, Django database or signed cookie, in-memory); ``cookie_name``
    defaults to the handler's.

    Place it above ``WsServer`` (``WsServer(SessionProvider(app, handler))``,
    or ``App.route(path, SessionProvider(app, handler))``) so that the
    application's WebSocket connections carry the session.  Below
    ``WsServer`` it sets ``session`` on the transport connection, which
    plain-HTTP components see but WebSocket applications do not.
    """

    def __init__(self, component: Any, handler: SessionHandler, cookie_name: Optional[str] = None) -> None:
        super().__init__(component)
        self.handler = handler
        self.cookie_name = cookie_name or handler.cookie_name

    def load(self, conn: Any, request: Any) -> Mapping[str, Any]:
        """The session for a request, as a read-only mapping (empty if none)."""
        return load_session(self.handler, request, self.cookie_name, context=conn)

    def on_open(self, conn: Any, *args: Any) -> None:
        conn.session = self.load(conn, request_of(conn, args))
        self.component.on_open(conn, *args)
