"""Pure HTTP/1.1 pieces of the server: parse a request head, pick a response, render a head.

No sockets and no clock here except ``http_date``; ``_app`` moves the bytes. The server is
deliberately small: no request bodies (a request that announces one is answered and the
connection closed, since skipping the body is not worth the code), one byte range per request
(a list of ranges is ignored and the whole resource sent, as RFC 9110 allows), and no
``Transfer-Encoding`` on requests. Responses are framed by ``Content-Length``; only the fault
routes ask for chunked or close-delimited bodies (``Framing``).
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal

__all__ = [
    "MAX_HEAD",
    "BadRequest",
    "Exchange",
    "Framing",
    "Request",
    "Resource",
    "Unsatisfiable",
    "body_exchange",
    "chunked_length",
    "error_exchange",
    "find_head_end",
    "http_date",
    "parse_range",
    "parse_request",
    "resource_exchange",
    "response_head",
    "validator_fields",
]

MAX_HEAD = 64 * 1024  # request line plus header fields
SMALL_BODY = 64 * 1024  # bodies up to this size are built in memory and sent with the head
CHUNK_SIZE = 64 * 1024  # payload bytes per chunk of a chunked body, unless asked otherwise

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_DIGITS = re.compile(r"[0-9]{1,18}")  # longer numbers are refused, never parsed
# uri-host [":" port], less "," so that two Host fields, joined with ", ", never match.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+;=%]*)(:[0-9]{0,5})?")
_REASONS = {s.value: s.phrase for s in HTTPStatus}


class BadRequest(Exception):
    """The request cannot be answered normally; reply with ``status`` and close."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class Unsatisfiable(Exception):
    """A syntactically valid ``Range`` that selects no byte of the resource."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # still percent-encoded; query and fragment removed
    query: str
    version: tuple[int, int]
    headers: Mapping[str, str]  # lowercase names; repeated fields joined with ", "
    keep_alive: bool
    has_body: bool


@dataclass(frozen=True, slots=True)
class Resource:
    """Something that can be served: metadata plus a way to read any byte range of it."""

    size: int
    etag: str  # quoted, strong
    last_modified: str  # IMF-fixdate
    content_type: str
    read: Callable[[int, int], Generator[bytes, None, None]]  # chunks of bytes [start, stop)


@dataclass(frozen=True, slots=True)
class Exchange:
    """What to send for one request; ``_app`` writes it without further decisions."""

    head: bytes
    body: bytes = b""
    stream: Generator[bytes, None, None] | None = None  # large body, sent after the head
    length: int = 0  # bytes that ``stream`` must produce; fewer means close the connection
    close: bool = False  # close the connection after this exchange
    delay: float = 0.0  # seconds to wait before sending anything
    reset: bool = False  # after head, body and stream (often all empty), reset the connection
    interval: float = 0.0  # seconds to wait before each chunk of ``stream`` (a slow drip)


Framing = Literal["length", "chunked", "close"]
"""How a body's end is marked: ``Content-Length``, chunked coding, or closing the connection."""


_date_cache: tuple[int, str] = (0, "")


def http_date(timestamp: float | None = None) -> str:
    """An IMF-fixdate; the current time is formatted at most once a second."""
    global _date_cache
    if timestamp is not None:
        return email.utils.formatdate(timestamp, usegmt=True)
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True))
    return _date_cache[1]


def find_head_end(buffer: bytes | bytearray) -> int:
    """Index of the blank line ending the head in ``buffer``, or -1 if it is not complete.

    An incomplete head that already holds a bare LF or CR is refused (RFC 9112 allows either
    answer): waiting for a CRLF CRLF that will never come would leave the client hanging.
    ``parse_request`` refuses them in a complete head.
    """
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(buffer) > MAX_HEAD:
            raise BadRequest(431, "request header block larger than 64 KiB")
        stop = len(buffer) - buffer.endswith(b"\r")
        crlf = buffer.count(b"\r\n", 0, stop)
        if buffer.count(b"\n", 0, stop) != crlf or buffer.count(b"\r", 0, stop) != crlf:
            raise BadRequest(400, "bare LF or CR in the request head")
    return end


