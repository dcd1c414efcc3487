"""The WAMP v2 serializers: byte-level cases, round trips, the msgpack package's bytes, wamp-proto's vectors."""

import hashlib
import json
import os
import random
import struct

import pytest

from msgpack_values import VALUES
from ratchet_sel.wamp.v2 import msgpack
from ratchet_sel.wamp.v2.serializers import (SERIALIZERS, JsonSerializer, MsgpackSerializer, SerializationError,
                                             serializer_for)

DATA = os.path.join(os.path.dirname(__file__), "data")
JSON = JsonSerializer()
MSGPACK = MsgpackSerializer()


def load(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as source:
        return json.load(source)


# -- MessagePack, byte by byte ---------------------------------------------------------------
@pytest.mark.parametrize("value, hexed", [
    (None, "c0"), (False, "c2"), (True, "c3"), (0, "00"), (127, "7f"), (128, "cc80"), (-1, "ff"), (-32, "e0"),
    (-33, "d0df"), (256, "cd0100"), (65536, "ce00010000"), (2 ** 64 - 1, "cfffffffffffffffff"),
    (-2 ** 63, "d38000000000000000"), (1.5, "cb3ff8000000000000"), ("", "a0"), ("a", "a161"),
    ("x" * 32, "d920" + "78" * 32), (b"\x01", "c40101"), ([], "90"), ([1, 2], "920102"), ({}, "80"),
    ({"a": 1}, "81a16101"), ((1,), "9101"),
])
def test_msgpack_packs_the_smallest_form(value, hexed):
    assert msgpack.packb(value).hex() == hexed


@pytest.mark.parametrize("hexed, value", [
    ("ca3fc00000", 1.5),              # float 32, which the encoder never writes
    ("d9016162", None),               # str8 of length 1 followed by a stray byte: trailing
])
def test_msgpack_decodes_other_forms(hexed, value):
    data = bytes.fromhex(hexed)
    if value is None:
        with pytest.raises(msgpack.MsgpackError, match="trailing"):
            msgpack.unpackb(data)
    else:
        assert msgpack.unpackb(data) == value


@pytest.mark.parametrize("hexed, message", [
    ("", "truncated"), ("92", "truncated"), ("cd01", "truncated"), ("dc0001", "truncated"),
    ("a3616263ff", "trailing"), ("c1", "not a MessagePack type"), ("d40100", "extension"),
    ("c70100", "extension"), ("d7ff0000000000000000", "extension"), ("a2c328", "not UTF-8"),
    ("dd7fffffff", "truncated"), ("df7fffffff", "truncated"), ("8190c0", "map key"),
    ("c6ffffffff", "truncated"),
])
def test_msgpack_refuses_malformed_input_clearly(hexed, message):
    with pytest.raises(msgpack.MsgpackError, match=message):
        msgpack.unpackb(bytes.fromhex(hexed))


def test_msgpack_depth_limit_both_ways():
    deep = [0]
    for _ in range(70):
        deep = [deep]
    with pytest.raises(msgpack.MsgpackError, match="deep"):
        msgpack.packb(deep)
    data = b"\x91" * 70 + b"\x00"
    with pytest.raises(msgpack.MsgpackError, match="deeper"):
        msgpack.unpackb(data)
    assert msgpack.unpackb(b"\x91" * 10 + b"\x00", max_depth=10) is not None


def test_msgpack_refuses_what_it_cannot_carry():
    for value in (2 ** 64, -2 ** 63 - 1, object(), {1.5j: 1}):
        with pytest.raises(msgpack.MsgpackError):
            msgpack.packb(value)


def test_msgpack_matches_the_msgpack_package():
    """Bytes produced once by the msgpack package (scripts/gen_msgpack_vectors.py), compared both ways."""
    oracle = load("msgpack_oracle.json")["entries"]
    assert len(oracle) == len(VALUES)
    for value, entry in zip(VALUES, oracle):
        packed = msgpack.packb(value)
        if "hex" in entry:
            assert packed.hex() == entry["hex"], value
            assert msgpack.unpackb(bytes.fromhex(entry["hex"])) == value
        else:
            assert (hashlib.sha256(packed).hexdigest(), len(packed)) == (entry["sha256"], entry["length"])
            assert msgpack.unpackb(packed) == value


def random_value(rng, depth=0):
    kind = rng.randrange(10 if depth < 4 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-2 ** 63, 2 ** 64 - 1) if rng.random() < 0.5 else rng.randint(-40, 300)
    if kind == 2:
        return struct.unpack(">d", struct.pack(">d", rng.uniform(-1e9, 1e9)))[0]
    if kind in (3, 4):
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD7FF)]))
                       for _ in range(rng.choice([0, 1, 5, 40, 300])))
    if kind in (5, 6):
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 17, 300])))
    if kind in (7, 8):
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(20))]
    return {"k%d" % rng.randrange(1000): random_value(rng, depth + 1) for _ in range(rng.randrange(20))}


