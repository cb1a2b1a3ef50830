"""One download: the thin I/O twins ``Fetcher.fetch`` (libcurl) and ``AsyncFetcher.afetch``
(aiohttp) over one set of pure decisions.

Theory of operation: a fetcher sends one request per attempt and streams a 2xx body into
a hidden temporary file beside its final name, opened only when the first byte of a
successful response arrives (a 404 creates no file at all). When the body is complete,
libcurl or aiohttp has already checked it against ``Content-Length``; the file is closed
and renamed onto its final name in one ``os.replace``, so a name under the destination is
never a half-written file. Any failure removes the temporary file. Whether to try again,
and after how long, is :meth:`RetryPolicy.delay_for`'s decision; how an attempt becomes a
:class:`Result` is :func:`conclude`'s. Those are shared by both twins.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import os
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._jobs import Job
from ._policy import Settings, parse_retry_after
from ._results import Attempt, Result, Status

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AsyncFetcher", "Fetcher", "Transfer", "conclude", "preflight"]

_NOT_FOUND = frozenset({404, 410})
_LARGE_READ = 1 << 20


def conclude(job: Job, path: str, history: Sequence[Attempt], seconds: float) -> Result:
    """Turn the attempts at ``job``, saved (or not) at ``path``, into its :class:`Result`."""
    last = history[-1]
    code = last.http_status
    kept = tuple(history)
    if last.succeeded:
        return Result(job.url, path, Status.OK, code, last.nbytes, seconds, len(kept), None, kept)
    not_found = last.kind == "ok" and code in _NOT_FOUND
    status = Status.NOT_FOUND if not_found else Status.ERROR
    error = last.error or _http_error(code)
    return Result(job.url, path, status, code, 0, seconds, len(kept), error, kept)


def preflight(job: Job, path: str, settings: Settings) -> Result | None:
    """The result of ``job`` when no request is needed: a bad URL, or a complete file.

    Files appear under their final names only when complete, so a file already there is
    skipped unless the run overwrites.
    """
    if job.problem is not None:
        return Result(job.url, None, Status.ERROR, None, 0, 0.0, 0, job.problem)
    if not settings.overwrite and os.path.isfile(path):
        return Result(job.url, path, Status.SKIPPED, None, 0, 0.0, 0)
    return None


def _http_error(code: int | None) -> str:
    if code is None:
        return "no response"
    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP {code} {phrase}"


class _Part:
    """A hidden temporary file beside the final name; renamed into place when complete."""

    __slots__ = ("file", "final", "tmp")

    def __init__(self, dest: str, name: str) -> None:
        # Plain strings, not pathlib: this runs once per file and pathlib interns names.
        self.final = os.path.join(dest, name)
        self.tmp = os.path.join(dest, f".{name}.{os.getpid()}-{id(self):x}.part")
        self.file = open(self.tmp, "wb", buffering=0)  # noqa: SIM115 - closed in publish/discard

    def publish(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.final)

    def discard(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


# --------------------------------------------------------------------------- libcurl


def _new_curl(settings: Settings, header: object, write: object) -> Any:
    import pycurl

    curl = pycurl.Curl()
    curl.setopt(pycurl.NOSIGNAL, 1)  # threads: never let libcurl use SIGALRM
    curl.setopt(pycurl.FOLLOWLOCATION, 1)
    curl.setopt(pycurl.MAXREDIRS, 20)
    curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(settings.timeouts.connect * 1000))
    # Idle timeout: fewer than 1 byte/s for `idle` seconds aborts the transfer.
    curl.setopt(pycurl.LOW_SPEED_LIMIT, 1)
    curl.setopt(pycurl.LOW_SPEED_TIME, max(1, round(settings.timeouts.idle)))
    curl.setopt(pycurl.USERAGENT, settings.user_agent)
    curl.setopt(pycurl.HTTPHEADER, ["Accept-Encoding: identity"])
    # 1 MiB reads: 1.7x the throughput of the 16 KiB default on big files, at no cost on
    # small ones (docs/benchmarks.md).
    curl.setopt(pycurl.BUFFERSIZE, 1 << 20)
    curl.setopt(pycurl.HEADERFUNCTION, header)
    curl.setopt(pycurl.WRITEFUNCTION, write)
    return curl


# libcurl error numbers by the kind of failure they are (see Attempt.kind).
_CURL_READ = frozenset({18, 52, 55, 56})  # partial file, empty reply, send/recv error
_CURL_CONNECT = frozenset({5, 6, 7})  # cannot resolve (proxy, host), cannot connect
_CURL_TLS = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})
_CURL_TIMEOUT = 28
_ECONNREFUSED = 111


class Transfer:
    """One libcurl handle and the state of its current attempt.

    :meth:`begin` points the handle at a job; the caller then runs the transfer, with
    ``perform()`` or inside a ``CurlMulti``, and passes libcurl's outcome to :meth:`end`.
    The status line is read as headers arrive, so the body of an error response is read
    (keeping the connection alive) but never written anywhere.
    """

    __slots__ = (
        "_dest",
        "_kept",
        "_name",
        "_part",
        "_retry_after",
        "_status",
        "curl",
        "job",
        "settings",
    )

    def __init__(self, settings: Settings, abort: threading.Event | None = None) -> None:
        self.settings = settings
        self.curl = _new_curl(settings, self._header, self._write)
        if abort is not None:
            # Lets another thread stop a blocking perform(): libcurl calls this at least
            # once a second and aborts the transfer when it returns non-zero.
            import pycurl

            self.curl.setopt(pycurl.NOPROGRESS, 0)
            self.curl.setopt(pycurl.XFERINFOFUNCTION, lambda *_: 1 if abort.is_set() else 0)
        self._dest = os.fspath(settings.dest)
        self.job: Job | None = None
        self._name = ""
        self._part: _Part | None = None
        self._status = 0
        self._kept = 0
        self._retry_after: str | None = None

    def close(self) -> None:
        self.curl.close()

    def path(self, job: Job) -> str:
        return os.path.join(self._dest, job.name)

    def begin(self, job: Job) -> None:
        import pycurl

        self.job = job
        self._name = job.name
        self._part = None
        self._status = 0
        self._kept = 0
        self._retry_after = None
        self.curl.setopt(pycurl.URL, job.url)

    def _header(self, line: bytes) -> None:
        # Every response's status line passes here, redirects included: the last wins.
        if line[:5] == b"HTTP/":
            fields = line.split(None, 2)
            if len(fields) > 1 and fields[1].isdigit():
                self._status = int(fields[1])
                self._retry_after = None
        elif line[:12].lower() == b"retry-after:":
            self._retry_after = line[12:].decode("latin-1").strip()

    def _write(self, data: bytes) -> None:
        if not 200 <= self._status < 300:
            return  # an error page: read and dropped, never saved
        part = self._part
        if part is None:
            part = self._part = _Part(self._dest, self._name)
        part.file.write(data)
        self._kept += len(data)

    def end(self, errno: int = 0, message: str = "") -> Attempt:
        """Finish the attempt: publish the file or clean up, and say what happened."""
        import pycurl

        curl = self.curl
        try:
            code = curl.getinfo(pycurl.RESPONSE_CODE) or None
            if errno:
                kind = _curl_kind(curl, errno)
                return Attempt(code, 0, message or f"libcurl error {errno}", kind)
            if code is None or not 200 <= code < 300:
                retry_after = parse_retry_after(self._retry_after, time.time())
                return Attempt(code, retry_after=retry_after)
            part = self._part or _Part(self._dest, self._name)  # an empty body makes a file
            self._part = None
            part.publish()
            return Attempt(code, self._kept)
        finally:
            if self._part is not None:
                self._part.discard()
                self._part = None


def _curl_kind(curl: Any, errno: int) -> str:
    import pycurl

    if errno in _CURL_READ:
        return "read"
    if errno == _CURL_TIMEOUT:
        return "connect" if curl.getinfo(pycurl.CONNECT_TIME) == 0 else "read"
    if errno in _CURL_CONNECT:
        refused = errno == 7 and curl.getinfo(pycurl.OS_ERRNO) == _ECONNREFUSED
        return "refused" if refused else "connect"
    if errno in _CURL_TLS:
        return "tls"
    return "fatal"


class Fetcher:
    """Blocking downloads over one reused libcurl handle (keeps its connections alive).

    Not thread-safe: engines give each thread its own fetcher.
    """

    def __init__(self, settings: Settings, abort: threading.Event | None = None) -> None:
        import pycurl

        self._error = pycurl.error
        self.settings = settings
        self._abort = abort
        self._transfer = Transfer(settings, abort)

    def close(self) -> None:
        self._transfer.close()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def fetch(self, job: Job) -> Result:
        """Download ``job`` (retrying as the policy allows) and return its result."""
        transfer = self._transfer
        path = transfer.path(job)
        early = preflight(job, path, self.settings)
        if early is not None:
            return early
        start = time.monotonic()
        history: list[Attempt] = []
        while True:
            transfer.begin(job)
            try:
                transfer.curl.perform()
            except self._error as exc:
                history.append(transfer.end(*_curl_error(exc)))
            else:
                history.append(transfer.end())
            delay = self.settings.retry.delay_for(history)
            if delay is None or self._wait_aborted(delay):
                return conclude(job, path, history, time.monotonic() - start)

    def _wait_aborted(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True if the run was aborted meanwhile."""
        if self._abort is None:
            time.sleep(delay)
            return False
        return self._abort.wait(delay)