def parse_request(head: bytes) -> Request:
    """Parse a request head (without its final blank line)."""
    lines = head.split(b"\r\n")
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1:
        raise BadRequest(400, "bare LF or CR in the request head")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    match = _VERSION.fullmatch(version)
    if not _TOKEN.fullmatch(method) or not _TARGET.fullmatch(target) or match is None:
        raise BadRequest(400, "malformed request line")
    if match[1] != b"1":
        raise BadRequest(505, "only HTTP/1.x is supported")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        # A leading space (obsolete line folding) or a space before the colon fails here.
        if not colon or not _TOKEN.fullmatch(name):
            raise BadRequest(400, "malformed header field")
        key = name.decode("ascii").lower()
        text = value.strip(b" \t").decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    path, query = _split_target(target.decode("ascii"))
    minor = int(match[2])
    host = headers.get("host")
    if host is None:
        if minor >= 1:
            raise BadRequest(400, "HTTP/1.1 request without Host")
    elif not _HOST.fullmatch(host):
        raise BadRequest(400, "repeated or malformed Host")
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in tokens and (minor >= 1 or "keep-alive" in tokens)
    length = headers.get("content-length")
    if length is not None and not _DIGITS.fullmatch(length):
        raise BadRequest(400, "bad Content-Length")
    has_body = "transfer-encoding" in headers or (length is not None and int(length) > 0)
    return Request(
        method=method.decode("ascii"),
        path=path,
        query=query,
        version=(1, minor),
        headers=headers,
        keep_alive=keep_alive,
        has_body=has_body,
    )


def _split_target(target: str) -> tuple[str, str]:
    if target.startswith(("http://", "https://")):  # absolute-form, as sent to proxies
        pieces = target.split("/", 3)
        target = "/" + (pieces[3] if len(pieces) > 3 else "")
    elif not target.startswith("/") and target != "*":
        raise BadRequest(400, "bad request target")
    target = target.partition("#")[0]
    path, _, query = target.partition("?")
    return path, query


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """The half-open byte span a ``Range`` header selects; None if the header is to be ignored.

    Raises ``Unsatisfiable`` for a valid single range that selects nothing.
    """
    unit, equals, spec = value.partition("=")
    if not equals or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = (s.strip() for s in spec.partition("-"))
    if not dash:
        return None
    if not first:
        if not _DIGITS.fullmatch(last):
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    if not _DIGITS.fullmatch(first) or (last and not _DIGITS.fullmatch(last)):
        return None
    start = int(first)
    if last and int(last) < start:
        return None  # an invalid range is ignored, not refused
    if start >= size:
        raise Unsatisfiable
    return start, min(int(last) + 1, size) if last else size


def _unchanged_since(header: str, last_modified: str) -> bool:
    """True when ``last_modified`` is not later than the date in ``header`` (a date
    that cannot be read means nothing: the full answer goes out)."""
    import email.utils

    try:
        since = email.utils.parsedate_to_datetime(header.strip())
        modified = email.utils.parsedate_to_datetime(last_modified)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    if since is None or modified is None or since.tzinfo is None:
        return False
    return modified <= since


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match requires."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


def response_head(status: int, fields: str, request: Request | None, *, close: bool) -> bytes:
    """A status line, ``fields`` (each ending in CRLF), Date, Server, Connection, blank line."""
    keep_1_0 = request is not None and request.version == (1, 0)
    return _render(status, fields, close, keep_1_0)


def _render(status: int, fields: str, close: bool, keep_alive_1_0: bool) -> bytes:
    connection = (
        "Connection: close\r\n"
        if close
        else "Connection: keep-alive\r\n"
        if keep_alive_1_0
        else ""
    )
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n{fields}"
        f"Date: {http_date()}\r\nServer: manyget\r\n{connection}\r\n"
    ).encode("latin-1")


def error_exchange(
    status: int,
    request: Request | None = None,
    *,
    close: bool = False,
    extra: str = "",
    delay: float = 0.0,
) -> Exchange:
    """A small text/plain error; ``request`` None means the request could not be parsed."""
    close = close or request is None or not request.keep_alive or request.has_body
    body = f"{status} {_REASONS.get(status, 'Error')}\n".encode()
    payload = b"" if request is not None and request.method == "HEAD" else body
    fields = f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n{extra}"
    keep_1_0 = request is not None and request.version == (1, 0)
    head = _render(status, fields, close, keep_1_0)
    return Exchange(head=head, body=payload, close=close, delay=delay)


def validator_fields(resource: Resource) -> str:
    """ETag, Last-Modified and Accept-Ranges of ``resource``, as header fields."""
    return (
        f"ETag: {resource.etag}\r\nLast-Modified: {resource.last_modified}\r\n"
        "Accept-Ranges: bytes\r\n"
    )