@pytest.mark.parametrize("serializer", [JSON, MSGPACK], ids=["json", "msgpack"])
def test_round_trips_of_random_values(serializer):
    rng = random.Random(23)
    for _ in range(300):
        value = [rng.randrange(1, 70), random_value(rng)]
        assert serializer.decode(serializer.encode(value)) == value


def test_msgpack_truncations_are_all_refused():
    rng = random.Random(5)
    for _ in range(100):
        data = msgpack.packb([1, random_value(rng)])
        cut = rng.randrange(len(data))
        with pytest.raises(msgpack.MsgpackError):
            msgpack.unpackb(data[:cut])


# -- JSON ------------------------------------------------------------------------------------------
def test_json_is_compact_utf8_with_binary_as_nul_base64():
    text = JSON.encode([16, 1, {}, "t", ["é", b"\x00\x10\xff"]])
    assert text == '[16,1,{},"t",["é","\\u0000ABD/"]]'
    assert JSON.decode(text) == [16, 1, {}, "t", ["é", b"\x00\x10\xff"]]
    assert JSON.decode(text.encode("utf-8"))[4][1] == b"\x00\x10\xff"
    assert JSON.decode('{"k": ["\\u0000"]}') == {"k": [b""]}


@pytest.mark.parametrize("payload, message", [
    ("[1, NaN]", "NaN is not JSON"), ("[Infinity]", "Infinity"), ("[1,", "malformed"), ("[1] [2]", "malformed"),
    (b"\xff[]", "not UTF-8"), ('["\\u0000!!"]', "not base64"), ('["\\ud800"]', "lone surrogate"),
    ('{"\\uDFFF":1}', "lone surrogate"), ('["\\u0000\u00e9"]', "not base64"),
    ("[" * 100000 + "]" * 100000, "malformed"),
])
def test_json_refuses_bad_payloads(payload, message):
    with pytest.raises(SerializationError, match=message):
        JSON.decode(payload)


def test_json_keeps_escaped_surrogate_pairs_and_msgpack_refuses_lone_surrogates():
    assert JSON.decode('["\\ud83d\\ude00"]') == ["\U0001F600"]
    with pytest.raises(SerializationError, match="MessagePack"):
        MSGPACK.encode(["\udc00"])


def test_json_refuses_to_encode_nan_and_objects():
    for value in ([float("nan")], [float("inf")], [object()]):
        with pytest.raises(SerializationError):
            JSON.encode(value)


def test_serializer_lookup_and_frames():
    assert serializer_for("wamp.2.json") is SERIALIZERS["wamp.2.json"]
    assert serializer_for("wamp.2.msgpack").binary and not serializer_for("wamp.2.json").binary
    assert serializer_for("wamp") is None and serializer_for(None) is None
    with pytest.raises(SerializationError, match="text frame"):
        MSGPACK.decode("\x90")


# -- the wamp-proto project's test vectors ---------------------------------------------------------
VECTORS = load("wamp_proto_vectors.json")["vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_wamp_proto_vectors_decode_to_one_message(vector):
    """Every serialized form of a sample decodes to the same message; our encodings decode back to it."""
    decoded = [JSON.decode(text) for text in vector["json"]]
    decoded += [MSGPACK.decode(bytes.fromhex(hexed)) for hexed in vector["msgpack_hex"]]
    assert decoded, vector["name"]
    first = decoded[0]
    assert isinstance(first, list) and first[0] == vector["code"]
    for other in decoded[1:]:
        assert other == first
    assert JSON.decode(JSON.encode(first)) == first
    assert MSGPACK.decode(MSGPACK.encode(first)) == first
    if vector["msgpack_hex"] and not _has_float(first):
        # ints and strings have one smallest form: the bytes must be exactly those of the vector
        assert MSGPACK.encode(first).hex() in vector["msgpack_hex"]


def _has_float(value):
    if isinstance(value, float):
        return True
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    return False