def _curl_error(exc: Exception) -> tuple[int, str]:
    args = exc.args
    errno = int(args[0]) if args else -1
    return errno, str(args[1]) if len(args) >= 2 and args[1] else f"libcurl error {errno}"


# --------------------------------------------------------------------------- aiohttp


class AsyncFetcher:
    """Async downloads over one aiohttp session; create and use it inside one event loop."""

    def __init__(self, settings: Settings, concurrency: int) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self.settings = settings
        self._dest = os.fspath(settings.dest)
        timeouts = settings.timeouts
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.idle
            ),
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "identity"},
            auto_decompress=False,
            read_bufsize=_LARGE_READ,  # 15-20 % less CPU per GB than the default
        )

    async def aclose(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> AsyncFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def afetch(self, job: Job) -> Result:
        """Download ``job`` (retrying as the policy allows) and return its result."""
        path = os.path.join(self._dest, job.name)
        early = preflight(job, path, self.settings)
        if early is not None:
            return early
        start = time.monotonic()
        history: list[Attempt] = []
        while True:
            history.append(await self._aattempt(job))
            delay = self.settings.retry.delay_for(history)
            if delay is None:
                return conclude(job, path, history, time.monotonic() - start)
            await asyncio.sleep(delay)

    async def _aattempt(self, job: Job) -> Attempt:
        aiohttp = self._aiohttp
        code: int | None = None
        part: _Part | None = None
        try:
            async with self._session.get(job.url, max_redirects=20) as resp:
                code = resp.status
                if not 200 <= code < 300:
                    retry_after = resp.headers.get("Retry-After")
                    return Attempt(code, retry_after=parse_retry_after(retry_after, time.time()))
                part = _Part(self._dest, job.name)
                kept = await _stream(resp, part)
            part.publish()
            part = None
            return Attempt(code, kept)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return Attempt(code, 0, _aiohttp_message(exc), _aiohttp_kind(aiohttp, exc))
        finally:
            if part is not None:
                part.discard()


async def _stream(resp: aiohttp.ClientResponse, part: _Part) -> int:
    length = resp.content_length
    if length is not None and length <= _LARGE_READ:
        body = await resp.read()
        part.file.write(body)
        return len(body)
    kept = 0
    async for chunk in resp.content.iter_chunked(_LARGE_READ):
        part.file.write(chunk)
        kept += len(chunk)
    return kept


def _aiohttp_kind(aiohttp: Any, exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return "tls"
    if isinstance(exc, aiohttp.ClientConnectorError):
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        return "refused" if refused else "connect"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect"
    if isinstance(exc, TimeoutError | aiohttp.ClientPayloadError | aiohttp.ClientOSError):
        return "read"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "read"
    return "fatal"


def _aiohttp_message(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__