def resource_exchange(
    resource: Resource,
    request: Request,
    *,
    delay: float = 0.0,
    extra: str = "",
    framing: Framing = "length",
    chunk_size: int = CHUNK_SIZE,
) -> Exchange:
    """Answer a GET or HEAD for ``resource``: 200, 206, 304 or 416.

    ``extra`` header fields follow the validators; ``framing`` and ``chunk_size`` are as in
    ``body_exchange``.
    """
    headers = request.headers
    close = not request.keep_alive or request.has_body
    validators = validator_fields(resource)
    inm = headers.get("if-none-match")
    if inm is not None:
        not_modified = _etag_matches(inm, resource.etag)
    else:  # RFC 9110 13.1.3: If-Modified-Since only counts without If-None-Match
        ims = headers.get("if-modified-since")
        not_modified = ims is not None and _unchanged_since(ims, resource.last_modified)
    if not_modified:
        head = response_head(304, validators + extra, request, close=close)
        return Exchange(head=head, close=close, delay=delay)
    size = resource.size
    status, start, stop = 200, 0, size
    fields = f"Content-Type: {resource.content_type}\r\n"
    range_header = headers.get("range")
    if_range = headers.get("if-range")
    if range_header is not None and (
        if_range is None or if_range.strip() in (resource.etag, resource.last_modified)
    ):
        try:
            span = parse_range(range_header, size)
        except Unsatisfiable:
            return error_exchange(
                416,
                request,
                extra=f"Content-Range: bytes */{size}\r\n{validators}{extra}",
                delay=delay,
            )
        if span is not None:
            status, (start, stop) = 206, span
            fields += f"Content-Range: bytes {start}-{stop - 1}/{size}\r\n"
    return body_exchange(
        status,
        request,
        lambda: resource.read(start, stop),
        stop - start,
        fields=fields,
        more_fields=validators + extra,
        framing=framing,
        chunk_size=chunk_size,
        delay=delay,
    )


def body_exchange(
    status: int,
    request: Request,
    read: Callable[[], Generator[bytes, None, None]],
    length: int,
    *,
    fields: str = "",
    more_fields: str = "",
    framing: Framing = "length",
    chunk_size: int = CHUNK_SIZE,
    delay: float = 0.0,
) -> Exchange:
    """Send the ``length`` bytes that ``read()`` yields, framed as asked.

    The head carries ``fields``, then the framing field (``Content-Length`` or
    ``Transfer-Encoding: chunked``; none when the close of the connection ends the body), then
    ``more_fields``. An HTTP/1.0 client cannot read chunks, so it gets a close-delimited body.
    ``read`` is not called for HEAD.
    """
    close = not request.keep_alive or request.has_body
    if framing == "chunked" and request.version < (1, 1):
        framing = "close"
    if framing == "length":
        fields += f"Content-Length: {length}\r\n"
    elif framing == "chunked":
        fields += "Transfer-Encoding: chunked\r\n"
    else:
        close = True
    head = response_head(status, fields + more_fields, request, close=close)
    if request.method == "HEAD" or (length == 0 and framing != "chunked"):
        return Exchange(head=head, close=close, delay=delay)
    chunks = read()
    if framing == "chunked":
        chunks = _chunked(chunks, length, chunk_size)
        length = chunked_length(length, chunk_size)
    if length <= SMALL_BODY:
        body = b"".join(chunks)
        # A file that shrank since it was stat'ed: send what there is and close, so the
        # client sees a truncated body instead of waiting for bytes that will never come.
        return Exchange(head=head, body=body, close=close or len(body) != length, delay=delay)
    return Exchange(head=head, stream=chunks, length=length, close=close, delay=delay)


def chunked_length(length: int, chunk_size: int) -> int:
    """Bytes on the wire for ``length`` payload bytes in chunks of ``chunk_size``."""
    full, rest = divmod(length, chunk_size)
    framed = full * (len(f"{chunk_size:x}") + 4 + chunk_size)
    if rest:
        framed += len(f"{rest:x}") + 4 + rest
    return framed + 5  # the last chunk, "0\r\n\r\n", with no trailer fields


def _chunked(
    chunks: Generator[bytes, None, None], length: int, chunk_size: int
) -> Generator[bytes, None, None]:
    """Chunked coding of ``chunks``: chunks of exactly ``chunk_size`` bytes, the last shorter.

    Frames are gathered into writes of about 64 KiB. If the source yields fewer than
    ``length`` bytes, the last chunk is never sent, so the client sees a truncated body.
    """
    out = bytearray()
    pending = b""
    total = 0
    try:
        for data in chunks:
            total += len(data)
            if pending:
                data, pending = pending + data, b""
            pos = 0
            while len(data) - pos >= chunk_size:
                out += b"%x\r\n" % chunk_size
                out += data[pos : pos + chunk_size]
                out += b"\r\n"
                pos += chunk_size
                if len(out) >= SMALL_BODY:
                    yield bytes(out)
                    out.clear()
            pending = data[pos:]
        if pending:
            out += b"%x\r\n" % len(pending) + pending + b"\r\n"
        if total == length:
            out += b"0\r\n\r\n"
        if out:
            yield bytes(out)
    finally:
        chunks.close()
