"""The sans-IO WAMP v2 session: message validation and the state machine, with payload strings."""

import pytest

from ratchet_sel.wamp.v2 import messages as m
from ratchet_sel.wamp.v2.serializers import JsonSerializer, MsgpackSerializer
from ratchet_sel.wamp.v2.session import (CHALLENGING, CLOSED, CLOSING, ESTABLISHED, ESTABLISHING,
                                         ProtocolViolation, SessionProtocol)

HELLO = '[1,"realm1",{"roles":{"caller":{}}}]'
WELCOME = [2, 1234, {"roles": {}}]


def established():
    session = SessionProtocol(JsonSerializer())
    session.receive(HELLO)
    session.send(WELCOME)
    return session


def test_hello_welcome_goodbye_as_text():
    session = SessionProtocol(JsonSerializer())
    assert session.state == ESTABLISHING
    assert session.receive(HELLO) == [1, "realm1", {"roles": {"caller": {}}}]
    assert session.send(WELCOME) == '[2,1234,{"roles":{}}]'
    assert session.state == ESTABLISHED and session.is_established
    assert session.receive('[6,{},"wamp.close.close_realm"]')[0] == m.GOODBYE
    assert session.state == CLOSING
    assert session.receive('[48,1,{},"late.call"]') is None        # ignored while closing
    assert session.send([6, {}, "wamp.close.goodbye_and_out"]) == '[6,{},"wamp.close.goodbye_and_out"]'
    assert session.state == CLOSED


def test_router_goodbye_then_client_answer():
    session = established()
    session.send([6, {}, "wamp.close.system_shutdown"])
    assert session.state == CLOSING
    assert session.receive('[6,{},"wamp.close.goodbye_and_out"]')[0] == m.GOODBYE
    assert session.state == CLOSED


def test_challenge_authenticate():
    session = SessionProtocol(JsonSerializer())
    session.receive(HELLO)
    assert session.send([4, "ticket", {}]) == '[4,"ticket",{}]'
    assert session.state == CHALLENGING
    with pytest.raises(ProtocolViolation, match="HELLO is not allowed in state CHALLENGING"):
        session.receive(HELLO)
    session = SessionProtocol(JsonSerializer())
    session.receive(HELLO)
    session.send([4, "ticket", {}])
    assert session.receive('[5,"secret",{}]') == [5, "secret", {}]
    session.send(WELCOME)
    assert session.state == ESTABLISHED


def test_abort_from_client_closes_in_any_state():
    for prepare in (lambda s: None, lambda s: (s.receive(HELLO), s.send(WELCOME))):
        session = SessionProtocol(JsonSerializer())
        prepare(session)
        assert session.receive('[3,{},"wamp.close.normal"]')[0] == m.ABORT
        assert session.state == CLOSED
        with pytest.raises(ProtocolViolation):
            session.receive(HELLO)


@pytest.mark.parametrize("payload, reason", [
    ('[48,1,{},"x"]', "CALL is not allowed in state ESTABLISHING"),
    ('[2,1,{}]', "2 is not a message type a client may send"),
    ('[1,"realm1"]', "HELLO has 1 fields, expected 2"),
    ('[1,"bad realm",{}]', "not a valid URI"),
    ('[1,"realm1",[]]', "field 2 is not a valid dict"),
    ('{"a":1}', "non-empty array"),
    ('[]', "non-empty array"),
    ('["1"]', "not a message type"),
    ('[true]', "not a message type"),
    ('[1,', "malformed JSON"),
    ('[1,"realm1",{"x":NaN}]', "NaN"),
])
def test_violations_before_welcome(payload, reason):
    with pytest.raises(ProtocolViolation, match=reason):
        SessionProtocol(JsonSerializer()).receive(payload)


@pytest.mark.parametrize("payload, reason", [
    ('[1,"realm1",{}]', "HELLO is not allowed in state ESTABLISHED"),
    ('[5,"x",{}]', "AUTHENTICATE is not allowed"),
    ('[48,9007199254740993,{},"a.b"]', "field 1 is not a valid id"),
    ('[48,-1,{},"a.b"]', "not a valid id"),
    ('[48,1.0,{},"a.b"]', "not a valid id"),
    ('[48,true,{},"a.b"]', "not a valid id"),
    ('[48,1,{},"a..b"]', "not a valid URI"),
    ('[48,1,{},"a b"]', "not a valid URI"),
    ('[48,1,{},""]', "not a valid URI"),
    ('[48,1,{},"a.b",{}]', "arguments are not an array"),
    ('[48,1,{},"a.b",[],[]]', "keyword arguments are not an object"),
    ('[48,1,{},"a.b",[],{},1]', "CALL has 6 fields, expected 3 to 5"),
    ('[32,1,{},"a.b",[]]', "SUBSCRIBE has 4 fields, expected 3"),
    ('[16,1,[],"a.b"]', "not a valid dict"),
    ('[70,1]', "YIELD has 1 fields"),
    ('[8,68,1,{},"x.y",5]', "arguments are not an array"),
    ('[36,1,1,{}]', "not a message type a client may send"),
])
def test_violations_when_established(payload, reason):
    with pytest.raises(ProtocolViolation, match=reason):
        established().receive(payload)


def test_frame_type_must_match_the_serializer():
    with pytest.raises(ProtocolViolation, match="binary frame"):
        SessionProtocol(JsonSerializer()).receive(b"[1]")
    with pytest.raises(ProtocolViolation, match="text frame"):
        SessionProtocol(MsgpackSerializer()).receive("\x91\x01")


def test_msgpack_session_and_strict_uris():
    session = SessionProtocol(MsgpackSerializer(), uri_rule=m.is_strict_uri)
    hello = MsgpackSerializer().encode([1, "realm1", {"roles": {"callee": {}}}])
    assert session.receive(hello)[1] == "realm1"
    assert session.send(WELCOME) == MsgpackSerializer().encode(WELCOME)
    with pytest.raises(ProtocolViolation, match="URI"):
        session.receive(MsgpackSerializer().encode([64, 1, {}, "Com.Example"]))
    with pytest.raises(ProtocolViolation, match="keyword argument name 1 is not a string"):
        session.receive(MsgpackSerializer().encode([48, 1, {}, "a.b", [], {1: "x"}]))
    assert established().receive('[64,1,{},"Com.Example"]')[3] == "Com.Example"   # loose by default


def test_router_cannot_send_out_of_state():
    session = SessionProtocol(JsonSerializer())
    with pytest.raises(ValueError):
        session.send([36, 1, 1, {}])
    session.receive(HELLO)
    session.send([3, {}, "wamp.error.no_such_realm"])
    assert session.state == CLOSED
    with pytest.raises(ValueError):
        session.send(WELCOME)


def test_uri_rules():
    assert m.is_loose_uri("com.example.proc") and m.is_loose_uri("Com.Ex-ample.ü")
    assert not any(m.is_loose_uri(u) for u in ("", ".a", "a.", "a..b", "a b", "a#b", 5, None))
    assert m.is_strict_uri("com.example_1.x") and not m.is_strict_uri("com.Example")
    assert m.is_id(0) and m.is_id(2 ** 53) and not m.is_id(2 ** 53 + 1) and not m.is_id(True)
