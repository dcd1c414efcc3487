"""Session interop check, run in a venv with Flask and Django (see ../session_interop.sh).

1. Real Flask and Django log a user in and produce session cookies (and
   Django's ``django_session`` rows in SQLite), plus expired, tampered and
   foreign variants.  What each framework itself reads back from them is
   the expected session.
2. ``server.py`` (this checkout, under the system python3, stdlib only)
   reads the same cookies through SessionProvider over a real WebSocket
   connection; every route must give exactly the framework's session, and
   an empty one for the bad variants.
3. The other way round: cookies signed by ratchet_sel must be accepted by
   the frameworks.

Prints one line per check; exits 1 if any failed.
"""

import argparse
import base64
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [HERE, REPO_ROOT]

from common import WORK_FILES, comparable  # noqa: E402

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
RESULTS = {"passed": 0, "failed": 0}


def report(ok, name, detail=""):
    RESULTS["passed" if ok else "failed"] += 1
    print("%s %s%s" % ("ok  " if ok else "FAIL", name, (": " + detail) if detail else ""), flush=True)


def tamper(value, index):
    """``value`` with the character at ``index`` changed."""
    index %= len(value)
    return value[:index] + ("A" if value[index] != "A" else "B") + value[index + 1:]


# -- Flask ----------------------------------------------------------------------------------------
def flask_cases(secret):
    import itsdangerous.timed
    from flask import Flask, abort, request, session
    from markupsafe import Markup

    app = Flask("interop")
    app.config["SECRET_KEY"] = secret
    users = {"alice": "wonderland"}

    @app.post("/login")
    def login():
        name = request.form["username"]
        if users.get(name) != request.form["password"]:
            abort(403)
        session.clear()
        session.update({
            "user_id": 7, "username": name, "roles": ("admin", "dev"), "avatar": b"\x89PNG\r\n\x00",
            "motto": Markup("<em>hi</em>"), "token": uuid.uuid4(),
            "login_at": datetime.now(timezone.utc).replace(microsecond=0),
            "escaped": {" t": "a dict, not a tuple"}, "notes": "n" * 400, "unicode": "h\u00e9llo \u2713",
        })
        return "logged in"

    def log_in(client):
        response = client.post("/login", data={"username": "alice", "password": "wonderland"})
        assert response.status_code == 200, response.status_code
        return client.get_cookie("session").value

    def read_with_flask(value, flask_app=app):
        with flask_app.test_request_context(headers={"Cookie": "session=" + value}):
            return dict(flask_app.session_interface.open_session(flask_app, request))

    wrong = app.test_client()
    assert wrong.post("/login", data={"username": "alice", "password": "nope"}).status_code == 403
    cookie = log_in(app.test_client())
    expected = read_with_flask(cookie)
    assert expected["username"] == "alice" and expected["roles"] == ("admin", "dev")

    original = itsdangerous.timed.TimestampSigner.get_timestamp
    itsdangerous.timed.TimestampSigner.get_timestamp = lambda self: int(time.time()) - 32 * 86400
    try:
        expired = log_in(app.test_client())
    finally:
        itsdangerous.timed.TimestampSigner.get_timestamp = original
    tampered = tamper(cookie, 3)
    other_app = Flask("other")
    other_app.config["SECRET_KEY"] = "some other app's key"
    foreign = other_app.session_interface.get_signing_serializer(other_app).dumps({"username": "mallory"})

    cases = [("flask: logged-in session", "/flask", "session=" + cookie, expected),
             ("flask: SECRET_KEY rotated, old key as fallback", "/flask-rotated", "session=" + cookie, expected)]
    for name, value in (("expired (32 days)", expired), ("tampered", tampered), ("foreign key", foreign)):
        assert read_with_flask(value) == {}, name  # Flask itself refuses it
        cases.append(("flask: %s cookie gives no session" % name, "/flask", "session=" + value, {}))
    return app, read_with_flask, cases


def flask_reverse(app, read_with_flask, secret):
    from ratchet_sel.session import FlaskSessionHandler

    data = {"user_id": 9, "pair": (1, b"\x00"), "when": datetime(2024, 5, 1, tzinfo=timezone.utc),
            "id": uuid.UUID(int=1), "long": "z" * 300}
    value = FlaskSessionHandler(secret).dumps(data)
    got = read_with_flask(value)
    report(comparable(got) == comparable(data), "flask: a cookie signed by ratchet_sel is read by Flask",
           "" if got else "Flask gave an empty session")


