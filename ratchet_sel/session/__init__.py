"""Sessions of the web application, for WebSocket connections: SessionProvider and handlers.

::

    from ratchet_sel.session import SessionProvider, FlaskSessionHandler

    handler = FlaskSessionHandler(app_secret_key)
    app.route("/chat", SessionProvider(Chat(), handler))   # conn.session in Chat

Handlers: :class:`FlaskSessionHandler` (Flask's signed cookie),
:class:`DjangoSessionHandler` (Django's database sessions in SQLite),
:class:`DjangoSignedCookieHandler` (Django's ``signed_cookies``),
:class:`MemorySessionHandler`; or subclass :class:`SessionHandler`.
"""

from .base import BadSignature, InvalidSession, SessionExpired, SessionHandler
from .django import DjangoSessionHandler, DjangoSignedCookieHandler
from .flask import FlaskSessionHandler
from .memory import MemorySessionHandler
from .provider import EMPTY_SESSION, SessionProvider, load_session

__all__ = ["SessionProvider", "SessionHandler", "EMPTY_SESSION", "load_session", "InvalidSession", "BadSignature",
           "SessionExpired", "FlaskSessionHandler", "DjangoSessionHandler", "DjangoSignedCookieHandler",
           "MemorySessionHandler"]
