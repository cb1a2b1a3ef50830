r"""Fault routes: a server that misbehaves on purpose, one way per URL.

They are on in every ``Server`` (the test fixture) and in ``manyget serve --faults``
(``serve(fault_routes=True)``), where ``GET /faults/`` returns this text. Everything here is
deterministic except what depends on the clock (``Retry-After`` dates, waits).

Path parameters: ``{size}`` is a byte count up to 1 GiB (2**30), ``{key}`` 1 to 64 characters
of ``A-Z a-z 0-9 . _ ~ -``; beyond those bounds the answer is 404. Query parameters are
form-decoded (``+`` is a space, ``%XX`` any byte) and checked, a bad value answers 400; flags
take 1, true, yes, on or an empty value, and 0, false, no or off. The query never changes
which route answers. Seconds are decimals (``0.25``), and no wait is longer than 60 s.

Unless a route says otherwise, a body of {size} bytes is the body of ``/bytes/{size}``
(``bytes_chunks(size, 0, size)``), with ``ETag: "bytes-{size in hex}"``, the fixed
``Last-Modified`` of generated content and ``Accept-Ranges: bytes``; one byte range,
``If-Range``, ``If-None-Match`` and 416 work as on ``/bytes/{n}``. Faults in the body apply to
GET only: HEAD gets the honest head. Methods other than GET and HEAD answer 405.

Statuses
  /faults/status/{code}
      That status (200-599 except 204 and 304) with a short text body. ``?retry-after=S`` adds
      ``Retry-After: S`` (whole seconds); ``?retry-after-date=S`` adds ``Retry-After`` as the
      HTTP-date S whole seconds from now. Otherwise the same as ``/status/{code}``.
  /faults/flaky/{key}/{n}/{size}
      Requests for {key} are counted per server (HEAD included, whatever {n} and {size}): the
      first n (n <= 10000) fail, later ones get the {size} bytes. The failure is a ``?code=``
      status (400-599, default 503; ``retry-after`` and ``retry-after-date`` as above), or with
      ``?reset=1`` a TCP reset before any byte, or with ``?truncate=1`` the head and then half
      of the span asked for (Range or not) and a close. A new key starts a new count; the
      server remembers the latest 4096 keys.

Redirects
  Each takes ``?code=`` 301, 302 (default), 303, 307 or 308. ``Location`` is absolute
  (``http://``, or ``https://`` on a TLS server, + the request's Host + path) unless
  ``?relative=1`` (the path only) or ``?relative=2`` (relative to the current path, e.g.
  ``../2/10``); a missing Host gives the path only. The query string is passed on to the next
  hop. Only ``redirect-to`` ever changes the scheme.
  /faults/redirect/{n}/{size}
      A chain of n hops (n <= 1000): ``/faults/redirect/{n}/{size}`` redirects to
      ``/faults/redirect/{n-1}/{size}``, and ``/faults/redirect/0/{size}`` answers the bytes.
  /faults/redirect-loop
      Redirects to itself, forever.
  /faults/redirect-to?url=URL
      Redirects to URL exactly as given (any scheme, host and port; CR or LF answers 400).
      An open redirect: keep a ``--faults`` server on loopback.

Bodies (faults of a GET without a Range header; a ranged request is served honestly)
  /faults/truncate/{size}
      ``Content-Length: {size}``, exactly size // 2 bytes, then the connection closes (FIN).
      The same as ``/truncate/{size}``.
  /faults/reset-mid/{size}
      ``Content-Length: {size}``, exactly size // 2 bytes, then a TCP reset (RST), sent once
      the client has acknowledged those bytes (after at most 2 s).
  /faults/stall/{size}?seconds=S
      Nothing at all for S seconds (default 1), then the {size} bytes. A first-byte timeout.
  /faults/drip/{size}?interval=S&chunk=B
      The head at once, then B bytes (default 1, at most 1 MiB) every S seconds (default 1,
      from 0.001 to 60), the first after one interval; ranges are honoured. The drip stops when
      the client has gone, which the server notices at the next write or the one after.
  /faults/endless
      200 with no Content-Length and ``Connection: close``: the body of ``/bytes/1073741824``,
      as fast as the client reads, ended by the close after 1 GiB at most. ``?chunked=1``
      frames it with ``Transfer-Encoding: chunked`` instead (with a last chunk after 1 GiB).
  /faults/wrong-length/{size}?claim=N
      ``Content-Length: N`` (default size + 1, at most 2**40) over exactly {size} bytes, then
      the connection closes. N > size: the body comes up short. N < size: the body overruns
      by size - N bytes, which a keep-alive client reads where the next response should begin.
      N = size is honest. No ``Connection: close`` field, no ETag, no Accept-Ranges; Range is
      ignored.
  /faults/no-length/{size}
      No Content-Length: ``Connection: close`` and the close ends the body. Ranges honoured
      (206 without Content-Length).
  /faults/chunked/{size}?chunk=B
      Valid ``Transfer-Encoding: chunked``: chunks of exactly B bytes (default 65536, from 1
      to 1 MiB, at most 2**20 chunks), the last shorter, then ``0\r\n\r\n`` with no trailer.
      Ranges honoured. An HTTP/1.0 request gets a close-delimited body instead.

Range misbehaviour
  /faults/ignore-range/{size}
      Advertises ``Accept-Ranges: bytes``, yet answers every request 200 with the whole body.
  /faults/bad-content-range/{size}
      With any Range header (and size > 0): 206, ``Content-Range: bytes 0-{size-1}/{size}``
      and the whole body, whatever was asked (so right only for ``bytes=0-``). Without one, an
      ordinary 200.
  /faults/etag-changes/{key}/{size}
      The resource changes at every request for {key} (HEAD included): request i = 0, 1, ...
      gets ``ETag: "{key}-{size in hex}-{i in hex}"``, the fixed ``Last-Modified`` plus i
      seconds, and the body ``bytes_chunks(size, 0, size, salt=i)`` (request 0: the bytes of
      ``/bytes/{size}``). Range and If-Range work as usual, so If-Range with an earlier
      validator gets 200 and the new body, and a bare Range gets 206 of the new bytes.
  Unsatisfiable ranges need no fault route: ``/bytes/{n}`` with ``Range: bytes={n}-`` answers
  416 with ``Content-Range: bytes */{n}``.

Names
  /faults/disposition?name=NAME&size=N
      N bytes (default 1024) with ``Content-Disposition: attachment; filename="NAME"``, NAME's
      bytes exactly as decoded, unescaped (``../``, ``/etc/passwd``, quotes, control
      characters, bidi overrides, as long as the request allows); NAME with CR or LF answers
      400. ``&star=1`` sends ``attachment; filename*=UTF-8''ENCODED`` instead, NAME's bytes
      percent-encoded except RFC 5987 attr-chars (so any byte goes), preceded by
      ``filename="F"; `` when ``&fallback=F`` is given.

Requests
  /faults/headers
      The request's header fields as text, one ``name: value`` a line (lowercase names):
      shows what a client sends, e.g. whether credentials survive a redirect to another
      origin.

Encodings
  /faults/gzip/{size}
      ``Content-Encoding: gzip`` whatever Accept-Encoding says: a gzip stream of {size} zero
      bytes (so about size / 1000 bytes on the wire), ``gzip_body(size)``. Content-Length,
      ETag and ranges apply to the compressed bytes, which a client that stores raw bytes
      stores exactly.

Raw responses: exactly these bytes whatever the request, then the connection closes (FIN)
  /faults/raw/bad-status-line
      HTTP/1.1 abc Whatever\r\nContent-Length: 2\r\n\r\nok
  /faults/raw/bad-chunked
      HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n
  /faults/raw/garbage
      \x00\xffGARBAGE\x1b[0m this is not HTTP\r\n\r\n
  /faults/raw/close-before-response
      nothing: the connection closes before the first byte
  /faults/raw/header-too-long?size=B
      HTTP/1.1 200 OK\r\nX-Long: {B times "a"}\r\nContent-Length: 2\r\n\r\nok, where B is
      262144 by default and at most 8 MiB (libcurl allows 100 KiB, aiohttp 8 KiB)
"""

