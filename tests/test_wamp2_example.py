"""examples/wamp2_app.py: the page, its static files, its procedures and topic, v1 beside v2."""

import importlib.util
import json
import os

import pytest

from support import ServerThread
from wamp2_client import Wamp2Client
from wsclient import WsClient, http_exchange

HERE = os.path.dirname(os.path.abspath(__file__))


def load_example():
    spec = importlib.util.spec_from_file_location("wamp2_app", os.path.join(HERE, "..", "examples", "wamp2_app.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def example_server(tmp_path):
    (tmp_path / "autobahn.min.js").write_text("var autobahn = {};")
    with ServerThread(load_example().build_component(["realm1"], str(tmp_path))) as server:
        yield server


def test_page_static_files_and_procedures(example_server):
    port = example_server.port
    status, headers, body = http_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and b"/autobahn.min.js" in body and b"com.example.add" in body
    status, headers, body = http_exchange(port, b"GET /autobahn.min.js HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and body == b"var autobahn = {};" and "javascript" in headers["content-type"]
    for path in (b"/../etc/passwd", b"/missing.js"):
        assert http_exchange(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 404
    with Wamp2Client(port, "wamp.2.msgpack") as client:
        client.join()
        assert client.call("com.example.add", [2, 3])[3] == [5]
        error = client.call("com.example.divide", [1, 0])
        assert error[4:] == ["com.example.divide_by_zero", ["cannot divide by zero"], {"dividend": 1}]
        assert client.call("com.example.echo", [1, b"\x02"], {"k": "v"})[3:] == [[1, b"\x02"], {"k": "v"}]
        assert client.call("com.example.whoami")[3][0]["session"] == client.session_id
        client.send([16, 1, {"acknowledge": True}, "com.example.chat", ["hi"]])
        assert client.recv()[0] == 17
        assert client.call("com.example.chat_count")[3] == [1]


def test_v1_client_on_the_same_port(example_server):
    with WsClient(example_server.port, extra=[("Sec-WebSocket-Protocol", "wamp")]) as old, \
            Wamp2Client(example_server.port) as new:
        assert json.loads(old.recv_message())[0] == 0
        new.join()
        new.subscribe("com.example.chat")
        old.send(json.dumps([7, "com.example.chat", "from v1"]))
        assert new.recv()[4] == ["from v1"]
