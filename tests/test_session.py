"""Sessions: the signing formats, the Flask and Django handlers, and SessionProvider live.

The token constants were made by the real frameworks (Flask 3.1 / itsdangerous
2.2, Django 5.2) at the fixed time 1700000000; scripts/session_interop.sh
re-checks the handlers against freshly installed frameworks.
"""

import logging
import sqlite3
import threading
import uuid
import zlib
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest
from support import ServerThread
from wsclient import WsClient

from ratchet_sel import HttpServer, MessageComponent, WsServer
from ratchet_sel.http import RequestParser
from ratchet_sel.session import (EMPTY_SESSION, BadSignature, DjangoSessionHandler, DjangoSignedCookieHandler,
                                 FlaskSessionHandler, InvalidSession, MemorySessionHandler, SessionExpired,
                                 SessionHandler, SessionProvider, load_session)
from ratchet_sel.session import payload, tagged_json
from ratchet_sel.session.django_signing import DjangoSigner, b62_decode, b62_encode
from ratchet_sel.session.timed_signer import TimestampSigner

pytestmark = pytest.mark.timeout(60)

SIGNED_AT = 1700000000

FLASK_SECRET = "flask-test-secret"
FLASK_SMALL = "eyJ1c2VyX2lkIjo0MiwibmFtZSI6ImFsaWNlIn0.ZVPxAA.FCSPk7pMLHG675Cwlu1z2RrTgVo"
FLASK_TAGGED = (".eJyrVipRsqpWUgCS0YY6QEaSkpWSY4CFrVItiJcL5Nkk2VXY6CfZKdXG1uoolYKVA0klA_zAFGiCUgpYNZBUCk9N0VEwMFTw"
                "TaxUMDIwMlEwNLIyMAAiBXffEJBSBYhDUjIh7omPB7kothYok5SZDjSgYhQQDZRqAWm2tqo.ZVPxAA."
                "qdOhFqEJdRx096sKnPHpbbFtrm4")

DJANGO_SECRET = "django-test-secret"
DJANGO_DB = "eyJfYXV0aF91c2VyX2lkIjoiMSIsIm4iOlsxLDJdfQ:1r31eq:pZNGZ6RRZx2iJmzcn3UH358YrgnS54OYbZgvpuFSwe4"
DJANGO_DB_LONG = (".eJyrVopPLC3JiC8tTi2Kz0xRslIyVNJRKkgEsSpHAdFAqRYAbIGXNg:1r31eq:"
                  "P0-nEfefE-Gm7yCDVwQxtzdIFw7sqCL4ut-6oMwKUGc")
DJANGO_COOKIE = "eyJhIjoxfQ:1r31eq:NVXghfWR2wEhk5ufDGDHjmEPR3J3zdYjW__Ig9Wq_DA"


def tamper(token, index=-1):
    """Flip one character of ``token`` (default: the last, in the signature)."""
    char = token[index]
    replacement = "A" if char != "A" else "B"
    index %= len(token)
    return token[:index] + replacement + token[index + 1:]


def request_with(cookie=None):
    head = "GET /ws HTTP/1.1\r\nHost: h\r\n"
    if cookie is not None:
        head += "Cookie: %s\r\n" % cookie
    return RequestParser().feed((head + "\r\n").encode("latin-1"))


# -- the payload encoding --------------------------------------------------------------------
def test_payload_compresses_only_when_it_helps():
    small, large = b'{"a":1}', b'{"a":"' + b"x" * 500 + b'"}'
    assert not payload.pack(small, True).startswith(b".")
    assert payload.pack(large, True).startswith(b".")
    assert not payload.pack(large, False).startswith(b".")
    for data in (small, large, b""):
        for compress in (True, False):
            assert payload.unpack(payload.pack(data, compress)) == data


def test_payload_rejects_bombs_truncation_and_garbage():
    bomb = b"." + payload.b64encode(zlib.compress(b"\0" * (payload.MAX_PAYLOAD + 10)))
    with pytest.raises(InvalidSession, match="more than"):
        payload.unpack(bomb)
    truncated = b"." + payload.b64encode(zlib.compress(b"y" * 1000)[:-6])
    with pytest.raises(InvalidSession, match="truncated"):
        payload.unpack(truncated)
    with pytest.raises(InvalidSession):
        payload.unpack(b".!!!")
    with pytest.raises(InvalidSession):
        payload.unpack(b"." + payload.b64encode(b"not zlib"))


