"""Fuzzing the WAMP v2 router with random message arrays: each bad session ends, the others keep working."""

import random

import pytest

from ratchet_sel import WsServer
from ratchet_sel.wamp.v2 import WampRouter
from ratchet_sel.wamp.v2.serializers import SERIALIZERS
from support import ServerThread
from wamp2_client import Wamp2Client

CODES = [1, 2, 3, 4, 5, 6, 8, 16, 17, 32, 33, 34, 35, 36, 48, 49, 50, 64, 65, 66, 67, 68, 69, 70, 0, 7, 99, -1,
         2 ** 64 - 1]


def random_item(rng):
    return rng.choice([
        None, True, False, 0, -1, 1, 2 ** 53, 2 ** 53 + 1, 2 ** 64 - 1, -2 ** 63, 1.5, "", "a.b", "a..b", "wamp.x",
        "x" * 300, b"\x00\x01", [], [1, "x"], {}, {"acknowledge": True}, {"timeout": -5}, {"mode": "nonsense"},
        {"exclude": "x"}, {"eligible": [True]}, {"match": "prefix"}, {"roles": "no"}, {"roles": {}},
    ])


def random_message(rng):
    """A message array that is usually wrong: random code, length and field types."""
    message = [rng.choice(CODES)] + [random_item(rng) for _ in range(rng.randrange(0, 8))]
    if rng.random() < 0.1:
        return rng.choice([{}, "text", 5, None, []])
    return message


def expect_end(client):
    """Read until the server closes; True if an ABORT or a close frame came."""
    while True:
        try:
            event = client.ws.recv()
        except (ConnectionError, OSError):
            return False
        name = type(event).__name__
        if name == "Close":
            return True
        if name == "Message":
            message = client.serializer.decode(event.data)
            if message[0] == 3:
                continue


@pytest.mark.parametrize("subprotocol", ["wamp.2.json", "wamp.2.msgpack"])
def test_random_messages_never_hurt_other_sessions(subprotocol):
    rng = random.Random(2323 + len(subprotocol))
    router = WampRouter(["realm1"])
    router.register("com.add", lambda a, b: a + b)
    ended = answered = 0
    with ServerThread(WsServer(router)) as server, Wamp2Client(server.port, "wamp.2.json") as witness:
        witness.join()
        for round_number in range(60):
            with Wamp2Client(server.port, subprotocol) as fuzzer:
                if round_number % 2:
                    fuzzer.join()
                for _ in range(5):
                    message = random_message(rng)
                    try:
                        fuzzer.send(message)
                    except Exception:
                        fuzzer.ws.send(SERIALIZERS["wamp.2.json"].encode([99]))
                        break
                # a certainly bad message last: the session must end with ABORT/close
                fuzzer.send([rng.choice([0, 2, 36, 99]), 2 ** 60])
                ended += expect_end(fuzzer)
            assert witness.call("com.add", [round_number, 1])[3] == [round_number + 1]
            answered += 1
        assert server.call(router.session_count) == 1
    assert ended == 60 and answered == 60


def test_garbage_payloads_and_wrong_frames():
    router = WampRouter(["realm1"])
    with ServerThread(WsServer(router)) as server, Wamp2Client(server.port) as witness:
        witness.join()
        for payload in (b"\x00\xff", "[1,", "\ud7ff" * 3, "[" * 5000 + "]" * 5000, "[1,\"realm1\",{\"roles\":1}]"):
            with Wamp2Client(server.port, "wamp.2.json") as fuzzer:
                fuzzer.ws.send(payload)
                assert fuzzer.recv()[2] == "wamp.error.protocol_violation"
                assert fuzzer.ws.expect_close().code == 1002
        for payload in (b"\xc1", b"\x91", b"\xd4\x01\x00", "text", b"\x92\x01"):
            with Wamp2Client(server.port, "wamp.2.msgpack") as fuzzer:
                fuzzer.ws.send(payload)
                assert fuzzer.recv()[2] == "wamp.error.protocol_violation"
                assert fuzzer.ws.expect_close().code == 1002
        witness.send([16, 1, {"acknowledge": True}, "still.alive"])
        assert witness.recv()[0] == 17
