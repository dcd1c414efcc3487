"""The RFC 6455 / HyBi opening handshake, sans-IO."""

import pytest

from ratchet_sel.http.request import HttpError, RequestParser
from ratchet_sel.websocket.handshake import accept_key, detect_version, negotiate

pytestmark = pytest.mark.timeout(30)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def request(*lines, method="GET", target="/chat", http="1.1"):
    head = "%s %s HTTP/%s\r\n" % (method, target, http) + "".join(line + "\r\n" for line in lines) + "\r\n"
    parsed = RequestParser().feed(head.encode("latin-1"))
    assert parsed is not None
    return parsed


def upgrade(*extra, version="13", key=KEY, **kwargs):
    lines = ["Host: server.example.com", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + key]
    if version is not None:
        lines.append("Sec-WebSocket-Version: " + version)
    return request(*(lines + list(extra)), **kwargs)


def refusal(req, **kwargs):
    with pytest.raises(HttpError) as info:
        negotiate(req, **kwargs)
    return info.value


def test_accept_key_rfc_vector():
    assert accept_key(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_rfc6455_response():
    agreement = negotiate(upgrade())
    assert agreement.version == "rfc6455"
    assert agreement.subprotocol is None
    response = agreement.response.decode()
    assert response.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    assert "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert "\r\nUpgrade: websocket\r\n" in response and "\r\nConnection: Upgrade\r\n" in response
    assert response.endswith("\r\n\r\n")
    assert "Sec-WebSocket-Protocol" not in response


@pytest.mark.parametrize("version", ["7", "8"])
def test_hybi_versions(version):
    agreement = negotiate(upgrade("Sec-WebSocket-Origin: http://example.com", version=version))
    assert agreement.version == "hybi-10"


def test_tokens_are_case_insensitive_comma_lists():
    req = request("Host: h", "Upgrade: h2c, WebSocket", "Connection: keep-alive, UPGRADE",
                  "Sec-WebSocket-Key: " + KEY, "Sec-WebSocket-Version: 13")
    assert negotiate(req).version == "rfc6455"


def test_subprotocol_selection_follows_the_clients_order():
    req = upgrade("Sec-WebSocket-Protocol: wamp, chat.v2", "Sec-WebSocket-Protocol: chat.v1")
    agreement = negotiate(req, subprotocols=["chat.v1", "chat.v2"])
    assert agreement.subprotocol == "chat.v2"
    assert b"\r\nSec-WebSocket-Protocol: chat.v2\r\n" in agreement.response


def test_subprotocol_without_match():
    req = upgrade("Sec-WebSocket-Protocol: other")
    assert negotiate(req, subprotocols=["chat"]).subprotocol is None
    assert refusal(req, subprotocols=["chat"], strict_subprotocols=True).status == 400
    # strict mode does not refuse clients that offered nothing
    assert negotiate(upgrade(), subprotocols=["chat"], strict_subprotocols=True).subprotocol is None


@pytest.mark.parametrize("version", ["12", "6", "0", "14", "13, 8", "abc"])
def test_unsupported_versions_get_426(version):
    error = refusal(upgrade(version=version))
    assert error.status == 426
    assert error.headers["Sec-WebSocket-Version"] == "13, 8, 7"


def test_missing_version_with_a_hybi_key_gets_426():
    assert refusal(upgrade(version=None)).status == 426


@pytest.mark.parametrize("key", ["", "abc", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZXh4eA==",
                                 "!!!!!!!!!!!!!!!!!!!!!!==", "dGhlIHNhbXBsZSBub25jZQ==x"])
def test_bad_keys_get_400(key):
    error = refusal(upgrade(key=key))
    assert error.status == 400 and "Key" in error.reason


def test_two_keys_get_400():
    assert refusal(upgrade("Sec-WebSocket-Key: " + KEY)).status == 400


def test_request_level_rules():
    assert refusal(upgrade(method="POST")).status == 405
    assert refusal(upgrade(http="1.0")).status == 400
    # HTTP/1.1 without Host never reaches the handshake: the parser refuses it (RFC 9112 3.2)
    with pytest.raises(HttpError) as info:
        request("Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + KEY, "Sec-WebSocket-Version: 13")
    assert info.value.status == 400 and "Host" in info.value.reason
    empty_host = request("Host:", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + KEY,
                         "Sec-WebSocket-Version: 13")
    assert "Host" in refusal(empty_host).reason
    no_connection = request("Host: h", "Upgrade: websocket", "Sec-WebSocket-Key: " + KEY,
                            "Sec-WebSocket-Version: 13")
    assert refusal(no_connection).status == 400
    wrong_connection = request("Host: h", "Upgrade: websocket", "Connection: keep-alive",
                               "Sec-WebSocket-Key: " + KEY, "Sec-WebSocket-Version: 13")
    assert refusal(wrong_connection).status == 400


def test_detect_version():
    assert detect_version(request("Host: h")) is None
    assert detect_version(upgrade()) == "rfc6455"
    assert detect_version(upgrade(version="8")) == "hybi-10"
    assert detect_version(request("Host: h", "Upgrade: WebSocket", "Connection: Upgrade",
                                  "Sec-WebSocket-Key1: 1 2", "Sec-WebSocket-Key2: 3 4")) == "hixie-76"
    assert detect_version(request("Host: h", "Upgrade: WebSocket", "Connection: Upgrade")) == "hixie-75"