# -- itsdangerous / Flask ---------------------------------------------------------------------
def test_flask_cookie_made_by_flask_is_read():
    handler = FlaskSessionHandler(FLASK_SECRET, max_age=None)
    assert handler.load(FLASK_SMALL) == {"user_id": 42, "name": "alice"}
    data = handler.load(FLASK_TAGGED)
    assert data["t"] == (1, b"\x00\xff", "<b>x</b>") and isinstance(data["t"][2], tagged_json.Markup)
    assert data["u"] == uuid.UUID(int=5)
    assert data["d"] == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert data[" t"] == {" t": [1]}  # a dict whose key looks like a tag survives
    assert data["big"] == "x" * 300


def test_flask_cookie_lifetime_is_enforced():
    with pytest.raises(SessionExpired):
        FlaskSessionHandler(FLASK_SECRET).load(FLASK_SMALL)  # signed in 2023, default 31 days
    handler = FlaskSessionHandler(FLASK_SECRET, max_age=timedelta(days=1))
    fresh = handler.dumps({"a": 1})
    assert handler.load(fresh) == {"a": 1}
    with pytest.raises(SessionExpired):
        handler.load(handler.dumps({"a": 1}, timestamp=int(datetime.now().timestamp()) - 2 * 86400))
    with pytest.raises(SessionExpired, match="< 0"):
        handler.load(handler.dumps({"a": 1}, timestamp=int(datetime.now().timestamp()) + 3600))


@pytest.mark.parametrize("token", [
    tamper(FLASK_SMALL),                       # signature
    tamper(FLASK_SMALL, 3),                    # payload
    FLASK_SMALL.replace(".ZVPxAA.", ".ZVPxAB."),  # timestamp
    "no-separator-at-all",
    FLASK_SMALL.rsplit(".", 1)[0] + ".%%%",    # signature not base64
    "",
])
def test_flask_tampered_cookies_are_bad_signatures(token):
    with pytest.raises(BadSignature):
        FlaskSessionHandler(FLASK_SECRET, max_age=None).load(token)


def test_flask_wrong_key_and_key_rotation():
    with pytest.raises(BadSignature):
        FlaskSessionHandler("another key", max_age=None).load(FLASK_SMALL)
    rotated = FlaskSessionHandler("new key", fallback_keys=[FLASK_SECRET], max_age=None)
    assert rotated.load(FLASK_SMALL)["user_id"] == 42
    # New cookies are signed with the newest key only.
    with pytest.raises(BadSignature):
        FlaskSessionHandler(FLASK_SECRET).load(rotated.dumps({"a": 1}))


def test_flask_signed_but_not_a_session_object():
    signer = TimestampSigner(FLASK_SECRET, salt="cookie-session", key_derivation="hmac")
    with pytest.raises(InvalidSession, match="object"):
        FlaskSessionHandler(FLASK_SECRET).load(signer.dumps(b"[1, 2]"))
    with pytest.raises(InvalidSession, match="tagged JSON"):
        FlaskSessionHandler(FLASK_SECRET).load(signer.dumps(b"{not json"))


@pytest.mark.parametrize("derivation", ["hmac", "django-concat", "concat", "none"])
def test_timestamp_signer_key_derivations_round_trip(derivation):
    signer = TimestampSigner(["old", "new"], salt="s", key_derivation=derivation, digest="sha256")
    token = signer.sign(b"value", timestamp=SIGNED_AT)
    assert signer.unsign(token) == (b"value", SIGNED_AT)
    other = TimestampSigner("new", salt="other salt", key_derivation=derivation, digest="sha256")
    if derivation != "none":  # "none" ignores the salt, as in itsdangerous
        with pytest.raises(BadSignature):
            other.unsign(token)
    with pytest.raises(ValueError):
        TimestampSigner("", salt="s")
    with pytest.raises(ValueError):
        TimestampSigner("k", key_derivation="rot13")


def test_tagged_json_round_trip():
    value = {"tuple": (1, (2, 3)), "bytes": b"\x01", "markup": tagged_json.Markup("<i>"), "uuid": uuid.uuid4(),
             "when": datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "list": [{" b": "x"}, None],
             " di": {" di": 1}}
    assert tagged_json.loads(tagged_json.dumps(value)) == value
    assert tagged_json.loads('{"a": {" t": [1, {" b": "AQ=="}]}}') == {"a": (1, b"\x01")}


# -- Django ---------------------------------------------------------------------------------
def test_base62():
    for number in (0, 1, 61, 62, SIGNED_AT, -5):
        assert b62_decode(b62_encode(number)) == number
    assert b62_encode(SIGNED_AT) == "1r31eq"
    for bad in ("", "-", "ab$", "z" * 40):
        with pytest.raises(ValueError):
            b62_decode(bad)


