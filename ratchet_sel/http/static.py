"""StaticFiles: serves the files of one folder over plain HTTP, and nothing outside it.

A request path is turned into a file name segment by segment: ``..`` is
refused, hidden names (``.git``, ``.env``) are not served, and the real path
(symlinks resolved) must still lie inside the folder.  Files are opened
without blocking on FIFOs and must be regular files; their bytes are streamed
as the client reads them, so a large file never sits in memory.
"""

import email.utils
import logging
import mimetypes
import os
import stat
from datetime import timezone
from typing import Any, Dict, List, Optional, Tuple

from ..component import HttpServerInterface
from .response import Response, error_response
from .responder import answer, method_not_allowed
from .server import refuse

__all__ = ["StaticFiles", "content_type_for"]

log = logging.getLogger(__name__)

# The usual web types, so answers do not depend on the host's mime.types.
_CONTENT_TYPES = {
    ".html": "text/html", ".htm": "text/html", ".css": "text/css", ".js": "text/javascript",
    ".mjs": "text/javascript", ".json": "application/json", ".map": "application/json",
    ".txt": "text/plain", ".md": "text/markdown", ".csv": "text/csv", ".xml": "application/xml",
    ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
    ".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
    ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
    ".wasm": "application/wasm", ".pdf": "application/pdf", ".zip": "application/zip",
    ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".wav": "audio/wav", ".mp4": "video/mp4",
    ".webm": "video/webm", ".webmanifest": "application/manifest+json",
}
_TEXTUAL = ("text/", "application/json", "application/xml", "image/svg+xml", "application/manifest+json",
            "text/javascript")

_ALLOWED_METHODS = ("GET", "HEAD")


def content_type_for(name: str) -> str:
    """The Content-Type for a file name; text types say UTF-8; unknown ones are octet-stream."""
    extension = os.path.splitext(name)[1].lower()
    content_type = _CONTENT_TYPES.get(extension) or mimetypes.guess_type(name, strict=False)[0] \
        or "application/octet-stream"
    if content_type.startswith(_TEXTUAL) and "charset" not in content_type:
        content_type += "; charset=utf-8"
    return content_type


