"""A sans-IO HTTP/1.1 request parser with limits, and the request it yields.

Feed it bytes as they arrive; it answers with a :class:`Request` once the
header section is complete (and the body, when ``Content-Length`` announces
one), or raises :class:`HttpError` carrying the status to answer with.  Bytes
that follow the request are kept in :attr:`RequestParser.remaining`: for an
upgrade they already belong to the new protocol.
"""

import re
from http.cookies import CookieError, SimpleCookie
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple
from urllib.parse import parse_qsl, unquote

__all__ = ["Headers", "Request", "RequestParser", "HttpError", "header_tokens", "parse_decimal"]

# RFC 7230 token characters, for methods and header names.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_REQUEST_LINE = re.compile(rb"([^ ]+) ([^ ]+) HTTP/(\d)\.(\d)\Z")
# Field values: visible ASCII, obs-text, space and tab (no other controls).
_FIELD_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*\Z")
_END_OF_HEADERS = re.compile(rb"\r?\n\r?\n")
_TARGET = re.compile(rb"[\x21-\x7e\x80-\xff]+\Z")
_DIGITS = re.compile(r"[0-9]+\Z")


def parse_decimal(text: str, max_digits: int) -> Optional[int]:
    """The value of ``text`` as ``1*DIGIT`` (ASCII digits only), or ``None``.

    ``None`` also when it has more than ``max_digits`` characters: wire
    numbers are bounded, and ``str.isdigit``/``int`` accept forms HTTP does
    not (superscripts, other scripts' digits, signs, spaces) or refuse very
    long numerals with ``ValueError``.
    """
    if len(text) > max_digits or not _DIGITS.match(text):
        return None
    return int(text)


class HttpError(Exception):
    """A request that must be answered with ``status`` and ``reason``, then closed."""

    def __init__(self, status: int, reason: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__("%d %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.headers = headers or {}


# Names most requests carry, decoded once for all of them: every connection
# keeps its upgrade request, so per-request copies of these strings add up.
_COMMON_NAMES: Dict[bytes, Tuple[str, str]] = {}
for _name in ("Host", "Upgrade", "Connection", "Origin", "User-Agent", "Accept", "Accept-Encoding",
              "Accept-Language", "Cache-Control", "Pragma", "Cookie", "Referer", "Authorization",
              "Content-Length", "Content-Type", "Forwarded", "X-Forwarded-For", "X-Forwarded-Proto",
              "X-Real-IP", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions",
              "Sec-WebSocket-Protocol", "Sec-WebSocket-Origin", "Sec-WebSocket-Key1", "Sec-WebSocket-Key2",
              "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User"):
    for _spelling in (_name, _name.lower()):
        _COMMON_NAMES[_spelling.encode("ascii")] = (_spelling, _name.lower())
del _name, _spelling


class Headers:
    """Case-insensitive, multi-valued header fields in arrival order."""

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[Tuple[str, str]] = ()) -> None:
        self._items: List[str] = []  # name, value, name, value, ...: no tuple per field
        # lower-cased name -> its value, or the list of its values when repeated
        self._index: Dict[str, Any] = {}
        for name, value in items:
            self.add(name, value)

    def add(self, name: str, value: str, lower: Optional[str] = None) -> None:
        """Append one field (``lower``: the name lower-cased, if the caller has it)."""
        self._items += (name, value)
        if lower is None:
            lower = name.lower()
        index = self._index
        known = index.get(lower)
        if known is None:
            index[lower] = value
        elif isinstance(known, list):
            known.append(value)
        else:
            index[lower] = [known, value]

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """All values of ``name`` joined with ``", "`` (RFC 7230 3.2.2), or ``default``."""
        values = self._index.get(name.lower())
        if values is None:
            return default
        return values if values.__class__ is str else ", ".join(values)

    def get_all(self, name: str) -> List[str]:
        """Every value of ``name``, in order."""
        values = self._index.get(name.lower())
        if values is None:
            return []
        return [values] if values.__class__ is str else list(values)

    def count(self, name: str) -> int:
        """How many fields named ``name`` there are."""
        return len(self.get_all(name))

    def items(self) -> List[Tuple[str, str]]:
        """Every (name, value) pair in arrival order, names as sent."""
        return list(zip(self._items[::2], self._items[1::2]))

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._items[::2])

    def __len__(self) -> int:
        return len(self._items) // 2

    def __repr__(self) -> str:
        return "Headers(%r)" % (self.items(),)


