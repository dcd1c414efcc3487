"""The sans-IO HTTP request parser and responses."""

import pytest

from ratchet_sel.http.request import Headers, HttpError, RequestParser, header_tokens
from ratchet_sel.http.response import Response, error_response

pytestmark = pytest.mark.timeout(30)

GET = b"GET /room/a%20b?x=1&y=2&x=3&empty= HTTP/1.1\r\nHost: example.com\r\nCookie: a=1; b=\"two\"\r\n" \
      b"Cookie: c=3\r\nX-Multi: one\r\nx-multi: two\r\n\r\n"


def parse(data, **limits):
    return RequestParser(**limits).feed(data)


def error_of(data, **limits):
    with pytest.raises(HttpError) as info:
        parser = RequestParser(**limits)
        for i in range(0, len(data), 1000):
            parser.feed(data[i:i + 1000])
    return info.value


def test_request_fields():
    req = parse(GET)
    assert (req.method, req.target, req.version) == ("GET", "/room/a%20b?x=1&y=2&x=3&empty=", "1.1")
    assert req.path == "/room/a b" and req.raw_path == "/room/a%20b"
    assert req.query == {"x": "3", "y": "2", "empty": ""}
    assert req.query_list == [("x", "1"), ("y", "2"), ("x", "3"), ("empty", "")]
    assert req.headers["HOST"] == "example.com" and req.host == "example.com"
    assert req.headers.get("x-multi") == "one, two"
    assert req.headers.get_all("X-MULTI") == ["one", "two"]
    assert req.cookies == {"a": "1", "b": "two", "c": "3"}


def test_bad_cookie_pairs_do_not_hide_good_ones():
    req = parse(b"GET / HTTP/1.1\r\nHost: h\r\nCookie: good=1; b(a)d=x; =nope; ok=2\r\n\r\n")
    assert req.cookies["good"] == "1" and req.cookies["ok"] == "2"


def test_byte_by_byte_and_remaining_bytes():
    parser = RequestParser()
    data = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\x81\x85rest"
    result = None
    for i in range(len(data)):
        result = parser.feed(data[i:i + 1]) or result
        if result:
            break
    assert result is not None and result.path == "/"
    parser = RequestParser()
    assert parser.feed(data) is not None
    assert parser.remaining == b"\x81\x85rest"


def test_bare_lf_line_endings_are_accepted():
    req = parse(b"GET / HTTP/1.1\nHost: h\n\n")
    assert req.host == "h"


def test_body_with_content_length():
    parser = RequestParser()
    assert parser.feed(b"POST /f HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab") is None
    req = parser.feed(b"cdeXX")
    assert req.body == b"abcde" and parser.remaining == b"XX"


@pytest.mark.parametrize("data,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505),
    (b"GET nopath HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost h\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Name: h\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\x00\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n\r\n", 413),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
])
def test_rejections(data, status):
    error = error_of(data)
    assert error.status == status and error.reason


def test_limits():
    assert error_of(b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n").status == 414
    assert error_of(b"GET /" + b"a" * 10000).status == 414  # before the line ends
    big = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(90))
    assert error_of(big + b"\r\n", max_header_bytes=4096).status == 431
    assert error_of(big, max_header_bytes=4096).status == 431  # before the section ends
    many = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n"
    assert error_of(many).status == 431
    assert parse(b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(99)) + b"\r\n")


def test_headers_and_tokens():
    headers = Headers([("A", "1"), ("b", "2")])
    assert "a" in headers and "B" in headers and "c" not in headers
    assert list(headers) == ["A", "b"] and len(headers) == 2
    with pytest.raises(KeyError):
        headers["c"]
    assert header_tokens(" keep-alive , Upgrade,,") == ["keep-alive", "upgrade"]
    assert header_tokens(None) == []


def test_responses():
    raw = Response(200, "héllo", {"Content-Type": "text/plain; charset=utf-8"}).to_bytes()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 6\r\n" in raw and b"\r\nConnection: close\r\n" in raw
    assert raw.endswith(b"\r\n\r\nh\xc3\xa9llo")
    raw = error_response(431, "Request header section too large").to_bytes()
    assert raw.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert raw.endswith(b"Request header section too large\n")


def test_expect_100_continue_is_flagged_while_the_body_is_awaited():
    parser = RequestParser()
    head = b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n"
    assert parser.feed(head) is None and parser.awaits_continue
    assert parser.feed(b"ab") is None
    request = parser.feed(b"c")
    assert request.body == b"abc" and not parser.awaits_continue
    # no body, or no Expect: nothing to wait for
    for data in (b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
                 b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"):
        parser = RequestParser()
        parser.feed(data)
        assert not parser.awaits_continue


# -- hardening: bad input is a status, never an exception of another kind ------------------------------

@pytest.mark.parametrize("value", [
    "\xb2",                   # str.isdigit() accepts latin-1 superscripts; int() does not
    "1\xb9",
    "0" * 4301,               # past Python's int-digits limit
    "9" * 5000,
    "+5", "-1", " 5 5", "0x10", "\u0661",
], ids=lambda value: ascii(value)[:24])
def test_content_length_must_be_plain_digits(value):
    data = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value.encode("latin-1", "replace") + b"\r\n\r\n"
    for pieces in ([data], [data[i:i + 1] for i in range(len(data))]):
        with pytest.raises(HttpError) as info:
            parser = RequestParser()
            for piece in pieces:
                parser.feed(piece)
        assert info.value.status == 400 and "Content-Length" in info.value.reason


def test_content_length_with_leading_zeros_and_the_largest_numeral():
    req = parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0003\r\n\r\nabc")
    assert req.body == b"abc"
    assert error_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + b"9" * 20 + b"\r\n\r\n").status == 413


def test_http11_without_host_is_refused():
    error = error_of(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n")
    assert error.status == 400 and "Host" in error.reason
    assert parse(b"GET / HTTP/1.0\r\n\r\n").version == "1.0"     # HTTP/1.0 has no such rule
    assert parse(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").host == ""   # present but empty: allowed (RFC 9112 3.2)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\rX-Smuggled: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\r\nY: 2\r\n\r\n",
    b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
], ids=ascii)
def test_a_bare_cr_is_refused(data):
    for pieces in ([data], [data[i:i + 1] for i in range(len(data))]):
        with pytest.raises(HttpError) as info:
            parser = RequestParser()
            for piece in pieces:
                parser.feed(piece)
        assert info.value.status == 400 and "CR" in info.value.reason


def test_the_status_of_a_head_does_not_depend_on_how_it_is_split():
    """A request line over the line limit inside a head over the head limit: 414 however it arrives."""
    data = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n" + b"X: " + b"v" * 70000 + b"\r\n\r\n"
    answers = set()
    for step in (len(data), 1, 7, 4096):
        parser = RequestParser()
        with pytest.raises(HttpError) as info:
            for i in range(0, len(data), step):
                parser.feed(data[i:i + step])
        answers.add((info.value.status, info.value.reason))
    assert answers == {(414, "Request line too long")}
    tls = b"\x16\x03\x01 / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert {(error_of(tls).status, error_of(tls).reason)} == {
        (e.status, e.reason) for e in [error_of(tls[:1]), error_of(tls[:5])]}