# -- Django -----------------------------------------------------------------------------------------
def django_cases(secret, db_path):
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY=secret, USE_TZ=True,
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_path}},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    django.setup()
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.test import Client, override_settings
    from django.utils import timezone as dj_timezone

    call_command("migrate", verbosity=0, interactive=False)
    User.objects.create_user("alice", password="wonderland")
    assert not Client().login(username="alice", password="wrong")

    client = Client()
    assert client.login(username="alice", password="wonderland")
    key = client.cookies["sessionid"].value
    store = SessionStore(session_key=key)
    store["cart"] = [1, 2, 3]
    store["note"] = "\u00e9" * 300  # compressed, and not ASCII
    store.save()
    expected = SessionStore(session_key=key).load()
    assert expected["_auth_user_id"] == str(User.objects.get(username="alice").pk)

    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
        cookie_client = Client()
        assert cookie_client.login(username="alice", password="wonderland")
        signed = cookie_client.cookies["sessionid"].value
    expected_signed = CookieStore(session_key=signed).load()
    assert expected_signed["_auth_user_id"] == expected["_auth_user_id"]

    old = SessionStore()
    old["_auth_user_id"] = "1"
    old.create()
    Session.objects.filter(session_key=old.session_key).update(
        expire_date=dj_timezone.now() - timedelta(minutes=5))
    assert SessionStore(session_key=old.session_key).load() == {}  # Django itself: expired

    row = Session.objects.get(session_key=key)
    forged_key = "f" * 32
    Session.objects.create(session_key=forged_key, session_data=tamper(row.session_data, 5),
                           expire_date=row.expire_date)
    assert SessionStore(session_key=forged_key).load() == {}  # Django itself: corrupted

    tampered_cookie = tamper(signed, 4)
    assert CookieStore(session_key=tampered_cookie).load() == {}

    cases = [
        ("django db: logged-in session", "/django-db", "sessionid=" + key, expected),
        ("django db: SECRET_KEY rotated, old key in fallbacks", "/django-db-rotated", "sessionid=" + key,
         expected),
        ("django db: expired row gives no session", "/django-db", "sessionid=" + old.session_key, {}),
        ("django db: tampered session_data gives no session", "/django-db", "sessionid=" + forged_key, {}),
        ("django db: unknown session key gives no session", "/django-db", "sessionid=" + "u" * 32, {}),
        ("django signed_cookies: logged-in session", "/django-cookie", "sessionid=" + signed, expected_signed),
        ("django signed_cookies: tampered cookie gives no session", "/django-cookie",
         "sessionid=" + tampered_cookie, {}),
    ]
    return CookieStore, cases


def django_reverse(cookie_store, secret):
    from ratchet_sel.session import DjangoSignedCookieHandler

    data = {"_auth_user_id": "5", "cart": [1, 2], "long": "q" * 300}
    got = cookie_store(session_key=DjangoSignedCookieHandler(secret).dumps(data)).load()
    report(got == data, "django signed_cookies: a cookie signed by ratchet_sel is read by Django",
           "" if got == data else "Django read %r" % (got,))


# -- the WebSocket side --------------------------------------------------------------------------------
def start_server(python, config_path, log_path):
    log = open(log_path, "w", encoding="utf-8")
    proc = subprocess.Popen([python, "-I", os.path.join(HERE, "server.py"), config_path], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=log, text=True)
    port, modules = None, None
    for line in proc.stdout:
        if line.startswith("third-party modules loaded:"):
            modules = line.split(":", 1)[1].strip()
        if line.startswith("listening on ws://127.0.0.1:"):
            port = int(line.rsplit(":", 1)[1].strip("/\n"))
            break
    if port is None:
        proc.kill()
        raise RuntimeError("the server did not start; see %s" % log_path)
    return proc, port, modules


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def session_over_websocket(port, path, cookie):
    """Open a WebSocket to ``path`` with ``cookie``; return the JSON session the server sends."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nCookie: %s\r\n\r\n"
               % (path, port, key, cookie))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))
        head = b""
        while b"\r\n\r\n" not in head:
            head += read_exactly(sock, 1)
        lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in lines[0]:
            raise AssertionError("handshake answered %r" % lines[0])
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if "sec-websocket-accept: " + accept.lower() not in head.decode("latin-1").lower():
            raise AssertionError("wrong Sec-WebSocket-Accept")
        first, second = read_exactly(sock, 2)
        if first != 0x81:
            raise AssertionError("expected a text frame, got opcode %#x" % (first & 0x0F))
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(read_exactly(sock, 2), "big")
        elif length == 127:
            length = int.from_bytes(read_exactly(sock, 8), "big")
        return json.loads(read_exactly(sock, length).decode("utf-8"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-python", default="python3")
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    flask_secret, django_secret = secrets.token_hex(16), secrets.token_urlsafe(40)
    db_path = os.path.join(args.work, WORK_FILES["django_db"])

    print("frameworks: Flask %s, Django %s" % (metadata.version("flask"), metadata.version("django")),
          flush=True)
    flask_app, read_with_flask, cases = flask_cases(flask_secret)
    cookie_store, django_list = django_cases(django_secret, db_path)
    cases += django_list

    config_path = os.path.join(args.work, WORK_FILES["config"])
    with open(config_path, "w", encoding="utf-8") as file:
        json.dump({"flask_secret": flask_secret, "django_secret": django_secret, "django_db": db_path}, file)
    log_path = os.path.join(args.work, WORK_FILES["server_log"])
    proc, port, modules = start_server(args.server_python, config_path, log_path)
    try:
        report(modules == "none", "server: runs on the standard library alone",
               "" if modules == "none" else "loaded " + str(modules))
        for name, path, cookie, expected in cases:
            try:
                got = session_over_websocket(port, path, cookie)
            except Exception as exc:  # one broken case must not hide the others
                report(False, name, "%s: %s" % (type(exc).__name__, exc))
                continue
            want = comparable(expected)
            detail = "%d keys" % len(want) if got == want else "got %s, expected %s" % (got, want)
            report(got == want, name + " read over WebSocket" if want else name, detail)
        flask_reverse(flask_app, read_with_flask, flask_secret)
        django_reverse(cookie_store, django_secret)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = "killed"
    report(status == 0, "server: stopped on SIGTERM", "exit status %s" % status)
    with open(log_path, encoding="utf-8") as file:
        log = file.read()
    report("rejected (tampered" in log and "expired" in log,
           "server: tampered and expired cookies were logged, without crashing")
    if RESULTS["failed"]:
        print("--- server log (last lines) ---\n" + "\n".join(log.splitlines()[-25:]))
    print("session interop: %(passed)d passed, %(failed)d failed" % RESULTS)
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