def header_tokens(value: Optional[str]) -> List[str]:
    """The comma-separated tokens of a header value, stripped and lower-cased."""
    if not value:
        return []
    return [token.strip().lower() for token in value.split(",") if token.strip()]


class Request:
    """A parsed HTTP request.

    ``path`` is percent-decoded, ``target`` is the raw request target,
    ``query`` maps each parameter to its last value (``query_list`` keeps all
    pairs), ``headers`` is case-insensitive, ``cookies`` maps names to values,
    and ``params`` holds the values a router captured from the path.
    """

    __slots__ = ("__dict__", "method", "target", "version", "headers", "body",
                 "path", "raw_path", "query_string", "_query_list", "_query", "_params", "_cookies")

    def __init__(self, method: str, target: str, version: str, headers: Headers, body: bytes = b"") -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        raw_path, _, self.query_string = target.partition("?")
        if raw_path.startswith(("http://", "https://")):
            # absolute-form (RFC 7230 5.3.2): keep the path part only
            raw_path = "/" + raw_path.split("/", 3)[3] if raw_path.count("/") >= 3 else "/"
        self.raw_path = raw_path
        self.path = unquote(raw_path, errors="replace")
        self._query_list: Optional[List[Tuple[str, str]]] = None
        self._query: Optional[Dict[str, str]] = None
        self._params: Optional[Dict[str, str]] = None
        self._cookies: Optional[Dict[str, str]] = None

    # Parsed on first use: most connections never look, and all keep the request.
    @property
    def query_list(self) -> List[Tuple[str, str]]:
        """Every query parameter as (name, value), in order."""
        if self._query_list is None:
            self._query_list = parse_qsl(self.query_string, keep_blank_values=True)
        return self._query_list

    @property
    def query(self) -> Dict[str, str]:
        """Query parameters, each name to its last value."""
        if self._query is None:
            self._query = dict(self.query_list)
        return self._query

    @property
    def params(self) -> Dict[str, str]:
        """Values a router captured from the path."""
        if self._params is None:
            self._params = {}
        return self._params

    @params.setter
    def params(self, value: Dict[str, str]) -> None:
        self._params = value

    @property
    def host(self) -> str:
        """The Host header ('' when missing)."""
        return self.headers.get("Host", "") or ""

    @property
    def cookies(self) -> Dict[str, str]:
        """Cookie names to values, parsed from every Cookie header with ``http.cookies``."""
        if self._cookies is None:
            cookies: Dict[str, str] = {}
            for header in self.headers.get_all("Cookie"):
                for part in header.split(";"):
                    # One bad pair must not hide the others: parse each alone.
                    jar: SimpleCookie = SimpleCookie()
                    try:
                        jar.load(part.strip())
                    except CookieError:
                        continue
                    for name, morsel in jar.items():
                        cookies.setdefault(name, morsel.value)
            self._cookies = cookies
        return self._cookies

    def __repr__(self) -> str:
        return "<Request %s %s>" % (self.method, self.target)