def test_django_tokens_made_by_django_are_read():
    signer = DjangoSigner(DJANGO_SECRET, salt="django.contrib.sessions.SessionStore")
    assert signer.loads(DJANGO_DB) == {"_auth_user_id": "1", "n": [1, 2]}
    assert signer.loads(DJANGO_DB_LONG)["pad"] == "y" * 300
    assert signer.dumps({"_auth_user_id": "1", "n": [1, 2]}, compress=True, timestamp=SIGNED_AT) == DJANGO_DB
    with pytest.raises(BadSignature):
        DjangoSigner(DJANGO_SECRET, salt="django.contrib.sessions.backends.signed_cookies").loads(DJANGO_DB)
    with pytest.raises(BadSignature):
        DjangoSigner(DJANGO_SECRET, salt="django.contrib.sessions.SessionStore", algorithm="sha1").loads(DJANGO_DB)
    # Newest key last: "new" signs, DJANGO_SECRET (a fallback) still verifies.
    rotated = DjangoSigner([DJANGO_SECRET, "new"], salt="django.contrib.sessions.SessionStore")
    assert rotated.loads(DJANGO_DB)["n"] == [1, 2]
    with pytest.raises(BadSignature):
        DjangoSigner(DJANGO_SECRET, salt="django.contrib.sessions.SessionStore").loads(rotated.dumps({}))


def test_django_signed_cookie_handler():
    handler = DjangoSignedCookieHandler(DJANGO_SECRET, max_age=None)
    assert handler.cookie_name == "sessionid"
    assert handler.load(DJANGO_COOKIE) == {"a": 1}
    with pytest.raises(SessionExpired):
        DjangoSignedCookieHandler(DJANGO_SECRET).load(DJANGO_COOKIE)  # two weeks by default
    for bad in (tamper(DJANGO_COOKIE), tamper(DJANGO_COOKIE, 2), "x", "a:b:c", DJANGO_DB):
        with pytest.raises(BadSignature):
            handler.load(bad)
    assert DjangoSignedCookieHandler(DJANGO_SECRET).load(handler.dumps({"b": [2]})) == {"b": [2]}


@pytest.fixture
def django_db(tmp_path):
    path = tmp_path / "db.sqlite3"
    db = sqlite3.connect(str(path))
    db.execute('CREATE TABLE "django_session" ("session_key" varchar(40) NOT NULL PRIMARY KEY, '
               '"session_data" text NOT NULL, "expire_date" datetime NOT NULL)')
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [("a" * 32, DJANGO_DB, now + timedelta(days=1)),
            ("b" * 32, DJANGO_DB, now - timedelta(seconds=1)),
            ("c" * 32, tamper(DJANGO_DB), now + timedelta(days=1)),
            ("d" * 32, DJANGO_DB_LONG, (now + timedelta(hours=1)).replace(microsecond=0))]
    db.executemany("INSERT INTO django_session VALUES (?, ?, ?)", [(k, d, str(e)) for k, d, e in rows])
    db.commit()
    db.close()
    return path


def test_django_db_handler(django_db):
    handler = DjangoSessionHandler(django_db, DJANGO_SECRET)
    assert handler.load("a" * 32) == {"_auth_user_id": "1", "n": [1, 2]}
    assert handler.load("d" * 32)["pad"] == "y" * 300
    assert handler.load("e" * 32) is None
    with pytest.raises(SessionExpired):
        handler.load("b" * 32)
    with pytest.raises(BadSignature):
        handler.load("c" * 32)
    for bad in ("short", "x" * 41, "a" * 31 + "'", "a" * 16 + " OR 1=1"):
        with pytest.raises(InvalidSession):
            handler.load(bad)
    with pytest.raises(BadSignature):
        DjangoSessionHandler(django_db, "wrong secret").load("a" * 32)
    with pytest.raises(ValueError):
        DjangoSessionHandler(django_db, DJANGO_SECRET, table="x; DROP TABLE y")


def test_django_db_handler_local_time_and_connect_callable(django_db):
    # USE_TZ=False stores local time; a UTC timestamp a day ahead is still ahead in any zone.
    handler = DjangoSessionHandler(lambda: sqlite3.connect(str(django_db)), DJANGO_SECRET, use_tz=False)
    assert handler.load("a" * 32)["n"] == [1, 2]


