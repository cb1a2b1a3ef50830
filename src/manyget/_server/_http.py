"""Pure HTTP/1.1 pieces of the server: parse a request head, pick a response, render a head.

No sockets and no clock here except ``http_date``; ``_app`` moves the bytes. The server is
deliberately small: no request bodies (a request that announces one is answered and the
connection closed, since skipping the body is not worth the code), one byte range per request
(a list of ranges is ignored and the whole resource sent, as RFC 9110 allows), no
``Transfer-Encoding`` in either direction.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from http import HTTPStatus

__all__ = [
    "MAX_HEAD",
    "BadRequest",
    "Exchange",
    "Request",
    "Resource",
    "Unsatisfiable",
    "error_exchange",
    "find_head_end",
    "http_date",
    "parse_range",
    "parse_request",
    "resource_exchange",
]

MAX_HEAD = 64 * 1024  # request line plus header fields
SMALL_BODY = 64 * 1024  # bodies up to this size are built in memory and sent with the head

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_VERSION = re.compile(rb"HTTP/([0-9])\.([0-9])")
_DIGITS = re.compile(r"[0-9]+")
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
    reset: bool = False  # send nothing, reset the connection


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
    """Index of the blank line ending the head in ``buffer``, or -1 if it is not complete."""
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0 and len(buffer) > MAX_HEAD:
        raise BadRequest(431, "request header block larger than 64 KiB")
    return end


def parse_request(head: bytes) -> Request:
    """Parse a request head (without its final blank line)."""
    lines = head.split(b"\r\n")
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


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison, as If-None-Match requires."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


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


def resource_exchange(resource: Resource, request: Request, *, delay: float = 0.0) -> Exchange:
    """Answer a GET or HEAD for ``resource``: 200, 206, 304 or 416."""
    headers = request.headers
    close = not request.keep_alive or request.has_body
    keep_1_0 = request.version == (1, 0)
    validators = (
        f"ETag: {resource.etag}\r\nLast-Modified: {resource.last_modified}\r\n"
        "Accept-Ranges: bytes\r\n"
    )
    inm = headers.get("if-none-match")
    if inm is not None and _etag_matches(inm, resource.etag):
        return Exchange(head=_render(304, validators, close, keep_1_0), close=close, delay=delay)
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
                extra=f"Content-Range: bytes */{size}\r\n{validators}",
                delay=delay,
            )
        if span is not None:
            status, (start, stop) = 206, span
            fields += f"Content-Range: bytes {start}-{stop - 1}/{size}\r\n"
    length = stop - start
    head = _render(status, f"{fields}Content-Length: {length}\r\n{validators}", close, keep_1_0)
    if request.method == "HEAD" or length == 0:
        return Exchange(head=head, close=close, delay=delay)
    chunks = resource.read(start, stop)
    if length <= SMALL_BODY:
        body = b"".join(chunks)
        # A file that shrank since it was stat'ed: send what there is and close, so the
        # client sees a truncated body instead of waiting for bytes that will never come.
        return Exchange(head=head, body=body, close=close or len(body) != length, delay=delay)
    return Exchange(head=head, stream=chunks, length=length, close=close, delay=delay)
