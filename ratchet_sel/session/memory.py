"""An in-memory session store, for sessions this process issues itself (and for tests)."""

import secrets
import time
from typing import Any, Dict, Optional, Tuple

from .base import SessionExpired, SessionHandler

__all__ = ["MemorySessionHandler"]


class MemorySessionHandler(SessionHandler):
    """Sessions kept in a dict, keyed by random ids handed out as the cookie value.

    Call :meth:`create` (or :meth:`save` with an id of your own) from the
    code that logs users in; :meth:`load` gives each connection a copy.
    Not shared between processes and lost on restart.
    """

    def __init__(self, cookie_name: str = "session") -> None:
        self.cookie_name = cookie_name
        self._sessions: Dict[str, Tuple[Dict[str, Any], Optional[float]]] = {}

    def create(self, data: Dict[str, Any], lifetime: Optional[float] = None) -> str:
        """Store ``data`` under a new unguessable id and return the id."""
        session_id = secrets.token_urlsafe(32)
        self.save(session_id, data, lifetime)
        return session_id

    def save(self, session_id: str, data: Dict[str, Any], lifetime: Optional[float] = None) -> None:
        """Store (or replace) a session; it expires ``lifetime`` seconds from now, if given."""
        expires = None if lifetime is None else time.monotonic() + lifetime
        self._sessions[session_id] = (dict(data), expires)

    def delete(self, session_id: str) -> None:
        """Forget a session (no error if unknown)."""
        self._sessions.pop(session_id, None)

    def load(self, cookie_value: str) -> Optional[Dict[str, Any]]:
        """A copy of the session, ``None`` if unknown; raises SessionExpired after its lifetime."""
        entry = self._sessions.get(cookie_value)
        if entry is None:
            return None
        data, expires = entry
        if expires is not None and time.monotonic() >= expires:
            del self._sessions[cookie_value]
            raise SessionExpired("session expired")
        return dict(data)

    def __len__(self) -> int:
        return len(self._sessions)
