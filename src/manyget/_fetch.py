"""One download: the thin I/O twins ``Fetcher.fetch`` (libcurl) and ``AsyncFetcher.afetch``
(aiohttp) over one set of pure decisions.

Theory of operation: a fetcher sends one request per attempt; a :class:`Body` (shared by
both twins) streams a 2xx body into the hidden partial file ``.NAME.part`` beside its
final name, opened and locked only when the first byte of a successful response arrives
(a 404 creates no file at all). When the body is complete, libcurl or aiohttp has already
checked it against ``Content-Length``; the file is closed and renamed onto its final name
in one ``os.replace``, so a name under the destination is never a half-written file. A
failure or cancellation after some bytes keeps the partial file with a sidecar, so the
next attempt or run asks only for the rest (:func:`~manyget._policy.resume_decision`
judges the answer). Whether to try again, and after how long, is
:meth:`RetryPolicy.delay_for`'s decision; how the attempts become a :class:`Result` is
:func:`conclude`'s.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._jobs import Job, disposition_name, url_tag, with_suffix
from ._policy import Saved, Settings, Timeouts, parse_retry_after, resume_decision
from ._results import Attempt, Result, Status

if TYPE_CHECKING:
    import aiohttp

# asyncio, http and json are imported where used: `manyget get` with a libcurl engine never
# needs them, and they are a good part of the start-up time of a short run.

__all__ = ["AsyncFetcher", "Fetcher", "Transfer", "conclude", "preflight"]

_NOT_FOUND = frozenset({404, 410})
Field = Callable[[str], "str | None"]  # a response header by its lower-case name
_LARGE_READ = 1 << 20
_SIDECAR_FROM = 1 << 20  # bodies larger than this get a sidecar as soon as they start


def conclude(job: Job, path: str, history: Sequence[Attempt], seconds: float) -> Result:
    """Turn the attempts at ``job``, saved (or not) at ``path``, into its :class:`Result`."""
    last = history[-1]
    path = last.saved_as or path
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
    # access() answers the usual "not there" without raising; isfile() confirms the rest.
    complete = not settings.overwrite and os.access(path, os.F_OK) and os.path.isfile(path)
    if complete and (job.sha256 is None or _sha256_of(path) == job.sha256):
        return Result(job.url, path, Status.SKIPPED, None, 0, 0.0, 0)
    return None


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _http_error(code: int | None) -> str:
    if code is None:
        return "no response"
    import http

    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP {code} {phrase}"


class Busy(Exception):
    """Another process holds the lock on this partial file."""


class _Part:
    """The hidden partial file ``.NAME.part`` beside the final name, and its sidecar.

    The sidecar ``.NAME.part.json`` remembers the URL and the validators of the response
    the bytes came from, so a later attempt or run can ask for the rest. The partial file
    is locked (``flock``) while written: two processes never interleave bytes in it.

    A sidecar is only ever removed before its partial file (``drop``, ``publish``), so
    manyget itself never leaves a sidecar without a partial file; that is why a fresh
    partial file (``O_EXCL`` succeeded) needs no ``unlink`` of a sidecar when published.
    """

    __slots__ = ("fd", "final", "sidecar", "tmp")

    def __init__(self, prefix: str, name: str) -> None:
        # ``prefix`` is the destination with its trailing separator: plain strings, not
        # pathlib or os.path.join, as this runs once per file.
        self.final = prefix + name
        self.tmp = f"{prefix}.{name}.part"
        self.fd = -1
        self.sidecar = True  # a sidecar may exist: unlink it when done

    @property
    def meta(self) -> str:
        return self.tmp + ".json"

    def saved(self, url: str) -> tuple[int, Saved] | None:
        """The size of a resumable partial file for ``url`` and what its sidecar says."""
        if not os.access(self.tmp, os.F_OK):  # the usual case, answered without an exception
            return None
        import json

        try:
            size = os.stat(self.tmp).st_size
            with open(self.meta, encoding="utf-8") as f:
                data = json.load(f)
            saved = Saved(url, data.get("etag"), data.get("last_modified"), data.get("length"))
        except (OSError, ValueError, AttributeError):
            return None
        if size <= 0 or data.get("url") != url or saved.validator is None:
            return None
        return size, saved

    def open(self, offset: int) -> None:
        """Open for writing at ``offset`` (0: from scratch), holding the lock."""
        # O_NOFOLLOW: a symlink planted in the destination is never written through
        # (O_EXCL never follows one either).
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        if not offset:
            try:
                fd = os.open(self.tmp, flags | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            else:
                # New and empty: nothing to truncate or seek, no sidecar of ours to remove.
                # The lock still matters: another process may open the file now.
                self._lock(fd)
                self.fd = fd
                self.sidecar = False
                return
        fd = os.open(self.tmp, flags, 0o644)
        self._lock(fd)
        if offset and os.fstat(fd).st_size < offset:
            offset = 0  # changed under us: start over rather than leave a hole
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        self.fd = fd

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(self.final) from None

    def write(self, data: bytes) -> None:
        written = os.write(self.fd, data)
        if written < len(data):  # rare for files; loop until everything is stored
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(self.fd, view) :]

    def remember(self, saved: Saved) -> None:
        """Write the sidecar that makes the partial file resumable."""
        record = {
            "url": saved.url,
            "etag": saved.etag,
            "last_modified": saved.last_modified,
            "length": saved.length,
        }
        import json

        self.sidecar = True
        with open(self.meta, "w", encoding="utf-8") as f:
            json.dump(record, f)

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _forget(self) -> None:
        """Remove the sidecar (first: never leave a sidecar without its partial file)."""
        if self.sidecar:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.meta)
            self.sidecar = False

    def publish(self) -> None:
        """Rename the complete file onto its final name, forgetting the sidecar first."""
        self._close()
        self._forget()
        os.replace(self.tmp, self.final)

    def publish_as(self, name: str, url: str) -> str:
        """Publish under a server-chosen ``name`` without ever replacing another file.

        ``os.link`` fails instead of clobbering, so a name already taken (by another
        download of this run, or anything else) gets a suffix from the URL's hash.
        """
        self._close()
        directory = os.path.dirname(self.final)
        for salt in range(100):
            candidate = name if salt == 0 else with_suffix(name, url_tag(url, salt))
            target = os.path.join(directory, candidate)
            try:
                os.link(self.tmp, target)
            except FileExistsError:
                continue
            self._forget()
            os.unlink(self.tmp)
            return target
        raise FileExistsError(f"no free name for {name!r} in {directory}")

    def keep(self, saved: Saved | None) -> None:
        """Stop writing, keeping the bytes for a resume when they can be validated."""
        written = self.fd >= 0 and os.fstat(self.fd).st_size > 0
        self._close()
        if written and saved is not None and saved.validator is not None:
            with contextlib.suppress(OSError):
                self.remember(saved)
        else:
            self.drop()

    def drop(self) -> None:
        self._close()
        self.sidecar = True  # whatever we know, make sure no sidecar outlives the file
        self._forget()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


class Body:
    """Where one attempt's body goes: shared by the libcurl and aiohttp twins.

    ``request_headers`` asks for the rest of a resumable partial file. When the first
    byte of a 2xx body arrives (or a bodiless response ends), ``start`` decides, from
    the status and headers, to append, write from scratch, or give up on the partial file;
    ``finish`` publishes, keeps for a resume, or drops, and says what happened.
    """

    __slots__ = (
        "_disposition",
        "_field",
        "_length",
        "_local",
        "_max",
        "_part",
        "_rename",
        "_saved",
        "_sha256",
        "_verdict",
        "kept",
        "offset",
        "url",
    )

    def __init__(
        self,
        prefix: str,
        job: Job,
        *,
        resume: bool,
        max_size: int | None = None,
        disposition: bool = False,
    ) -> None:
        self.url = job.url
        self._disposition = disposition
        self._rename: str | None = None
        self._sha256 = job.sha256
        self._max = max_size
        self._part = _Part(prefix, job.name)
        found = self._part.saved(job.url) if resume else None
        self.offset: int = 0
        self._saved: Saved | None = None
        if found is not None:
            self.offset, self._saved = found
        self._verdict = ""
        self._local = ""
        self.kept = 0
        self._field: Field | None = None
        self._length: int | None = None

    @property
    def started(self) -> bool:
        """True once ``start`` has decided what to do with the body."""
        return self._verdict != ""

    def request_headers(self) -> list[tuple[str, str]]:
        if not self.offset or self._saved is None or self._saved.validator is None:
            return []
        return [("Range", f"bytes={self.offset}-"), ("If-Range", self._saved.validator)]

    def start(self, status: int, length: int | None, field: Field) -> bool:
        """Prepare for a 2xx body; False means stop this transfer (see ``finish``).

        ``field(name)`` reads a header of the response by its lower-case name: only the
        headers a decision needs are ever looked at.
        """
        self._field = field
        if self._disposition:
            wanted = disposition_name(field("content-disposition"))
            if wanted and wanted != os.path.basename(self._part.final):
                self._rename = wanted
        if status == 200:
            decision = "fresh"  # resume_decision's answer to any 200, without the lookups
        else:
            decision = resume_decision(
                self.offset, self._saved, status, field("content-range"), field("etag")
            )
        if decision not in ("fresh", "append"):
            self._verdict = decision
            return False
        if self._max is not None and length is not None and length > self._max:
            self._verdict = "too big"
            return False
        if decision == "fresh":
            self.offset = 0
            self._length = length
        else:
            self._length = self._saved.length if self._saved else None
        try:
            self._part.open(self.offset)
            self._verdict = "open"
            if decision == "fresh" and (length is None or length > _SIDECAR_FROM):
                # Big bodies get their sidecar now, so even kill -9 leaves them resumable.
                self._part.remember(self._memo())
        except Busy:
            self._verdict = "busy"
            return False
        except OSError as exc:
            self._local_error(exc)
            return False
        return True

    def _local_error(self, exc: OSError) -> None:
        disk_full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        self._verdict = "disk" if disk_full else "local"
        self._local = f"{self._part.final}: {exc.strerror or exc}"

    def write(self, data: bytes) -> bool:
        """Store ``data``; False (nothing stored) once the body passes ``max_size``."""
        if self._max is not None and self.offset + self.kept + len(data) > self._max:
            self._verdict = "too big"
            return False
        try:
            self._part.write(data)
        except OSError as exc:
            kept = self._verdict == "open"
            self._local_error(exc)
            if kept:
                self._part.keep(self._memo())  # the bytes so far stay for a resume
            return False
        self.kept += len(data)
        return True

    def _memo(self) -> Saved:
        field = self._field
        if field is None:
            return Saved(self.url, None, None, self._length)
        return Saved(self.url, field("etag"), field("last-modified"), self._length)

    def finish(
        self,
        status: int | None,
        *,
        error: str | None = None,
        kind: str = "ok",
        retry_after: float | None = None,
    ) -> Attempt:
        """End the attempt; ``error`` and ``kind`` describe a transport failure."""
        verdict = self._verdict
        if verdict == "open" and error is None and status is not None and 200 <= status < 300:
            return self._publish(status, self.offset + self.kept)  # the usual end, first
        part = self._part
        if verdict == "busy":
            return Attempt(status, 0, f"busy: another process is writing {part.final}", "fatal")
        if verdict in ("disk", "local"):
            return Attempt(status, 0, self._local, verdict)
        if verdict == "too big":
            part.drop()
            return Attempt(
                status, 0, f"body larger than --max-size ({self._max:,} bytes)", "fatal"
            )
        if verdict == "restart":
            part.drop()
            message = "the answer does not fit the partial file; starting over"
            return Attempt(status, 0, message, "read")
        if verdict == "complete":
            return self._publish(status, self.offset)
        if error is not None:
            if verdict == "open":
                part.keep(self._memo())
            return Attempt(status, 0, error, kind)
        if status is None or not 200 <= status < 300:
            return Attempt(status, retry_after=retry_after)
        if verdict == "" and not self.start(
            status, 0, _no_field
        ):  # a 2xx with no body at all: the file is empty
            return self.finish(status)
        return self._publish(status, self.offset + self.kept)

    def _publish(self, status: int | None, size: int) -> Attempt:
        part = self._part
        if self._sha256 is not None:
            # Read back through another descriptor while ours still holds the lock: the
            # bytes went out with os.write, unbuffered, so they are all there.
            got = _sha256_of(part.tmp)
            if got != self._sha256:
                part.drop()
                message = f"sha256 mismatch: got {got}, expected {self._sha256}"
                return Attempt(status, 0, message, "read")
        if self._rename is not None:
            saved_as = part.publish_as(self._rename, self.url)
            return Attempt(status, size, complete=True, saved_as=saved_as)
        part.publish()
        return Attempt(status, size, complete=True)

    def abandon(self) -> None:
        """The attempt was cancelled: keep what can be resumed."""
        if self._verdict == "open":
            self._part.keep(self._memo())


# --------------------------------------------------------------------------- libcurl


def read_size(concurrency: int) -> int:
    """libcurl's read buffer for each of ``concurrency`` transfers.

    Big reads make big files fast (fewer, larger ``recv`` calls: 10 MiB reads moved
    4 x 128 MiB about 20 % faster than 1 MiB ones), and cost nothing for small files, as
    only the bytes received are ever touched. The write callback still gets at most
    16 KiB at a time (libcurl's ``CURL_MAX_WRITE_SIZE``), whatever this size. A budget of
    64 MiB across the transfers keeps the worst case (every buffer full at once) bounded.
    """
    return max(_MIN_READ, min(_MAX_READ, _READ_BUDGET // max(1, concurrency)))


_MIN_READ = 1 << 20
_MAX_READ = 10 << 20  # libcurl's maximum; older versions clamp it to theirs
_READ_BUDGET = 64 << 20


def _new_curl(settings: Settings, header: object, write: object, read: int) -> Any:
    import pycurl

    curl = pycurl.Curl()
    curl.setopt(pycurl.NOSIGNAL, 1)  # threads: never let libcurl use SIGALRM
    curl.setopt(pycurl.FOLLOWLOCATION, 1)
    curl.setopt(pycurl.MAXREDIRS, 20)
    curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(settings.timeouts.connect * 1000))
    # Idle timeout: fewer than 1 byte/s for `idle` seconds aborts the transfer.
    curl.setopt(pycurl.LOW_SPEED_LIMIT, max(1, settings.timeouts.min_speed))
    curl.setopt(pycurl.LOW_SPEED_TIME, max(1, round(settings.timeouts.idle)))
    curl.setopt(pycurl.USERAGENT, settings.user_agent)
    curl.setopt(pycurl.HTTPHEADER, _BASE_HEADERS)
    # At least 1 MiB reads: 1.7x the throughput of the 16 KiB default on big files, at
    # no cost on small ones (docs/benchmarks.md).
    curl.setopt(pycurl.BUFFERSIZE, read)
    if settings.ca_file is not None:
        curl.setopt(pycurl.CAINFO, settings.ca_file)
    curl.setopt(pycurl.HEADERFUNCTION, header)
    curl.setopt(pycurl.WRITEFUNCTION, write)
    return curl


# libcurl error numbers by the kind of failure they are (see Attempt.kind).
_CURL_READ = frozenset({18, 52, 55, 56})  # partial file, empty reply, send/recv error
_CURL_CONNECT = frozenset({5, 6, 7})  # cannot resolve (proxy, host), cannot connect
_CURL_TLS = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})
_CURL_TIMEOUT = 28
_CURL_ABORTED = 42  # CURLE_ABORTED_BY_CALLBACK, what a progress callback's abort gave
_ABORT_POLL = 0.5  # seconds: the longest a blocking fetcher goes without looking at abort
_ECONNREFUSED = 111


class Transfer:
    """One libcurl handle and the state of its current attempt.

    :meth:`begin` points the handle at a job; the caller then runs the transfer, with
    ``perform()`` or inside a ``CurlMulti``, and passes libcurl's outcome to :meth:`end`.
    Headers are read as they arrive, so the body of an error response is read (keeping
    the connection alive) but never written anywhere, and the first byte of a 2xx body
    finds the :class:`Body` ready to decide where it goes.
    """

    __slots__ = (
        "_body",
        "_code_info",
        "_disposition",
        "_head",
        "_lines",
        "_low",
        "_max",
        "_prefix",
        "_ranged",
        "_resume",
        "_secure",
        "_status",
        "_url_option",
        "curl",
        "job",
        "settings",
    )

    def __init__(self, settings: Settings, *, read: int = _MIN_READ) -> None:
        self.settings = settings
        # Header lines are collected by list.append, called from C with no Python frame,
        # and read once per response at its first body byte (or at its end).
        self._lines: list[bytes] = []
        self.curl = _new_curl(settings, self._lines.append, self._write, read)
        self._prefix = os.path.join(settings.dest, "")
        self.job: Job | None = None
        self._body: Body | None = None
        self._status = 0
        self._head = b""  # the head of the last response read: status line and fields
        self._low: bytes | None = None  # the same in lower case, made when first needed
        self._ranged = False  # the handle currently sends Range/If-Range headers
        self._secure = False  # the handle currently follows redirects to https only
        self._resume = not settings.overwrite
        self._max = settings.max_size
        import pycurl  # once per handle, not per file

        self._url_option = pycurl.URL
        self._code_info = pycurl.RESPONSE_CODE
        self._disposition = settings.content_disposition

    def close(self) -> None:
        self.curl.close()

    def path(self, job: Job) -> str:
        return self._prefix + job.name

    def begin(self, job: Job) -> None:
        """Point the handle at ``job``, setting only the options that change."""
        self.job = job
        body = self._body = Body(
            self._prefix,
            job,
            resume=self._resume,
            max_size=self._max,
            disposition=self._disposition,
        )
        self._status = 0
        self._lines.clear()
        curl = self.curl
        curl.setopt(self._url_option, job.url)
        secure = job.url[:6].lower() == "https:"
        if secure != self._secure:
            import pycurl

            # From an https URL, redirects may only go to https unless downgrades are allowed.
            only_https = secure and not self.settings.allow_downgrade
            protocols = pycurl.PROTO_HTTPS if only_https else _HTTP_AND_HTTPS
            curl.setopt(pycurl.REDIR_PROTOCOLS, protocols)
            self._secure = secure
        if body.offset or self._ranged:
            import pycurl

            extra = body.request_headers()
            curl.setopt(pycurl.HTTPHEADER, _BASE_HEADERS + [f"{k}: {v}" for k, v in extra])
            self._ranged = bool(extra)

    def _read_head(self) -> int:
        """Status of the last response whose head has arrived; its fields for ``_field``."""
        head = b"".join(self._lines)
        # Redirects and 1xx heads come first: the last status line wins. A field line
        # never holds a newline, so "\nHTTP/" can only start a status line.
        start = head.rfind(b"\nHTTP/") + 1
        if start == 0 and head[:5] != b"HTTP/":
            return 0
        head = head[start:]
        fields = head[: head.find(b"\n")].split(None, 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        self._status, self._head, self._low = status, head, None
        return status

    def _field(self, name: str) -> str | None:
        """The value of header ``name`` (lower case) in the head read last; the last wins."""
        low = self._low
        if low is None:
            low = self._low = self._head.lower()  # ASCII only: offsets stay the same
        key = f"\n{name}:".encode()
        at = low.rfind(key)
        if at < 0:
            return None
        at += len(key)
        end = low.find(b"\n", at)
        return self._head[at : end if end >= 0 else len(low)].decode("latin-1").strip()

    def _write(self, data: bytes) -> int | None:
        body = self._body
        assert body is not None
        if not body.started:
            status = self._status or self._read_head()
            if not 200 <= status < 300:
                return None  # an error page: read and dropped, never saved
            if not body.start(status, _length(self._field("content-length")), self._field):
                return 0  # libcurl stops the transfer: Body.finish says why
        return None if body.write(data) else 0

    def end(self, errno: int = 0, message: str = "") -> Attempt:
        """Finish the attempt: publish the file, keep it for a resume, or drop it."""
        body = self._body
        assert body is not None
        self._body = None
        code = self.curl.getinfo(self._code_info) or None
        if code != self._status:
            self._read_head()  # no body byte arrived for the final response
        if code == 416 and errno == 0:
            body.start(416, None, self._field)
        if errno:
            return body.finish(
                code, error=message or f"libcurl error {errno}", kind=_curl_kind(self.curl, errno)
            )
        if code is not None and code >= 400:
            retry_after = parse_retry_after(self._field("retry-after"), time.time())
            return body.finish(code, retry_after=retry_after)
        return body.finish(code)


_BASE_HEADERS = ["Accept-Encoding: identity"]
_HTTP_AND_HTTPS = (1 << 0) | (1 << 1)  # CURLPROTO_HTTP | CURLPROTO_HTTPS


def _length(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _no_field(name: str) -> None:
    return None


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

    Not thread-safe: engines give each thread its own fetcher. With ``abort``, another
    thread can stop the download in flight by setting the event: the handle then runs
    in a private multi handle driven here, which looks at the event at least every
    ``_ABORT_POLL`` seconds. (libcurl's progress callback could do the same from inside
    ``perform()``, but libcurl calls it about 8 times per small file, and each call
    takes the GIL: with 64 threads that cost more CPU than the downloads.)
    """

    def __init__(self, settings: Settings, abort: threading.Event | None = None) -> None:
        import pycurl

        self._error = pycurl.error
        self._again = pycurl.E_CALL_MULTI_PERFORM
        self.settings = settings
        self._abort = abort
        self._transfer = Transfer(settings)
        self._multi = pycurl.CurlMulti() if abort is not None else None

    def close(self) -> None:
        self._transfer.close()
        if self._multi is not None:
            self._multi.close()

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
            history.append(transfer.end(*self._perform(transfer.curl)))
            delay = self.settings.retry.delay_for(history)
            if delay is None or self._wait_aborted(delay):
                return conclude(job, path, history, time.monotonic() - start)

    def _perform(self, curl: Any) -> tuple[int, str]:
        """Run the transfer; libcurl's error number (0: none) and message."""
        multi = self._multi
        if multi is None:
            try:
                curl.perform()
            except self._error as exc:
                return _curl_error(exc)
            return 0, ""
        assert self._abort is not None
        multi.add_handle(curl)
        try:
            while True:
                while multi.perform()[0] == self._again:
                    pass
                _, ok, failed = multi.info_read()
                if ok:
                    return 0, ""
                if failed:
                    return int(failed[0][1]), str(failed[0][2])
                if self._abort.is_set():
                    return _CURL_ABORTED, "aborted: the run was stopped"
                wanted = multi.timeout()  # milliseconds until libcurl needs a call; -1: none
                multi.select(_ABORT_POLL if wanted < 0 else min(_ABORT_POLL, wanted / 1000))
        finally:
            multi.remove_handle(curl)

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
        self._prefix = os.path.join(settings.dest, "")
        timeouts = settings.timeouts
        ssl_context: Any = True
        if settings.ca_file is not None:
            import ssl

            ssl_context = ssl.create_default_context()
            ssl_context.load_verify_locations(cafile=settings.ca_file)
        tracing = aiohttp.TraceConfig()
        tracing.on_request_redirect.append(_check_redirect)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=concurrency, limit_per_host=concurrency, ssl=ssl_context
            ),
            trace_configs=[tracing],
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
        import asyncio

        path = self._prefix + job.name
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
        import asyncio

        aiohttp = self._aiohttp
        settings = self.settings
        body = Body(
            self._prefix,
            job,
            resume=not settings.overwrite,
            max_size=settings.max_size,
            disposition=settings.content_disposition,
        )
        code: int | None = None
        try:
            extra = dict(body.request_headers()) or None
            guard = _Downgrade(job.url, settings.allow_downgrade)
            async with self._session.get(
                job.url, max_redirects=20, headers=extra, trace_request_ctx=guard
            ) as resp:
                code = resp.status
                headers = resp.headers
                started = code == 416 or 200 <= code < 300
                if started and body.start(code, resp.content_length, headers.get):
                    await _stream(resp, body, settings.timeouts)
                retry_after = parse_retry_after(headers.get("Retry-After"), time.time())
            return body.finish(code, retry_after=retry_after)
        except DowngradeRefused as exc:
            return body.finish(code, error=str(exc), kind="fatal")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            kind = _aiohttp_kind(aiohttp, exc)
            return body.finish(code, error=_aiohttp_message(exc), kind=kind)
        except asyncio.CancelledError:
            body.abandon()
            raise