from __future__ import annotations

import dataclasses
import functools
import posixpath
import re
import struct
import time
import urllib.parse
import zlib
from collections.abc import Callable, Generator, Iterable
from typing import NoReturn

from ._http import (
    Exchange,
    Request,
    Resource,
    body_exchange,
    error_exchange,
    http_date,
    resource_exchange,
    response_head,
    validator_fields,
)
from ._resources import (
    GENERATED_LAST_MODIFIED,
    GENERATED_TIMESTAMP,
    MAX_SALT,
    bytes_chunks,
    bytes_resource,
)

__all__ = ["MAX_SIZE", "RAW_RESPONSES", "FaultRoutes", "gzip_body", "gzip_chunks"]

MAX_SIZE = 1 << 30
MAX_WAIT = 60.0
MAX_KEYS = 4096
ENDLESS = 1 << 30
RAW_RESPONSES = {
    "bad-status-line": b"HTTP/1.1 abc Whatever\r\nContent-Length: 2\r\n\r\nok",
    "bad-chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n"
    ),
    "garbage": b"\x00\xffGARBAGE\x1b[0m this is not HTTP\r\n\r\n",
    "close-before-response": b"",
}
_LONG_HEADER = 256 * 1024
_MAX_LONG_HEADER = 8 << 20
_MAX_CHUNKS = 1 << 20
_REDIRECTS = (301, 302, 303, 307, 308)
_OCTETS = "Content-Type: application/octet-stream\r\n"
_KEY = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_SIZE = re.compile(r"[0-9]{1,10}")
_INT = re.compile(r"[0-9]{1,13}")
_SECONDS = re.compile(r"[0-9]{1,6}(\.[0-9]{1,9})?")
_TRUE = ("1", "true", "yes", "on", "")
_FALSE = ("0", "false", "no", "off")
# RFC 5987 attr-char, beyond the letters, digits and "-._~" that quote() always keeps.
_ATTR_CHARS = "!#$&+^`|"