class RequestParser:
    """Parses one request from bytes fed in pieces.

    Limits (each answered with a status): ``max_line`` bytes of request line
    (414), ``max_header_bytes`` for the whole header section (431),
    ``max_headers`` fields (431), ``max_body`` bytes of body (413).
    """

    def __init__(self, *, max_line: int = 8192, max_header_bytes: int = 65536,
                 max_headers: int = 100, max_body: int = 1024 * 1024) -> None:
        self.max_line = max_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body = max_body
        self._buffer = bytearray()
        self._request: Optional[Request] = None
        self._body_left = 0
        self._scanned = 0
        #: Bytes received after the request (already the next protocol's).
        self.remaining = b""
        #: True once the head asked ``Expect: 100-continue`` and its body is awaited:
        #: the client waits for an interim ``100 Continue`` before sending it.
        self.awaits_continue = False

    def feed(self, data: bytes) -> Optional[Request]:
        """Add bytes; returns the request once complete, else ``None``.

        Raises :class:`HttpError` for a request that must be refused.
        """
        self._buffer += data
        if self._request is None:
            # Resume the search where the last one stopped (less the 3 bytes a
            # split terminator may have), so a byte-by-byte sender costs linear time.
            match = _END_OF_HEADERS.search(self._buffer, max(0, self._scanned - 3))
            if match is None:
                self._scanned = len(self._buffer)
                self._check_partial(self._buffer, len(self._buffer))
                return None
            # The answer must not depend on how the bytes were split: apply the
            # checks a piecewise sender would have met first, to everything but
            # the last byte of the head (no prefix shorter than that is complete).
            self._check_partial(self._buffer, match.end() - 1)
            if match.end() > self.max_header_bytes:
                raise HttpError(431, "Request header section too large")
            if match.start() and self._buffer[match.start() - 1] == 0x0D:
                raise HttpError(400, "Bare CR in the header section")
            head = bytes(self._buffer[:match.start()])
            del self._buffer[:match.end()]
            self._request = self._parse_head(head)
            self.awaits_continue = bool(self._body_left) and (
                self._request.headers.get("Expect") or "").lower() == "100-continue"
        if self._body_left:
            if len(self._buffer) < self._body_left:
                return None
            self.awaits_continue = False
            self._request.body = bytes(self._buffer[:self._body_left])
            del self._buffer[:self._body_left]
            self._body_left = 0
        self.remaining = bytes(self._buffer)
        self._buffer = bytearray()
        return self._request

    def _check_partial(self, buffer: bytearray, size: int) -> None:
        """The refusals the first ``size`` bytes of a head not complete yet already earn.

        Each holds for every longer prefix once it holds, and they are tried
        in the order a byte-by-byte sender meets them (the request line is
        never allowed to be longer than the head), so the first that fails is
        the same whichever way the bytes were split.
        """
        if size and buffer[0] in (0x16, 0x80):
            raise HttpError(400, "TLS handshake on a plain-text port")
        end_of_line = buffer.find(b"\n", 0, min(size, self.max_line + 2))
        line_length = size if end_of_line < 0 else end_of_line
        if line_length and buffer[line_length - 1] == 0x0D:
            line_length -= 1  # the CR of CRLF is no part of the line
        if line_length > min(self.max_line, self.max_header_bytes - 1):
            raise HttpError(414, "Request line too long")
        if size > self.max_header_bytes:
            raise HttpError(431, "Request header section too large")

    def _parse_head(self, head: bytes) -> Request:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")]
        if b"\r" in head and any(b"\r" in line for line in lines):
            # RFC 9112 2.2: a CR anywhere but before LF is refused, not guessed at.
            raise HttpError(400, "Bare CR in the header section")
        request_line = lines[0]
        match = _REQUEST_LINE.match(request_line)
        if match is None:
            raise HttpError(400, "Malformed request line")
        method, target, major, minor = match.groups()
        if not _TOKEN.match(method):
            raise HttpError(400, "Malformed method")
        if major != b"1":
            raise HttpError(505, "HTTP version not supported")
        if not (target.startswith(b"/") or target.startswith((b"http://", b"https://")) or target == b"*"):
            raise HttpError(400, "Malformed request target")
        if not _TARGET.match(target):
            # The drafts echo the target into a response header: no controls.
            raise HttpError(400, "Control character in request target")
        if len(lines) - 1 > self.max_headers:
            raise HttpError(431, "Too many header fields")
        headers = Headers()
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                raise HttpError(400, "Obsolete header line folding")
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.match(name):
                raise HttpError(400, "Malformed header field")
            value = value.strip(b" \t")
            if not _FIELD_VALUE.match(value):
                raise HttpError(400, "Control character in header field")
            common = _COMMON_NAMES.get(name)
            if common is not None:
                headers.add(common[0], value.decode("latin-1"), common[1])
            else:
                headers.add(name.decode("ascii"), value.decode("latin-1"))
        host_fields = headers.count("Host")
        if host_fields > 1:
            raise HttpError(400, "More than one Host header")
        if not host_fields and major == b"1" and minor != b"0":
            raise HttpError(400, "HTTP/1.1 request without a Host header")  # RFC 9112 3.2
        if "Transfer-Encoding" in headers:
            raise HttpError(501, "Transfer-Encoding in requests is not supported")
        lengths = headers.get_all("Content-Length")
        if lengths:
            # 20 digits hold any 64-bit size; longer numerals are refused, not converted.
            length = parse_decimal(lengths[0], 20) if len(set(lengths)) == 1 else None
            if length is None:
                raise HttpError(400, "Malformed Content-Length")
            if length > self.max_body:
                raise HttpError(413, "Request body too large")
            self._body_left = length
        return Request(method.decode("ascii"), target.decode("latin-1"),
                       "%s.%s" % (major.decode(), minor.decode()), headers)
