"""Django's sessions: the database backend and the signed-cookie backend.

The ``db`` (and ``cached_db``) backends keep sessions in the
``django_session`` table: ``session_key`` (the ``sessionid`` cookie),
``session_data`` (``signing.dumps(session, salt=
"django.contrib.sessions.SessionStore", compress=True)``) and
``expire_date``; a row whose date has passed is no session.  The
``signed_cookies`` backend puts that signed data in the cookie itself, with
salt ``"django.contrib.sessions.backends.signed_cookies"``, and refuses it
once older than ``SESSION_COOKIE_AGE``.
"""

import os
import re
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterable, Optional, Union
from urllib.parse import quote

from .base import InvalidSession, SessionExpired, SessionHandler
from .django_signing import DjangoSigner, Secret

__all__ = ["DjangoSessionHandler", "DjangoSignedCookieHandler"]

#: Django's default SESSION_COOKIE_AGE: two weeks.
DEFAULT_COOKIE_AGE = 1209600

DB_SALT = "django.contrib.sessions.SessionStore"
SIGNED_COOKIES_SALT = "django.contrib.sessions.backends.signed_cookies"

# Django makes 32 characters of [a-z0-9]; the column holds 40; under 8 it
# refuses the key itself.
_SESSION_KEY = re.compile(r"[A-Za-z0-9]{8,40}\Z")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, bytes):
        value = value.decode("ascii")
    # SQLite holds "YYYY-MM-DD HH:MM:SS[.ffffff]", optionally with an offset.
    return datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))


class DjangoSessionHandler(SessionHandler):
    """Reads sessions from Django's database backend (``db``, ``cached_db``) in SQLite.

    ``database`` is the SQLite file's path (opened read-only for each
    lookup), or a callable returning a DB-API connection whose driver takes
    ``?`` placeholders.  ``secret_key``/``fallback_keys`` mirror
    ``SECRET_KEY``/``SECRET_KEY_FALLBACKS``.  ``use_tz`` mirrors ``USE_TZ``
    (``expire_date`` is stored in UTC when true, local time when false).
    ``algorithm`` is ``"sha256"`` (Django 3.1 and later).

    The lookup runs on the loop thread; a local SQLite file answers in
    microseconds, but a remote database would stall every connection.
    """

    cookie_name = "sessionid"

    def __init__(self, database: Union[str, "os.PathLike[str]", Callable[[], Any]], secret_key: Secret, *,
                 fallback_keys: Iterable[Secret] = (), cookie_name: str = "sessionid",
                 table: str = "django_session", use_tz: bool = True, algorithm: str = "sha256",
                 salt: str = DB_SALT, timeout: float = 1.0) -> None:
        if not _IDENTIFIER.match(table):
            raise ValueError("not a table name: %r" % (table,))
        self.database = database
        self.table = table
        self.use_tz = use_tz
        self.timeout = timeout
        self.cookie_name = cookie_name
        self.signer = DjangoSigner(list(fallback_keys) + [secret_key], salt=salt, algorithm=algorithm)

    def _connect(self) -> Any:
        if callable(self.database):
            return self.database()
        import sqlite3  # only here: minimal Pythons may lack _sqlite3
        path = os.fspath(self.database)
        return sqlite3.connect("file:%s?mode=ro" % quote(os.path.abspath(path)), uri=True,
                               timeout=self.timeout)

    def _fetch(self, session_key: str) -> Any:
        connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute('SELECT session_data, expire_date FROM "%s" WHERE session_key = ?' % self.table,
                           (session_key,))
            return cursor.fetchone()
        finally:
            connection.close()

    def _now(self, expire_date: datetime) -> datetime:
        if expire_date.tzinfo is not None:
            return datetime.now(timezone.utc)
        if self.use_tz:
            return datetime.now(timezone.utc).replace(tzinfo=None)
        return datetime.now()

    def load(self, cookie_value: str) -> Optional[Dict[str, Any]]:
        """The session stored under a ``sessionid``; ``None`` if there is none."""
        if not _SESSION_KEY.match(cookie_value):
            raise InvalidSession("malformed session key")
        row = self._fetch(cookie_value)
        if row is None:
            return None
        session_data, expire_date = row
        try:
            expires = _parse_datetime(expire_date)
        except ValueError:
            raise InvalidSession("unreadable expire_date %r" % (expire_date,)) from None
        if expires <= self._now(expires):
            raise SessionExpired("session expired at %s" % expires)
        session = self.signer.loads(session_data)
        if not isinstance(session, dict):
            raise InvalidSession("session data is not a JSON object")
        return session


class DjangoSignedCookieHandler(SessionHandler):
    """Reads sessions from Django's ``signed_cookies`` backend: the cookie is the session.

    ``max_age`` mirrors ``SESSION_COOKIE_AGE`` (seconds).
    """

    cookie_name = "sessionid"

    def __init__(self, secret_key: Secret, *, fallback_keys: Iterable[Secret] = (),
                 cookie_name: str = "sessionid", max_age: Optional[float] = DEFAULT_COOKIE_AGE,
                 algorithm: str = "sha256", salt: str = SIGNED_COOKIES_SALT) -> None:
        self.cookie_name = cookie_name
        self.max_age = max_age
        self.signer = DjangoSigner(list(fallback_keys) + [secret_key], salt=salt, algorithm=algorithm)

    def load(self, cookie_value: str) -> Optional[Dict[str, Any]]:
        """The session in the cookie; raises InvalidSession for a forged, tampered or expired one."""
        session = self.signer.loads(cookie_value, self.max_age)
        if not isinstance(session, dict):
            raise InvalidSession("session data is not a JSON object")
        return session

    def dumps(self, session: Dict[str, Any], timestamp: Optional[int] = None) -> str:
        """The cookie value Django would set for ``session``."""
        return self.signer.dumps(session, compress=True, timestamp=timestamp)
