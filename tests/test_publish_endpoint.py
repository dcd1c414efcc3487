"""POST /publish: push over HTTP into a topic (no Redis needed)."""

import json
import threading

import pytest
from redis_support import ChatProcess
from support import ServerThread
from wsclient import WsClient, http_exchange

from ratchet_sel import App, WsServer
from ratchet_sel.demo import Chat, chat_http_handler
from ratchet_sel.http import Responder
from ratchet_sel.pubsub import PublishEndpoint, Topics

TOKEN = "correct horse battery staple"


def post(port: int, body: bytes, token=TOKEN, path: str = "/publish", scheme: str = "Bearer",
         method: str = "POST"):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1", "Content-Length: %d" % len(body)]
    if token is not None:
        lines.append("Authorization: %s %s" % (scheme, token))
    return http_exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


@pytest.fixture
def chat_server():
    topics = Topics()
    chat = Chat(topics)
    ws = WsServer(chat, http_handler=chat_http_handler(PublishEndpoint(topics, TOKEN, topic="chat")))
    with ServerThread(ws) as st:
        yield st


def test_missing_wrong_and_malformed_tokens(chat_server):
    with WsClient(chat_server.port) as member:
        status, headers, body = post(chat_server.port, b"hi", token=None)
        assert status == 401 and headers["www-authenticate"].startswith("Bearer")
        assert post(chat_server.port, b"hi", token="wrong")[0] == 403
        assert post(chat_server.port, b"hi", token=TOKEN[:-1])[0] == 403
        assert post(chat_server.port, b"hi", scheme="Basic")[0] == 401
        assert post(chat_server.port, b"hi", token="")[0] == 401
        # nothing was delivered: the first message the member gets is the good one
        assert post(chat_server.port, b"good")[0] == 200
        assert member.recv_message() == "good"


def test_a_body_past_64_kib_is_413_and_64_kib_is_fine(chat_server):
    with WsClient(chat_server.port) as member:
        assert post(chat_server.port, b"x" * (64 * 1024 + 1))[0] == 413
        assert post(chat_server.port, b"x" * (2 * 1024 * 1024))[0] == 413   # refused by the request parser
        status, _, body = post(chat_server.port, b"y" * (64 * 1024))
        assert status == 200
        assert member.recv_message() == "y" * (64 * 1024)


def test_a_good_token_delivers_to_every_member_as_text(chat_server):
    with WsClient(chat_server.port) as alice, WsClient(chat_server.port) as bob, \
            WsClient(chat_server.port, version="8") as carol:
        status, headers, body = post(chat_server.port, "new post in category X ✓".encode())
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body) == {"topic": "chat", "local_subscribers": 3}
        for member in (alice, bob, carol):
            assert member.recv_message() == "new post in category X ✓"


def test_other_methods_and_bodies(chat_server):
    assert post(chat_server.port, b"", method="GET")[0] == 405
    assert post(chat_server.port, b"\xff\xfe")[0] == 400   # not UTF-8 text
    assert http_exchange(chat_server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200  # the page still works


def test_topic_from_the_query_when_not_fixed():
    topics = Topics()
    endpoint = PublishEndpoint(topics, TOKEN)
    ws = WsServer(Chat(topics, room="news"), http_handler=chat_http_handler(endpoint))
    with ServerThread(ws) as st, WsClient(st.port) as reader:
        assert post(st.port, b"no topic")[0] == 400
        status, _, body = post(st.port, b"fresh", path="/publish?topic=news")
        assert status == 200 and json.loads(body)["local_subscribers"] == 1
        assert post(st.port, b"elsewhere", path="/publish?topic=sport")[0] == 200
        assert post(st.port, b"again", path="/publish?topic=news")[0] == 200
        assert reader.recv_message() == "fresh"
        assert reader.recv_message() == "again"


def test_an_empty_token_is_refused_at_construction():
    with pytest.raises(ValueError):
        PublishEndpoint(Topics(), "")


def test_an_app_route_with_a_responder():
    topics = Topics()
    app = App("127.0.0.1", 0, "127.0.0.1")
    app.route("/chat", Chat(topics), allowed_origins="*")
    app.router.add("/publish", Responder(PublishEndpoint(topics, TOKEN, topic="chat"), methods=["POST"]))
    thread = threading.Thread(target=app.loop.run, daemon=True)
    thread.start()
    try:
        with WsClient(app.port, path="/chat") as member:
            assert member.status == 101
            assert post(app.port, b"hi", token=None)[0] == 401
            assert post(app.port, b"via the app")[0] == 200
            assert member.recv_message() == "via the app"
    finally:
        app.loop.call_soon_threadsafe(app.loop.stop)
        thread.join(10)
        app.server.close()


def test_the_cli_publish_token():
    with ChatProcess("--publish-token", TOKEN) as chat, WsClient(chat.port) as member:
        chat.log.wait_for(r"POST /publish accepted", 10)
        assert post(chat.port, b"x", token="nope")[0] == 403
        assert post(chat.port, b"from the cli")[0] == 200
        assert member.recv_message() == "from the cli"
    with ChatProcess() as plain:
        # without --publish-token there is no endpoint
        assert post(plain.port, b"x")[0] == 405


def test_expect_100_continue_gets_the_interim_answer_before_the_body(chat_server):
    import socket

    from wsclient import read_response

    body = b"z" * 5000
    with WsClient(chat_server.port) as member, socket.create_connection(("127.0.0.1", chat_server.port),
                                                                       timeout=10) as sock:
        sock.sendall(("POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n"
                      "Expect: 100-continue\r\n\r\n" % (TOKEN, len(body))).encode())
        status, _, rest = read_response(sock)   # the client waits for this before sending the body
        assert status == 100 and rest == b""
        sock.sendall(body)
        status, _, _ = read_response(sock)
        assert status == 200
        assert member.recv_message() == body.decode()


@pytest.mark.skipif(__import__("shutil").which("curl") is None, reason="curl is not installed")
def test_curl_posts_a_large_body_without_waiting(chat_server):
    import subprocess

    with WsClient(chat_server.port) as member:
        result = subprocess.run(["curl", "-sS", "--fail", "--expect100-timeout", "30", "-H",
                                 "Authorization: Bearer " + TOKEN, "--data-binary", "@-",
                                 "http://127.0.0.1:%d/publish" % chat_server.port],
                                input=b"w" * 20000, capture_output=True, timeout=20)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["local_subscribers"] == 1
        assert member.recv_message() == "w" * 20000
