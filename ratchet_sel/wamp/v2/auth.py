"""Who may join a realm, and do what: WAMP-Ticket or anonymous authentication, and the authorize hook.

:class:`Admission` decides on HELLO and AUTHENTICATE, without I/O:

- with an ``authenticator`` (``authenticator(realm, authid, ticket)``
  returning the session's role as a string, ``True`` for role ``"user"``,
  or a false value to refuse), a client offering ``ticket`` among its
  ``authmethods`` gets CHALLENGE ``ticket``, and its AUTHENTICATE is checked;
  a wrong ticket gets ABORT ``wamp.error.authentication_failed``;
- ``allow_anonymous`` (default: only when there is no authenticator) lets
  other clients in with role ``"anonymous"``; otherwise they get ABORT
  ``wamp.error.not_authorized``;
- then ``authorize(session, "join", realm)`` must not refuse.

``authorize(session, action, uri)`` is called for ``"join"``,
``"subscribe"``, ``"publish"``, ``"register"`` and ``"call"``; a false
result (or an exception, which is logged) refuses with
``wamp.error.not_authorized``.
"""

import logging
from typing import Any, Callable, Optional, Tuple

from .api import ERROR_AUTHENTICATION_FAILED, ERROR_NOT_AUTHORIZED

__all__ = ["Admission", "Authenticator", "Authorizer", "ANONYMOUS_ROLE", "TICKET_DEFAULT_ROLE"]

log = logging.getLogger(__name__)

#: ``authenticator(realm, authid, ticket) -> role (str), True, or a false value``.
Authenticator = Callable[[str, str, str], Any]
#: ``authorize(session, action, uri) -> bool``.
Authorizer = Callable[[Any, str, str], Any]

#: The role of a session that joined without authentication.
ANONYMOUS_ROLE = "anonymous"
#: The role of a ticket session whose authenticator answered ``True``.
TICKET_DEFAULT_ROLE = "user"

# What a decision looks like: ("welcome", None), ("challenge", None) or ("abort", (uri, message)).
Decision = Tuple[str, Optional[Tuple[str, str]]]


class Admission:
    """The router's authentication and authorization rules (see the module documentation)."""

    def __init__(self, authenticator: Optional[Authenticator] = None, allow_anonymous: Optional[bool] = None,
                 authorize: Optional[Authorizer] = None) -> None:
        self.authenticator = authenticator
        self.allow_anonymous = authenticator is None if allow_anonymous is None else allow_anonymous
        self.authorize_hook = authorize

    @property
    def methods(self) -> Tuple[str, ...]:
        """The authentication methods offered, in order of preference."""
        return (("ticket",) if self.authenticator else ()) + (("anonymous",) if self.allow_anonymous else ())

    def hello(self, session: Any, details: dict) -> Decision:
        """Decide on a HELLO (``session.realm_name`` is set); sets the session's auth fields."""
        authid = details.get("authid")
        session.authid = authid if isinstance(authid, str) else None
        offered = details.get("authmethods")
        offered = offered if isinstance(offered, list) else []
        if self.authenticator is not None and "ticket" in offered:
            session.authmethod = "ticket"
            return ("challenge", None)
        if not self.allow_anonymous:
            return ("abort", (ERROR_NOT_AUTHORIZED, "authentication required; offer one of: %s"
                              % ", ".join(self.methods)))
        session.authmethod = "anonymous"
        session.authrole = ANONYMOUS_ROLE
        if session.authid is None:
            session.authid = "anonymous-%d" % session.session_id
        return self.join(session)

    def authenticate(self, session: Any, ticket: str) -> Decision:
        """Decide on the AUTHENTICATE answering our ticket CHALLENGE."""
        try:
            verdict = self.authenticator(session.realm_name, session.authid or "", ticket)  # type: ignore[misc]
        except Exception:
            log.exception("the ticket authenticator raised; refusing %r", session)
            verdict = None
        if not verdict:
            return ("abort", (ERROR_AUTHENTICATION_FAILED, "ticket refused"))
        session.authrole = verdict if isinstance(verdict, str) else TICKET_DEFAULT_ROLE
        return self.join(session)

    def join(self, session: Any) -> Decision:
        """Authenticated: may the session join its realm?"""
        if not self.allows(session, "join", session.realm_name):
            return ("abort", (ERROR_NOT_AUTHORIZED, "not authorized to join realm %s" % session.realm_name))
        return ("welcome", None)

    def allows(self, session: Any, action: str, uri: str) -> bool:
        """The authorize hook's verdict (True without a hook)."""
        hook = self.authorize_hook
        if hook is None:
            return True
        try:
            return bool(hook(session, action, uri))
        except Exception:
            log.exception("the authorize hook raised for %s %s; refusing", action, uri)
            return False
