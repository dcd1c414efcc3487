"""Values whose MessagePack bytes the ``msgpack`` package produced once (tests/data/msgpack_oracle.json).

scripts/gen_msgpack_vectors.py regenerates the data file from this list with
the ``msgpack`` package; tests/test_wamp2_serializers.py compares the
in-tree codec with it without needing the package.
"""

VALUES = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -2 ** 31, -2 ** 31 - 1, -2 ** 63,
    0.0, 1.5, -2.25, 1e300, "", "a", "x" * 31, "x" * 32, "x" * 255, "x" * 256, "x" * 65535, "é" * 40000,
    "snow \u2603", b"", b"\x00\xff", b"b" * 255, b"b" * 256, b"c" * 65536, [], [1, [2, [3]]],
    list(range(15)), list(range(16)), list(range(65535)), list(range(65536)), {}, {"a": 1},
    {str(i): i for i in range(15)}, {str(i): i for i in range(16)}, {str(i): i for i in range(65536)},
    {1: "int key", b"k": "bin key"},
    [48, 1, {}, "com.example.add", [2, 3], {"x": b"\x01"}],
    [36, 5512315355, 4429313566, {}, ["Hello", -7.5, None], {"nested": {"deep": [True, False]}}],
]
