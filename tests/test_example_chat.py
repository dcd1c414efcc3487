"""examples/chat.py runs from a checkout and relays between members."""

import os
import re
import signal
import subprocess
import sys

import pytest
from wsclient import WsClient

from ratchet_sel.client import ConnectionClosed, connect

pytestmark = pytest.mark.timeout(60)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_example_chat_relays_and_stops_on_sigterm(tmp_path):
    # Started from another directory: the example must find the package itself.
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "examples", "chat.py"), "--host", "127.0.0.1",
                             "--port", "0"], cwd=str(tmp_path), stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    try:
        port = None
        for line in proc.stderr:
            match = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "the example did not log its URL"
        url = "ws://127.0.0.1:%d/" % port
        # carol speaks HyBi-10 (version 8), which only the test helper does.
        with connect(url) as alice, connect(url) as bob, WsClient(port, version="8") as carol:
            alice.send("hi all")
            assert bob.recv(10) == "hi all"
            assert carol.recv_message() == "hi all"
            carol.send(b"\x00\x01")
            assert alice.recv(10) == b"\x00\x01"
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                alice.recv(10)
            assert closed.value.code == 1001
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.stderr.close()
