"""Flask's default session: a signed cookie holding the whole session.

Flask's ``SecureCookieSessionInterface`` signs the session with
itsdangerous's ``URLSafeTimedSerializer``: salt ``"cookie-session"``, HMAC
key derivation, SHA-1, tagged JSON (see :mod:`.timed_signer` and
:mod:`.tagged_json`).  Flask refuses cookies older than
``PERMANENT_SESSION_LIFETIME`` (31 days by default), permanent or not.
"""

from datetime import timedelta
from typing import Any, Dict, Iterable, Optional, Union

from . import tagged_json
from .base import InvalidSession, SessionHandler
from .timed_signer import Secret, TimestampSigner

__all__ = ["FlaskSessionHandler"]

#: Flask's default PERMANENT_SESSION_LIFETIME.
DEFAULT_LIFETIME = timedelta(days=31)


def _seconds(value: Union[float, timedelta, None]) -> Optional[float]:
    return value.total_seconds() if isinstance(value, timedelta) else value


class FlaskSessionHandler(SessionHandler):
    """Reads (and, for tests and tools, writes) Flask's signed session cookie.

    ``secret_key`` is the app's ``SECRET_KEY``; ``fallback_keys`` its
    ``SECRET_KEY_FALLBACKS`` (older keys still accepted).  ``max_age``
    mirrors ``PERMANENT_SESSION_LIFETIME`` (seconds or a timedelta; ``None``
    accepts any age).  ``cookie_name`` mirrors ``SESSION_COOKIE_NAME``.  The
    remaining keywords mirror ``SecureCookieSessionInterface`` attributes,
    for apps that changed them.
    """

    def __init__(self, secret_key: Secret, *, fallback_keys: Iterable[Secret] = (),
                 cookie_name: str = "session", max_age: Union[float, timedelta, None] = DEFAULT_LIFETIME,
                 salt: str = "cookie-session", key_derivation: str = "hmac", digest: str = "sha1") -> None:
        self.cookie_name = cookie_name
        self.max_age = _seconds(max_age)
        self.signer = TimestampSigner(list(fallback_keys) + [secret_key], salt=salt,
                                      key_derivation=key_derivation, digest=digest)

    def load(self, cookie_value: str) -> Optional[Dict[str, Any]]:
        """The session in a cookie; raises InvalidSession for a forged, tampered or expired one."""
        serialized = self.signer.loads(cookie_value, self.max_age)
        try:
            session = tagged_json.loads(serialized.decode("utf-8"))
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidSession("session is not Flask's tagged JSON: %s" % exc) from None
        if not isinstance(session, dict):
            raise InvalidSession("session is not a JSON object")
        return session

    def dumps(self, session: Dict[str, Any], timestamp: Optional[int] = None) -> str:
        """The cookie value Flask would set for ``session`` (signed now, or at ``timestamp``)."""
        return self.signer.dumps(tagged_json.dumps(session).encode("utf-8"), timestamp)
