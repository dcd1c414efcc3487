"""HTTP responses as bytes."""

from http import HTTPStatus
from typing import Dict, Iterable, Optional, Tuple, Union

__all__ = ["Response", "error_response"]

HeaderList = Union[Dict[str, str], Iterable[Tuple[str, str]]]


def _reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class Response:
    """A complete HTTP/1.1 response: status, headers and body.

    ``body`` may be ``str`` (sent as UTF-8) or ``bytes``.  ``Content-Length`` is
    added, and ``Connection: close`` unless the headers say otherwise: these
    servers answer one request per connection.
    """

    def __init__(self, status: int = 200, body: Union[str, bytes] = b"",
                 headers: Optional[HeaderList] = None, reason: Optional[str] = None) -> None:
        self.status = status
        self.reason = reason or _reason_phrase(status)
        self.body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        items = headers.items() if isinstance(headers, dict) else (headers or ())
        self.headers = [(str(name), str(value)) for name, value in items]

    def to_bytes(self) -> bytes:
        """The response as it goes on the wire."""
        names = {name.lower() for name, _ in self.headers}
        lines = ["HTTP/1.1 %d %s" % (self.status, self.reason)]
        lines.extend("%s: %s" % (name, value) for name, value in self.headers)
        if "content-length" not in names and self.status >= 200 and self.status not in (204, 304):
            lines.append("Content-Length: %d" % len(self.body))
        if "connection" not in names:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def error_response(status: int, reason: str, headers: Optional[HeaderList] = None) -> Response:
    """A plain-text response that explains why a request was refused."""
    items = list(headers.items() if isinstance(headers, dict) else (headers or ()))
    items.append(("Content-Type", "text/plain; charset=utf-8"))
    return Response(status, reason + "\n", items)
