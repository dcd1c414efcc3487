"""TokenAuth and BasicAuth: who is connecting, decided before the WebSocket upgrade.

Both are :class:`~ratchet_sel.server.guard.Guard` decorators: wrap the
application (``WsServer(TokenAuth(app, check=...))``, what ``App.route`` builds
from ``app.route("/ws", TokenAuth(app, check=...))``) or the server
(``TokenAuth(WsServer(app), check=...)`` under a router); either way a refused
client gets its HTTP status (401 with a ``WWW-Authenticate`` challenge, 403, 400)
before any upgrade, and an admitted connection carries what the check returned
as ``conn.user`` in the application's ``on_open``.

The check is the application's: it maps a token (or a user name and password)
to the user, or to ``None``/``False`` to refuse.  Comparing secrets there
should take constant time; :func:`token_table` and :func:`password_table` build
such checks from a mapping, and ``tokens=``/``users=`` do it for you.
Tokens and passwords are never logged.
"""

import base64
import binascii
import hashlib
import hmac
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from ..websocket.connection import WsConnection
from ..ops.ratelimit import RateLimitedLog
from .guard import Guard, Refusal, refuse_connection

__all__ = ["AuthGuard", "TokenAuth", "BasicAuth", "token_table", "password_table", "bearer_token"]

log = logging.getLogger(__name__)

#: The longest credential looked at; longer ones are refused without calling the check.
MAX_CREDENTIAL_LENGTH = 4096


def _quoted(value: str) -> str:
    """An RFC 7230 quoted-string."""
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def token_table(tokens: Mapping[str, Any]) -> Callable[[str], Any]:
    """A check for :class:`TokenAuth` from ``{token: user}``, comparing in constant time.

    Tokens are kept as SHA-256 digests; a presented token's digest is
    compared with ``hmac.compare_digest``, so the time taken does not reveal
    how much of a guess was right.
    """
    table = {_digest(token): user for token, user in tokens.items()}

    def check(token: str) -> Any:
        digest = _digest(token)
        for known, user in table.items():
            if hmac.compare_digest(known, digest):
                return user
        return None

    return check


def password_table(users: Mapping[str, str]) -> Callable[[str, str], Any]:
    """A check for :class:`BasicAuth` from ``{user name: password}``: the user name when both match.

    The password is compared in constant time (``hmac.compare_digest`` on
    SHA-256 digests), and an unknown user name costs the same comparison.
    """
    table = {name: _digest(password) for name, password in users.items()}
    unknown = _digest("\0 no such user")

    def check(name: str, password: str) -> Any:
        expected = table.get(name, unknown)
        matches = hmac.compare_digest(expected, _digest(password))
        return name if matches and name in table else None

    return check