async def _stream(resp: aiohttp.ClientResponse, body: Body, timeouts: Timeouts) -> None:
    # Chunks, never one read(): bytes that arrived before a failure are kept for a resume.
    # aiohttp's read timeout restarts at every byte, so the minimum speed (libcurl's
    # LOW_SPEED_LIMIT/TIME on the other engines) is checked here, window by window.
    window_start = time.monotonic()
    window_bytes = 0
    async for chunk in resp.content.iter_chunked(_LARGE_READ):
        if not body.write(chunk):
            return
        window_bytes += len(chunk)
        now = time.monotonic()
        if now - window_start >= timeouts.idle:
            if window_bytes < timeouts.min_speed * (now - window_start):
                raise TimeoutError(f"slower than {timeouts.min_speed} B/s for {timeouts.idle:g}s")
            window_start, window_bytes = now, 0


class DowngradeRefused(Exception):
    """A redirect from https to http, refused."""


class _Downgrade:
    """Per-request state for :func:`_check_redirect`."""

    __slots__ = ("allow", "secure")

    def __init__(self, url: str, allow: bool) -> None:
        self.secure = url[:6].lower() == "https:"
        self.allow = allow


async def _check_redirect(session: Any, context: Any, params: Any) -> None:
    """aiohttp calls this before following a redirect: refuse https -> http."""
    guard = context.trace_request_ctx
    if not isinstance(guard, _Downgrade) or guard.allow or not guard.secure:
        return
    import yarl  # aiohttp's own URL type

    location = params.response.headers.get("Location", "")
    target = params.url.join(yarl.URL(location))
    if target.scheme == "http":
        raise DowngradeRefused(f"redirect from https to http refused: {target}")


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
        return f"timed out: {exc}" if str(exc) else "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__