class _Refused(Exception):
    """Answer ``status`` (404 for a path out of bounds, 400 for a bad query) instead."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _refuse(status: int) -> NoReturn:
    raise _Refused(status)


class _Query:
    """The form-decoded query string; every byte survives as one latin-1 character."""

    def __init__(self, query: str) -> None:
        self._values = dict(
            urllib.parse.parse_qsl(query, keep_blank_values=True, encoding="latin-1")
        )

    def raw(self, name: str) -> str | None:
        return self._values.get(name)

    def text(self, name: str) -> str | None:
        """The value, refused if it holds CR or LF (it would end a header field early)."""
        value = self._values.get(name)
        if value is not None and ("\r" in value or "\n" in value):
            _refuse(400)
        return value

    def flag(self, name: str) -> bool:
        value = self._values.get(name)
        if value is None or value.lower() in _FALSE:
            return False
        if value.lower() in _TRUE:
            return True
        _refuse(400)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._values.get(name)
        if value is None:
            return default
        if not _INT.fullmatch(value) or not low <= int(value) <= high:
            _refuse(400)
        return int(value)

    def seconds(self, name: str, default: float, low: float = 0.0) -> float:
        value = self._values.get(name)
        if value is None:
            return default
        if not _SECONDS.fullmatch(value) or not low <= float(value) <= MAX_WAIT:
            _refuse(400)
        return float(value)


def _size(text: str, high: int = MAX_SIZE) -> int:
    if not _SIZE.fullmatch(text) or int(text) > high:
        _refuse(404)
    return int(text)


def _key(text: str) -> str:
    if not _KEY.fullmatch(text):
        _refuse(404)
    return text


class _Counters:
    """Requests seen per key, for the latest ``MAX_KEYS`` keys (the event loop's thread only)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def bump(self, key: str) -> int:
        """How many requests for ``key`` came before this one."""
        seen = self._counts.pop(key, 0)
        if len(self._counts) >= MAX_KEYS:
            del self._counts[next(iter(self._counts))]
        self._counts[key] = seen + 1  # re-inserted: the dict's order is the recency order
        return seen


Handler = Callable[[Request, _Query, list[str]], Exchange]


class FaultRoutes:
    """Answer the requests under ``/faults/``; one per server, since some routes count."""

    def __init__(self, *, scheme: str = "http") -> None:
        self._scheme = scheme
        self._flaky = _Counters()
        self._etags = _Counters()
        self._routes: dict[str, tuple[int, Handler]] = {
            "": (0, self._index),
            "status": (1, self._status),
            "flaky": (3, self._flaky_route),
            "redirect": (2, self._redirect),
            "redirect-loop": (0, self._redirect_loop),
            "redirect-to": (0, self._redirect_to),
            "truncate": (1, self._truncate),
            "reset-mid": (1, self._reset_mid),
            "stall": (1, self._stall),
            "drip": (1, self._drip),
            "endless": (0, self._endless),
            "wrong-length": (1, self._wrong_length),
            "no-length": (1, self._no_length),
            "chunked": (1, self._chunked),
            "ignore-range": (1, self._ignore_range),
            "bad-content-range": (1, self._bad_content_range),
            "etag-changes": (2, self._etag_changes),
            "disposition": (0, self._disposition),
            "headers": (0, self._headers),
            "gzip": (1, self._gzip),
            "raw": (1, self._raw),
        }

    def answer(self, request: Request) -> Exchange | None:
        """The answer to a request under ``/faults``, or None for any other path."""
        path = request.path
        if "%" in path:
            path = urllib.parse.unquote(path)
        if path != "/faults" and not path.startswith("/faults/"):
            return None
        name, *args = path[len("/faults/") :].split("/")
        route = self._routes.get(name)
        if route is None or len(args) != route[0]:
            return error_exchange(404, request)
        try:
            return route[1](request, _Query(request.query), args)
        except _Refused as exc:
            return error_exchange(exc.status, request)

    # -- statuses -----------------------------------------------------------------------

    def _index(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        return _text(request, __doc__ or "")

    def _status(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        code = int(args[0]) if re.fullmatch(r"[0-9]{3}", args[0]) else 0
        if not 200 <= code <= 599 or code in (204, 304):
            _refuse(404)
        return error_exchange(code, request, extra=_retry_after(query))

    def _flaky_route(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        key, n, size = _key(args[0]), _size(args[1], 10_000), _size(args[2])
        code = query.integer("code", 503, 400, 599)
        retry_after = _retry_after(query)
        reset, truncate = query.flag("reset"), query.flag("truncate")
        if reset and truncate:
            _refuse(400)
        if self._flaky.bump(key) >= n:
            return resource_exchange(bytes_resource(size), request)
        if reset:
            return Exchange(head=b"", reset=True)
        if truncate:
            return resource_exchange(bytes_resource(size, truncate=True), request)
        return error_exchange(code, request, extra=retry_after)

    # -- redirects ----------------------------------------------------------------------

    def _redirect(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        n, size = _size(args[0], 1000), _size(args[1])
        if n == 0:
            return resource_exchange(bytes_resource(size), request)
        return _redirect_to_path(request, query, f"/faults/redirect/{n - 1}/{size}", self._scheme)

    def _redirect_loop(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        return _redirect_to_path(request, query, "/faults/redirect-loop", self._scheme)

    def _redirect_to(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        url = query.text("url")
        if url is None:
            _refuse(400)
        return error_exchange(_redirect_code(query), request, extra=f"Location: {url}\r\n")

    # -- bodies -------------------------------------------------------------------------

    def _truncate(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = _size(args[0])
        cut = "range" not in request.headers
        return resource_exchange(bytes_resource(size, truncate=cut), request)

    def _reset_mid(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = _size(args[0])
        cut = "range" not in request.headers and request.method == "GET"
        exchange = resource_exchange(bytes_resource(size, truncate=cut), request)
        return dataclasses.replace(exchange, reset=True) if cut else exchange

    def _stall(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = _size(args[0])
        seconds = query.seconds("seconds", 1.0)
        return resource_exchange(bytes_resource(size), request, delay=seconds)

    def _drip(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = _size(args[0])
        interval = query.seconds("interval", 1.0, low=0.001)
        chunk = query.integer("chunk", 1, 1, 1 << 20)
        exchange = resource_exchange(bytes_resource(size), request)
        if exchange.stream is not None:
            source, length = exchange.stream, exchange.length
        elif exchange.body:
            source, length = _once(exchange.body), len(exchange.body)
        else:
            return exchange
        stream = _rechunk(source, chunk)
        return dataclasses.replace(
            exchange, body=b"", stream=stream, length=length, interval=interval
        )

    def _endless(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        return body_exchange(
            200,
            request,
            lambda: bytes_chunks(ENDLESS, 0, ENDLESS),
            ENDLESS,
            fields=_OCTETS,
            framing="chunked" if query.flag("chunked") else "close",
        )

    def _wrong_length(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = _size(args[0])
        claim = query.integer("claim", size + 1, 0, 1 << 40)
        if claim == size:
            return body_exchange(
                200, request, lambda: bytes_chunks(size, 0, size), size, fields=_OCTETS
            )
        fields = f"{_OCTETS}Content-Length: {claim}\r\n"
        close = not request.keep_alive or request.has_body
        head = response_head(200, fields, request, close=close)
        if request.method == "HEAD":
            return Exchange(head=head, close=close)
        return Exchange(head=head, stream=bytes_chunks(size, 0, size), length=size, close=True)

    def _no_length(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        return resource_exchange(bytes_resource(_size(args[0])), request, framing="close")

    def _chunked(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = _size(args[0])
        chunk = query.integer("chunk", 1 << 16, 1, 1 << 20)
        if -(-size // chunk) > _MAX_CHUNKS:
            _refuse(400)
        resource = bytes_resource(size)
        return resource_exchange(resource, request, framing="chunked", chunk_size=chunk)

    # -- range misbehaviour -------------------------------------------------------------

    def _ignore_range(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = _size(args[0])
        ignored = ("range", "if-range")
        headers = {k: v for k, v in request.headers.items() if k not in ignored}
        plain = dataclasses.replace(request, headers=headers)
        return resource_exchange(bytes_resource(size), plain)

    def _bad_content_range(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = _size(args[0])
        resource = bytes_resource(size)
        if "range" not in request.headers or size == 0:
            return resource_exchange(resource, request)
        return body_exchange(
            206,
            request,
            lambda: bytes_chunks(size, 0, size),
            size,
            fields=f"{_OCTETS}Content-Range: bytes 0-{size - 1}/{size}\r\n",
            more_fields=validator_fields(resource),
        )

    def _etag_changes(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        key, size = _key(args[0]), _size(args[1])
        seen = self._etags.bump(key)
        salt = seen % MAX_SALT

        def read(start: int, stop: int) -> Generator[bytes, None, None]:
            return bytes_chunks(size, start, stop, salt)

        resource = Resource(
            size=size,
            etag=f'"{key}-{size:x}-{seen:x}"',
            last_modified=http_date(GENERATED_TIMESTAMP + seen),
            content_type="application/octet-stream",
            read=read,
        )
        return resource_exchange(resource, request)

    # -- names and encodings ------------------------------------------------------------

    def _disposition(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        size = query.integer("size", 1024, 0, MAX_SIZE)
        star = query.flag("star")
        fallback = query.text("fallback")
        # Percent-encoded for filename*, a name may hold CR and LF.
        name = query.raw("name") if star else query.text("name")
        if name is None:
            _refuse(400)
        if star:
            encoded = urllib.parse.quote(name.encode("latin-1"), safe=_ATTR_CHARS)
            first = "" if fallback is None else f'filename="{fallback}"; '
            value = f"attachment; {first}filename*=UTF-8''{encoded}"
        else:
            value = f'attachment; filename="{name}"'
        extra = f"Content-Disposition: {value}\r\n"
        return resource_exchange(bytes_resource(size), request, extra=extra)

    def _headers(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        return _text(request, "".join(f"{k}: {v}\n" for k, v in request.headers.items()))

    def _gzip(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        resource = _gzip_resource(_size(args[0]))
        return resource_exchange(resource, request, extra="Content-Encoding: gzip\r\n")

    def _raw(self, request: Request, query: _Query, args: list[str]) -> Exchange:
        kind = args[0]
        if kind == "header-too-long":
            size = query.integer("size", _LONG_HEADER, 0, _MAX_LONG_HEADER)
            # Streamed like any large body, so a client that does not read holds no 8 MiB.
            return Exchange(
                head=b"HTTP/1.1 200 OK\r\nX-Long: ",
                stream=_long_header(size),
                length=size + 25,
                close=True,
            )
        elif kind in RAW_RESPONSES:
            data = RAW_RESPONSES[kind]
        else:
            _refuse(404)
        return Exchange(head=data, close=True)


# --------------------------------------------------------------------------- helpers


def _long_header(size: int) -> Generator[bytes, None, None]:
    """``size`` bytes of "a", then the end of the header-too-long response."""
    block = b"a" * min(size, 64 * 1024)
    left = size
    while left > len(block):
        yield block
        left -= len(block)
    yield block[:left] + b"\r\nContent-Length: 2\r\n\r\nok"


def _once(data: bytes) -> Generator[bytes, None, None]:
    yield data


def _text(request: Request, text: str) -> Exchange:
    """A 200 with ``text`` as a plain-text body."""
    data = text.encode()
    return body_exchange(
        200,
        request,
        lambda: _once(data),
        len(data),
        fields="Content-Type: text/plain; charset=utf-8\r\n",
    )


def _rechunk(chunks: Iterable[bytes], size: int) -> Generator[bytes, None, None]:
    """The same bytes in pieces of ``size`` (a piece never spans two source chunks)."""
    try:
        for data in chunks:
            for pos in range(0, len(data), size):
                yield data[pos : pos + size]
    finally:
        if isinstance(chunks, Generator):
            chunks.close()


def _retry_after(query: _Query) -> str:
    seconds = query.integer("retry-after", -1, 0, 999_999_999)
    ahead = query.integer("retry-after-date", -1, 0, 999_999_999)
    if seconds >= 0 and ahead >= 0:
        _refuse(400)
    if seconds >= 0:
        return f"Retry-After: {seconds}\r\n"
    if ahead >= 0:
        return f"Retry-After: {http_date(time.time() + ahead)}\r\n"
    return ""


def _redirect_code(query: _Query) -> int:
    code = query.integer("code", 302, 300, 399)
    if code not in _REDIRECTS:
        _refuse(400)
    return code


def _redirect_to_path(request: Request, query: _Query, path: str, scheme: str) -> Exchange:
    code = _redirect_code(query)
    relative = query.integer("relative", 0, 0, 2)
    host = request.headers.get("host", "")
    target = path + (f"?{request.query}" if request.query else "")
    if relative == 2:
        base = posixpath.dirname(urllib.parse.unquote(request.path))
        location = posixpath.relpath(path, base) + target[len(path) :]
    elif relative == 1 or not re.fullmatch(r"[A-Za-z0-9.:\[\]-]+", host):
        location = target
    else:
        location = f"{scheme}://{host}{target}"
    return error_exchange(code, request, extra=f"Location: {location}\r\n")


# --------------------------------------------------------------------------- gzip bomb
#
# A gzip stream of n zero bytes, built without compressing n bytes: deflate a MiB of zeros
# once and end it with a full flush, which byte-aligns the output and forgets the history,
# so the same block can be repeated; a fresh compressor deflates the remainder and finishes.
# The CRC-32 of n zeros comes from polynomial arithmetic, as zlib's crc32_combine does it.

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"  # no name, no mtime, best, unknown OS
_ZEROS_PER_BLOCK = 1 << 20
_CRC_POLY = 0xEDB88320
_CRC_ONE = 0x80000000  # the polynomial 1, bits reflected as CRC-32 keeps them


@functools.cache
def _zeros_block() -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflate.compress(bytes(_ZEROS_PER_BLOCK)) + deflate.flush(zlib.Z_FULL_FLUSH)


def _crc_multiply(a: int, b: int) -> int:
    """a * b modulo the CRC-32 polynomial (zlib's multmodp)."""
    product, mask = 0, _CRC_ONE
    while mask:
        if a & mask:
            product ^= b
        b = (b >> 1) ^ _CRC_POLY if b & 1 else b >> 1
        mask >>= 1
    return product


def zeros_crc32(n: int) -> int:
    """``zlib.crc32(bytes(n))`` in O(log n): the register times x**(8n), conditioned."""
    power, square = _CRC_ONE, _CRC_ONE >> 8  # x**0 and x**8
    while n:
        if n & 1:
            power = _crc_multiply(power, square)
        square = _crc_multiply(square, square)
        n >>= 1
    return _crc_multiply(power, 0xFFFFFFFF) ^ 0xFFFFFFFF


@functools.lru_cache(maxsize=16)
def _gzip_tail(size: int) -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = deflate.compress(bytes(size % _ZEROS_PER_BLOCK)) + deflate.flush()
    return tail + struct.pack("<II", zeros_crc32(size), size & 0xFFFFFFFF)


def _gzip_length(size: int) -> int:
    blocks = size // _ZEROS_PER_BLOCK
    return len(_GZIP_HEADER) + blocks * len(_zeros_block()) + len(_gzip_tail(size))


def gzip_chunks(size: int, start: int, stop: int) -> Generator[bytes, None, None]:
    """Bytes [start, stop) of ``gzip_body(size)``, in chunks of about 64 KiB at most."""
    block = _zeros_block()
    blocks = size // _ZEROS_PER_BLOCK
    per_chunk = max(1, (64 * 1024) // len(block))
    pieces: list[tuple[int, bytes]] = [(1, _GZIP_HEADER)]
    pieces += [(min(per_chunk, blocks - i), block) for i in range(0, blocks, per_chunk)]
    pieces.append((1, _gzip_tail(size)))
    pos = 0
    for count, piece in pieces:
        end = pos + count * len(piece)
        if end > start and pos < stop:
            data = piece * count
            yield data[max(start - pos, 0) : min(stop, end) - pos]
        pos = end
        if pos >= stop:
            return


def gzip_body(size: int) -> bytes:
    """The whole gzip stream that ``/faults/gzip/{size}`` sends: ``size`` zero bytes."""
    return b"".join(gzip_chunks(size, 0, _gzip_length(size)))


@functools.lru_cache(maxsize=16)
def _gzip_resource(size: int) -> Resource:
    def read(start: int, stop: int) -> Generator[bytes, None, None]:
        return gzip_chunks(size, start, stop)

    length = _gzip_length(size)
    return Resource(
        length, f'"gzip-{size:x}"', GENERATED_LAST_MODIFIED, "application/octet-stream", read
    )