def test_django_db_handler_missing_database(tmp_path):
    handler = DjangoSessionHandler(tmp_path / "missing.sqlite3", DJANGO_SECRET)
    with pytest.raises(sqlite3.Error):
        handler.load("a" * 32)
    assert not (tmp_path / "missing.sqlite3").exists()  # opened read-only: never created
    assert load_session(handler, request_with("sessionid=" + "a" * 32)) is EMPTY_SESSION


# -- the in-memory handler and load_session ----------------------------------------------------
def test_memory_handler():
    handler = MemorySessionHandler()
    session_id = handler.create({"user": "bob"})
    assert len(session_id) >= 32 and handler.load(session_id) == {"user": "bob"}
    handler.load(session_id)["user"] = "changed"
    assert handler.load(session_id) == {"user": "bob"}  # a copy each time
    handler.save("mine", {"x": 1}, lifetime=0)
    with pytest.raises(SessionExpired):
        handler.load("mine")
    assert handler.load("mine") is None
    handler.delete(session_id)
    assert handler.load(session_id) is None and len(handler) == 0


def test_load_session_never_raises_and_logs_why(caplog):
    flask = FlaskSessionHandler(FLASK_SECRET, max_age=None)

    class Broken(SessionHandler):
        def load(self, cookie_value):
            raise RuntimeError("store down")

    caplog.set_level(logging.INFO, logger="ratchet_sel.session")
    session = load_session(flask, request_with("session=" + FLASK_SMALL))
    assert isinstance(session, MappingProxyType) and session["user_id"] == 42
    with pytest.raises(TypeError):
        session["user_id"] = 1  # read-only
    assert load_session(flask, request_with()) is EMPTY_SESSION
    assert load_session(flask, None) is EMPTY_SESSION
    assert load_session(flask, request_with("other=1")) is EMPTY_SESSION
    assert load_session(flask, request_with("session=" + tamper(FLASK_SMALL))) is EMPTY_SESSION
    assert "tampered" in caplog.text and caplog.records[-1].levelno == logging.WARNING
    assert load_session(FlaskSessionHandler(FLASK_SECRET), request_with("session=" + FLASK_SMALL)) == {}
    assert "expired" in caplog.records[-1].getMessage()
    assert load_session(Broken(), request_with("session=x")) is EMPTY_SESSION
    assert "store down" in caplog.text
    assert load_session(MemorySessionHandler(), request_with("session=unknown")) == {}
    assert "no session" in caplog.records[-1].getMessage()
    assert load_session(flask, request_with("sid=" + FLASK_SMALL), "sid")["name"] == "alice"


# -- SessionProvider on live connections ---------------------------------------------------------
class SessionApp(MessageComponent):
    """Sends each connection's session back; records opens and closes."""

    def __init__(self):
        self.cond = threading.Condition()
        self.opened, self.closed = [], []

    def on_open(self, conn):
        with self.cond:
            self.opened.append(conn)
            self.cond.notify_all()
        conn.send(repr(sorted(conn.session.items())))

    def on_message(self, conn, msg):
        conn.send("%s says %s" % (conn.session.get("name", "nobody"), msg))

    def on_close(self, conn):
        with self.cond:
            self.closed.append(conn)
            self.cond.notify_all()

    def wait(self, predicate):
        with self.cond:
            assert self.cond.wait_for(predicate, 10)


@pytest.mark.parametrize("place", ["above WsServer", "App-style under HttpServer"])
def test_session_provider_live(place, caplog):
    app = SessionApp()
    handler = FlaskSessionHandler(FLASK_SECRET, max_age=None)
    component = WsServer(SessionProvider(app, handler))
    if place != "above WsServer":
        component = HttpServer(component)
    caplog.set_level(logging.INFO, logger="ratchet_sel.session")
    with ServerThread(component) as st:
        with WsClient(st.port, extra=[("Cookie", "theme=dark; session=" + FLASK_SMALL)]) as client:
            assert client.recv_message() == "[('name', 'alice'), ('user_id', 42)]"
            client.send("hi")
            assert client.recv_message() == "alice says hi"
            client.close()
        with WsClient(st.port, extra=[("Cookie", "session=" + tamper(FLASK_SMALL))]) as client:
            assert client.recv_message() == "[]"
            client.send("hi")
            assert client.recv_message() == "nobody says hi"
            client.close()
        with WsClient(st.port) as client:
            assert client.recv_message() == "[]"
            client.close()
        app.wait(lambda: len(app.closed) == 3)
    assert "tampered" in caplog.text
    assert all(isinstance(conn.session, MappingProxyType) for conn in app.opened)
