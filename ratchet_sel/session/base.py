"""The session handler interface and the ways a session can be refused."""

from typing import Any, Dict, Optional

__all__ = ["SessionHandler", "InvalidSession", "BadSignature", "SessionExpired"]


class InvalidSession(ValueError):
    """A session cookie that must be ignored: malformed, forged, tampered with or expired."""


class BadSignature(InvalidSession):
    """The signature does not match: the cookie was tampered with or signed with another key."""


class SessionExpired(InvalidSession):
    """A genuine session whose lifetime is over (by its signature's age or its store's date)."""


class SessionHandler:
    """Loads a web application's session from the value of its session cookie.

    ``cookie_name`` is the cookie the application sets (Flask: ``session``,
    Django: ``sessionid``).  :meth:`load` returns the session's data,
    ``None`` when the store has no such session, or raises
    :class:`InvalidSession` (with a reason) for a cookie that must not be
    trusted.  Handlers run on the loop thread: they must be quick.
    """

    cookie_name = "session"

    def load(self, cookie_value: str) -> Optional[Dict[str, Any]]:
        """The session data for ``cookie_value``, or ``None``; raises InvalidSession."""
        raise NotImplementedError
