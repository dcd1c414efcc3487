"""The RESP2 parser and command encoder (sans-IO, byte strings only) and Redis URL parsing."""

import pytest

from ratchet_sel.pubsub.redis import RedisAddress, parse_redis_url
from ratchet_sel.pubsub.resp import RedisError, RespParser, RespProtocolError, encode_command, split_message

PUSH = b"*3\r\n$7\r\nmessage\r\n$16\r\nratchet_sel:chat\r\n$5\r\nhello\r\n"


@pytest.mark.parametrize("data, value", [
    (b"+OK\r\n", "OK"),
    (b"-ERR unknown command 'FOO'\r\n", RedisError("ERR unknown command 'FOO'")),
    (b":0\r\n", 0),
    (b":-42\r\n", -42),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"$4\r\n\r\n\r\n\r\n", b"\r\n\r\n"),          # a bulk string may hold CRLF
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*2\r\n:1\r\n*1\r\n$1\r\nx\r\n", [1, [b"x"]]),
    (PUSH, [b"message", b"ratchet_sel:chat", b"hello"]),
])
def test_each_reply_type(data, value):
    assert RespParser().feed(data) == [value]


def test_replies_split_at_every_byte_come_out_whole_and_in_order():
    stream = PUSH + b":3\r\n" + b"$-1\r\n" + b"-NOAUTH Authentication required.\r\n" + PUSH
    expected = RespParser().feed(stream)
    assert len(expected) == 5
    for cut in range(1, len(stream)):
        parser = RespParser()
        assert parser.feed(stream[:cut]) + parser.feed(stream[cut:]) == expected
    parser = RespParser()
    out = []
    for index in range(len(stream)):
        out.extend(parser.feed(stream[index:index + 1]))
    assert out == expected and parser.buffered == 0


def test_a_long_bulk_string_in_pieces_is_not_reparsed_until_complete():
    payload = bytes(range(256)) * 400
    data = b"$%d\r\n" % len(payload) + payload + b"\r\n"
    parser = RespParser()
    for start in range(0, len(data) - 1, 1000):
        assert parser.feed(data[start:start + 1000]) == [] or start + 1000 >= len(data)
    parser = RespParser()
    assert parser.feed(data[:500]) == []
    assert parser.feed(data[500:-1]) == []
    assert parser.feed(data[-1:]) == [payload]


def test_many_replies_in_one_feed():
    assert RespParser().feed(b":1\r\n" * 1000) == [1] * 1000


@pytest.mark.parametrize("data, reason", [
    (b"!garbage\r\n", "unknown reply type"),
    (b"HTTP/1.1 400 Bad Request\r\n", "unknown reply type"),
    (b"$abc\r\n", "bad bulk length"),
    (b"$-2\r\n", "negative bulk length"),
    (b"$3\r\nabcXY", "not followed by CRLF"),
    (b"*x\r\n", "bad array length"),
    (b"*-5\r\n", "negative array length"),
    (b":12a\r\n", "bad integer"),
    (b"$\r\n", "bad bulk length"),
])
def test_garbage_is_a_protocol_error(data, reason):
    with pytest.raises(RespProtocolError, match=reason):
        RespParser().feed(data)


def test_limits():
    with pytest.raises(RespProtocolError, match="exceeds the limit"):
        RespParser(max_bulk=10).feed(b"$11\r\n")
    assert RespParser(max_bulk=10).feed(b"$10\r\n0123456789\r\n") == [b"0123456789"]
    with pytest.raises(RespProtocolError, match="exceeds the limit"):
        RespParser(max_array=2).feed(b"*3\r\n")
    with pytest.raises(RespProtocolError, match="nested deeper"):
        RespParser(max_depth=3).feed(b"*1\r\n" * 4 + b":1\r\n")
    assert RespParser(max_depth=3).feed(b"*1\r\n" * 3 + b":1\r\n") == [[[[1]]]]
    with pytest.raises(RespProtocolError, match="line longer"):
        RespParser(max_line=16).feed(b"+" + b"x" * 40)
    # an endless line is refused as soon as it is too long, not buffered for ever
    parser = RespParser(max_line=16)
    parser.feed(b"+" + b"x" * 10)
    with pytest.raises(RespProtocolError):
        parser.feed(b"x" * 10)


def test_encode_command():
    assert encode_command("PUBLISH", b"ch", b"\x00\r\n") == b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$3\r\n\x00\r\n\r\n"
    assert encode_command("SELECT", 12) == b"*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n"
    assert encode_command("AUTH", "pässword") == b"*2\r\n$4\r\nAUTH\r\n$9\r\np\xc3\xa4ssword\r\n"
    # what the encoder writes, the parser reads back
    assert RespParser().feed(encode_command("a", b"", b"\r\n")) == [[b"a", b"", b"\r\n"]]


def test_split_message_and_error_kind():
    assert split_message([b"MESSAGE", b"c", b"d"]) == (b"message", [b"c", b"d"])
    assert split_message("OK") is None and split_message([]) is None and split_message([1]) is None
    assert RedisError("WRONGPASS invalid username-password pair").kind == "WRONGPASS"


@pytest.mark.parametrize("url, address", [
    ("redis://127.0.0.1:6379/0", RedisAddress("127.0.0.1", 6379, 0, None, None, False)),
    ("redis://localhost", RedisAddress("localhost", 6379, 0, None, None, False)),
    ("redis://:p%40ss@10.0.0.5:7000/15", RedisAddress("10.0.0.5", 7000, 15, None, "p@ss", False)),
    ("redis://alice:secret@h/2", RedisAddress("h", 6379, 2, "alice", "secret", False)),
    ("redis://secret@h", RedisAddress("h", 6379, 0, None, "secret", False)),
    ("rediss://[::1]:6380/1", RedisAddress("::1", 6380, 1, None, None, True)),
    ("redis://", RedisAddress("127.0.0.1", 6379, 0, None, None, False)),
])
def test_parse_redis_url(url, address):
    assert parse_redis_url(url) == address


@pytest.mark.parametrize("url, reason", [
    ("http://h:6379", "redis:// or rediss://"),
    ("127.0.0.1:6379", "redis:// or rediss://"),
    ("redis://h:port/0", "port"),
    ("redis://h:6379/zero", "database"),
    ("redis://h:99999/0", "port"),
])
def test_bad_redis_urls_are_explained(url, reason):
    with pytest.raises(ValueError, match=reason):
        parse_redis_url(url)


def test_the_display_form_hides_the_password():
    assert parse_redis_url("rediss://:hunter2@[::1]:6380/1").display() == "rediss://[::1]:6380/1"


def test_the_cli_refuses_a_bad_redis_url_with_a_reason(caplog):
    from ratchet_sel.__main__ import main

    assert main(["chat", "--port", "0", "--redis", "http://127.0.0.1:6379"]) == 2
    assert "--redis: a Redis URL starts with redis:// or rediss://" in caplog.text