class _Refused(Exception):
    """A request answered without a file: an error, or a redirect."""

    def __init__(self, status: int, reason: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


class _FileSender:
    """Writes an open file to a connection, a chunk whenever its write buffer is empty."""

    def __init__(self, conn: Any, fd: int, size: int, chunk_size: int) -> None:
        self.conn = conn
        self.fd: Optional[int] = fd
        self.remaining = size
        self.chunk_size = chunk_size

    def pump(self) -> None:
        """Send chunks until the file is done or the kernel stops taking them (then wait for drain)."""
        conn = self.conn
        while self.remaining > 0 and self.fd is not None:
            if conn.closed:
                self.stop()
                return
            data = os.read(self.fd, min(self.chunk_size, self.remaining))
            if not data:
                # The file shrank after Content-Length was sent: the response
                # cannot be completed, and a short body must not look whole.
                log.warning("%r: file shrank while being sent; dropping the connection", conn)
                self.stop()
                conn.abort()
                return
            self.remaining -= len(data)
            conn.send(data)
            if self.remaining and conn.buffered_amount:
                conn.on_drain = self.pump
                return
        if self.fd is not None:
            self.stop()
            conn.close()

    def stop(self) -> None:
        """Close the file and stop waiting for the connection to drain."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if getattr(self.conn, "on_drain", None) == self.pump:
            self.conn.on_drain = None


class StaticFiles(HttpServerInterface):
    """Serves the files under ``folder`` for ``GET`` and ``HEAD`` requests.

    The URL path after ``prefix`` names the file (route ``"/static/{path:.*}"``
    with ``prefix="/static/"``).  A folder is served by its ``index`` file, and
    a folder's URL without the trailing slash is redirected (301) to it.

    Answers: 200 with Content-Type, Content-Length, Last-Modified and ETag;
    304 for a matching ``If-None-Match`` or ``If-Modified-Since``; 403 for
    ``..`` in the path, a symlink leading out of the folder, an unreadable
    file, or a folder without an index; 404 for missing, hidden (dot-name,
    unless ``allow_hidden``) and non-regular files; 405 for other methods;
    400 for a NUL byte in the path.
    """

    def __init__(self, folder: str, *, prefix: str = "/", index: Optional[str] = "index.html",
                 allow_hidden: bool = False, cache_control: str = "no-cache",
                 chunk_size: int = 256 * 1024) -> None:
        if not os.path.isdir(folder):
            raise ValueError("not a folder: %r" % (folder,))
        self.folder = os.path.realpath(folder)
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.index = index
        self.allow_hidden = allow_hidden
        self.cache_control = cache_control
        self.chunk_size = chunk_size
        self._senders: Dict[Any, _FileSender] = {}

    # -- the component -------------------------------------------------------------
    def on_open(self, conn: Any, request: Any = None) -> None:
        if request is None:
            refuse(conn, 500, "StaticFiles needs HttpServer in front of it")
            return
        if request.method not in _ALLOWED_METHODS:
            method_not_allowed(conn, request, _ALLOWED_METHODS)
            return
        try:
            fd, info, name = self._open(request)
        except _Refused as exc:
            if exc.status >= 400:
                refuse(conn, exc.status, exc.reason, exc.headers)
            else:
                answer(conn, request, error_response(exc.status, exc.reason, exc.headers))
            return
        try:
            self._serve(conn, request, fd, info, name)
        except BaseException:
            os.close(fd)
            raise

    def on_close(self, conn: Any) -> None:
        sender = self._senders.pop(conn, None)
        if sender is not None:
            sender.stop()

    def on_error(self, conn: Any, exc: BaseException) -> None:
        self.on_close(conn)
        conn.abort()

    # -- finding the file --------------------------------------------------------------
    def _relative_parts(self, path: str) -> List[str]:
        if "\0" in path:
            raise _Refused(400, "NUL byte in the path")
        if not (path + "/").startswith(self.prefix):
            raise _Refused(404, "Not Found: %s" % path)
        parts = []
        for segment in path[len(self.prefix):].split("/"):
            if segment in ("", "."):
                continue
            if segment == "..":
                raise _Refused(403, "Forbidden: '..' in the path")
            if "\\" in segment or (segment.startswith(".") and not self.allow_hidden):
                raise _Refused(404, "Not Found: %s" % path)
            parts.append(segment)
        return parts

    def _inside(self, real: str) -> bool:
        return real == self.folder or real.startswith(self.folder.rstrip(os.sep) + os.sep)

    def _open_regular_or_folder(self, path: str, shown: str) -> Tuple[int, os.stat_result, str]:
        real = os.path.realpath(path)
        if not self._inside(real):
            raise _Refused(403, "Forbidden: %s leads outside the folder" % shown)
        try:
            # O_NONBLOCK: opening a FIFO must not stall the loop.
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except (FileNotFoundError, NotADirectoryError):
            raise _Refused(404, "Not Found: %s" % shown) from None
        except PermissionError:
            raise _Refused(403, "Forbidden: %s is not readable" % shown) from None
        except OSError as exc:
            log.warning("cannot open %s: %s", real, exc)
            raise _Refused(404, "Not Found: %s" % shown) from None
        info = os.fstat(fd)
        if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
            os.close(fd)
            raise _Refused(404, "Not Found: %s" % shown)
        return fd, info, real

    def _open(self, request: Any) -> Tuple[int, os.stat_result, str]:
        parts = self._relative_parts(request.path)
        fd, info, real = self._open_regular_or_folder(os.path.join(self.folder, *parts), request.path)
        if stat.S_ISREG(info.st_mode):
            return fd, info, real
        os.close(fd)
        if not request.path.endswith("/"):
            # Relative links in the index page need the trailing slash.
            location = "/" + request.raw_path.lstrip("/") + "/"
            if request.query_string:
                location += "?" + request.query_string
            raise _Refused(301, "Moved Permanently", {"Location": location})
        if not self.index:
            raise _Refused(403, "Forbidden: folder listing is not allowed")
        try:
            fd, info, real = self._open_regular_or_folder(os.path.join(real, self.index), request.path)
        except _Refused as exc:
            if exc.status == 404:
                raise _Refused(403, "Forbidden: folder listing is not allowed") from None
            raise
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise _Refused(403, "Forbidden: folder listing is not allowed")
        return fd, info, real

    # -- answering -----------------------------------------------------------------------
    def _headers(self, info: os.stat_result, name: str) -> List[Tuple[str, str]]:
        return [
            ("Content-Type", content_type_for(name)),
            ("Content-Length", str(info.st_size)),
            ("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True)),
            ("ETag", _etag(info)),
            ("Cache-Control", self.cache_control),
            ("X-Content-Type-Options", "nosniff"),
        ]

    def _serve(self, conn: Any, request: Any, fd: int, info: os.stat_result, name: str) -> None:
        headers = self._headers(info, name)
        if _not_modified(request, info):
            os.close(fd)
            answer(conn, request, Response(304, b"", [h for h in headers if h[0] != "Content-Length"]))
            return
        if request.method == "HEAD" or info.st_size == 0:
            os.close(fd)
            answer(conn, request, Response(200, b"", headers))
            return
        conn.send(Response(200, b"", headers).to_bytes())
        sender = _FileSender(conn, fd, info.st_size, self.chunk_size)
        self._senders[conn] = sender
        sender.pump()


def _etag(info: os.stat_result) -> str:
    return '"%x-%x"' % (info.st_mtime_ns, info.st_size)


def _not_modified(request: Any, info: os.stat_result) -> bool:
    """RFC 9110 13.1: If-None-Match decides when present, else If-Modified-Since."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip() for tag in if_none_match.split(",")]
        # Weak comparison: W/"x" matches "x".
        return "*" in tags or _etag(info) in (tag[2:] if tag.startswith("W/") else tag for tag in tags)
    if_modified_since = request.headers.get("If-Modified-Since")
    if if_modified_since is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False
    if since is None:
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)  # HTTP dates are in GMT
    return int(info.st_mtime) <= since.timestamp()