def bearer_token(request: Any, query_param: Optional[str] = "token") -> Optional[str]:
    """The token a request presents: ``Authorization: Bearer <token>``, else ``?<query_param>=``.

    Browsers cannot set headers on a WebSocket handshake, hence the query
    parameter; other clients should prefer the header (query strings end up
    in proxies' access logs).  ``None`` when neither is there (or is empty).
    """
    scheme, _, value = (request.headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if query_param:
        token = request.query.get(query_param, "")
        if token:
            return token
    return None


class AuthGuard(Guard):
    """The base of guards that find out who is connecting.

    Subclasses implement :meth:`authenticate` (``request -> (user, None)`` or
    ``(None, Refusal)``).  An admitted user is put on the request
    (``request.user``) and on the WebSocket connection (``conn.user``).
    Refusals are logged at INFO, never with the credential; a client retrying
    in a loop gets one line per status per 10 s, with a count
    (:class:`~ratchet_sel.ops.ratelimit.RateLimitedLog`).
    """

    def __init__(self, component: Any) -> None:
        super().__init__(component)
        self.refusal_log = RateLimitedLog(log)
        self._warned_no_request = False

    def authenticate(self, request: Any) -> Tuple[Any, Optional[Refusal]]:
        """``(user, None)`` to admit, or ``(None, refusal)``."""
        raise NotImplementedError

    def check(self, conn: Any, request: Any) -> Optional[Refusal]:
        if request is None:
            return self._no_request(conn)
        user, refusal = self.authenticate(request)
        if refusal is not None:
            return refusal
        request.user = user
        if isinstance(conn, WsConnection):
            conn.user = user
        return None

    def refuse(self, conn: Any, refusal: Refusal, request: Any) -> None:
        self.refusal_log.info(("refused", refusal.status), "%r: refused with %d: %s", conn, refusal.status,
                              refusal.reason)
        refuse_connection(conn, refusal.status, refusal.reason, refusal.headers, logged=True)

    def _no_request(self, conn: Any) -> Refusal:
        # Directly under IoServer, in front of WsServer: nobody has read the request yet.
        if not self._warned_no_request:
            self._warned_no_request = True
            log.error("%r: %s got no HTTP request to check: place it inside the WebSocket server "
                      "(WsServer(%s(app, ...))) or behind HttpServer/App.route", conn,
                      type(self).__name__, type(self).__name__)
        return Refusal(500, "Internal Server Error: authentication is misconfigured")


class TokenAuth(AuthGuard):
    """Admits a connection whose bearer token the application's ``check`` accepts.

    The token comes from ``Authorization: Bearer <token>`` or, for browsers
    (which cannot set headers on a WebSocket), the ``?token=`` query parameter
    (``query_param``; ``None`` to accept the header only).  ``check(token)``
    returns the user (any value: an id, an object) or ``None``/``False`` to
    refuse; ``tokens={token: user}`` instead builds a constant-time check
    (:func:`token_table`).  The answers, all before the upgrade:

    - no token: ``401`` with ``WWW-Authenticate: Bearer realm="<realm>"`` (RFC 6750);
    - a token that ``check`` refuses: ``403``;
    - ``check`` raising: ``500`` (logged with the traceback).

    The user is ``conn.user`` in the application's ``on_open`` and after.
    """

    def __init__(self, component: Any, check: Optional[Callable[[str], Any]] = None, *,
                 tokens: Optional[Mapping[str, Any]] = None, query_param: Optional[str] = "token",
                 realm: str = "websocket") -> None:
        super().__init__(component)
        if (check is None) == (tokens is None):
            raise TypeError("TokenAuth needs exactly one of check= or tokens=")
        self.check_token: Callable[[str], Any] = check if check is not None else token_table(tokens or {})
        self.query_param = query_param
        self.realm = realm

    def authenticate(self, request: Any) -> Tuple[Any, Optional[Refusal]]:
        token = bearer_token(request, self.query_param)
        if token is None:
            return None, Refusal(401, "Unauthorized: a bearer token is required",
                                 {"WWW-Authenticate": "Bearer realm=%s" % _quoted(self.realm)})
        if len(token) > MAX_CREDENTIAL_LENGTH:
            return None, Refusal(400, "Bad Request: the token is too long")
        user = self.check_token(token)
        if user is None or user is False:
            return None, Refusal(403, "Forbidden: the token is not valid")
        return user, None


class BasicAuth(AuthGuard):
    """HTTP Basic authentication (RFC 7617) of the WebSocket handshake.

    ``check(user_name, password)`` returns the user (or ``None``/``False`` to
    refuse); ``users={name: password}`` instead builds a constant-time check
    (:func:`password_table`) whose user is the name.  The answers, all before
    the upgrade:

    - no credentials, or refused ones: ``401`` with
      ``WWW-Authenticate: Basic realm="<realm>", charset="UTF-8"``;
    - credentials that are not base64 of UTF-8 ``name:password``: ``400``;
    - ``check`` raising: ``500``.

    Browsers do not prompt for credentials on a WebSocket handshake; they send
    those of the page if it was itself behind Basic auth on the same realm.
    """

    def __init__(self, component: Any, check: Optional[Callable[[str, str], Any]] = None, *,
                 users: Optional[Mapping[str, str]] = None, realm: str = "websocket") -> None:
        super().__init__(component)
        if (check is None) == (users is None):
            raise TypeError("BasicAuth needs exactly one of check= or users=")
        self.check_password: Callable[[str, str], Any] = (
            check if check is not None else password_table(users or {}))
        self.realm = realm

    @property
    def challenge(self) -> Dict[str, str]:
        """The ``WWW-Authenticate`` header of a 401."""
        return {"WWW-Authenticate": "Basic realm=%s, charset=\"UTF-8\"" % _quoted(self.realm)}

    def authenticate(self, request: Any) -> Tuple[Any, Optional[Refusal]]:
        scheme, _, encoded = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic":
            return None, Refusal(401, "Unauthorized: credentials are required", self.challenge)
        credentials = self._decode(encoded.strip())
        if credentials is None:
            return None, Refusal(400, "Bad Request: malformed Basic credentials (base64 of UTF-8 name:password)")
        user = self.check_password(*credentials)
        if user is None or user is False:
            return None, Refusal(401, "Unauthorized: wrong user name or password", self.challenge)
        return user, None

    @staticmethod
    def _decode(encoded: str) -> Optional[Tuple[str, str]]:
        if not encoded or len(encoded) > MAX_CREDENTIAL_LENGTH:
            return None
        try:
            text = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        name, colon, password = text.partition(":")
        return (name, password) if colon else None
