"""The libcurl transfer every engine drives, and its blocking form for thread pools.

A :class:`Transfer` is one reused libcurl easy handle and the state of its current
attempt: :meth:`Transfer.begin` points it at a job, a driver runs it (inside a
``CurlMulti``, an asyncio-driven multi, or blocking), and :meth:`Transfer.end` turns
libcurl's outcome into an :class:`~manyget.Attempt`. Redirect limits, timeouts, the error
text and the kind of each failure are therefore the same on every engine.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .._jobs import Job, mask_url
from .._log import DEBUG, logger
from .._policy import PORTABLE_HEADERS, TLS, Settings, parse_retry_after
from .._results import Attempt, AttemptKind
from .._split import AUTO, most_ranges
from ._body import Body, SpanBody
from ._part import Folder
from ._rate import Rates

__all__ = [
    "BIG_BODY",
    "CANCELLED",
    "Blocking",
    "Transfer",
    "Transfers",
    "add_cookie_lines",
    "cookie_lines",
    "curl_error",
    "inflight_for",
    "rates_for",
    "read_size",
    "resume_paused",
]


def read_size(concurrency: int) -> int:
    """libcurl's read buffer for each of ``concurrency`` transfers.

    Big reads make big files fast (fewer, larger ``recv`` calls: 10 MiB reads moved
    4 x 128 MiB about 20 % faster than 1 MiB ones), and cost nothing for small files, as
    only the bytes received are ever touched. The write callback still gets at most
    16 KiB at a time (libcurl's ``CURL_MAX_WRITE_SIZE``), whatever this size. A budget of
    64 MiB across the transfers keeps the worst case (every buffer full at once) bounded.
    """
    return max(_MIN_READ, min(_MAX_READ, _READ_BUDGET // max(1, concurrency)))


MAX_REDIRECTS = 20
_MIN_READ = 1 << 20
_MAX_READ = 10 << 20  # libcurl's maximum; older versions clamp it to theirs
_READ_BUDGET = 64 << 20


def _new_curl(settings: Settings, header: object, write: object, read: int) -> Any:
    import pycurl

    curl = pycurl.Curl()
    curl.setopt(pycurl.NOSIGNAL, 1)  # threads: never let libcurl use SIGALRM
    # Redirects are followed by Transfer.end, one hop at a time, so that what a request
    # carries is decided again for each origin it reaches (see Transfer._hop).
    curl.setopt(pycurl.FOLLOWLOCATION, 0)
    curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(settings.timeouts.connect * 1000))
    # Idle timeout: fewer than 1 byte/s for `idle` seconds aborts the transfer.
    curl.setopt(pycurl.LOW_SPEED_LIMIT, max(1, settings.timeouts.min_speed))
    curl.setopt(pycurl.LOW_SPEED_TIME, max(1, round(settings.timeouts.idle)))
    # At least 1 MiB reads: 1.7x the throughput of the 16 KiB default on big files, at
    # no cost on small ones (docs/benchmarks.md).
    curl.setopt(pycurl.BUFFERSIZE, read)
    _request_options(curl, settings)
    _tls_options(curl, settings.tls)
    curl.setopt(pycurl.HEADERFUNCTION, header)
    curl.setopt(pycurl.WRITEFUNCTION, write)
    return curl


_HTTP_VERSION = {"auto": 4, "1.1": 2, "2-prior-knowledge": 5, "3": 30}  # CURL_HTTP_VERSION_*


def _request_options(curl: Any, settings: Settings) -> None:
    import pycurl

    request = settings.request
    curl.setopt(pycurl.USERAGENT, request.user_agent)
    curl.setopt(pycurl.HTTP_VERSION, _HTTP_VERSION[request.http])
    # Headers given for the server never go to a proxy (CONNECT carries its own).
    curl.setopt(pycurl.HEADEROPT, pycurl.HEADER_SEPARATE)
    if request.compressed:
        curl.setopt(pycurl.ACCEPT_ENCODING, "")  # every encoding libcurl decodes
    if request.referer is not None:
        curl.setopt(pycurl.REFERER, request.referer)
    if request.user is not None:
        curl.setopt(pycurl.USERPWD, request.user)
    if request.netrc or request.netrc_file is not None:
        curl.setopt(pycurl.NETRC, pycurl.NETRC_OPTIONAL)
        if request.netrc_file is not None:
            curl.setopt(pycurl.NETRC_FILE, request.netrc_file)
    if request.cookies or request.cookie_file is not None or request.cookie_jar is not None:
        curl.setopt(pycurl.COOKIEFILE, request.cookie_file or "")  # "": the engine, no file
        curl.setopt(pycurl.SHARE, _cookie_share(settings))
    if request.proxy is not None:
        curl.setopt(pycurl.PROXY, request.proxy)
    if request.noproxy is not None:
        curl.setopt(pycurl.NOPROXY, request.noproxy)


def _tls_options(curl: Any, tls: TLS) -> None:
    import pycurl

    if tls.ca_file is not None:
        curl.setopt(pycurl.CAINFO, tls.ca_file)
    if tls.ca_path is not None:
        curl.setopt(pycurl.CAPATH, tls.ca_path)
    if tls.cert is not None:
        curl.setopt(pycurl.SSLCERT, tls.cert)
    if tls.key is not None:
        curl.setopt(pycurl.SSLKEY, tls.key)
    if tls.insecure:
        curl.setopt(pycurl.SSL_VERIFYPEER, 0)
        curl.setopt(pycurl.SSL_VERIFYHOST, 0)
    if tls.min_version is not None:
        version = {"1.2": pycurl.SSLVERSION_TLSv1_2, "1.3": pycurl.SSLVERSION_TLSv1_3}
        curl.setopt(pycurl.SSLVERSION, version[tls.min_version])


_share_lock = threading.Lock()
T = TypeVar("T")


def _of_run(registry: dict[int, T], settings: Settings, make: Callable[[], T]) -> T:
    """The one ``T`` of ``settings``' run in this process: shared by all its transfers
    (threads included), made on first use, forgotten when the settings are."""
    with _share_lock:
        found = registry.get(id(settings))
        if found is None:
            import weakref

            found = registry[id(settings)] = make()
            weakref.finalize(settings, registry.pop, id(settings), None)
        return found


_shares: dict[int, Any] = {}  # id(settings) -> its run's cookie store


def _new_share() -> Any:
    import pycurl

    share = pycurl.CurlShare()
    share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_COOKIE)
    return share


def _cookie_share(settings: Settings) -> Any:
    """The cookie store every handle of one run shares in this process, so a cookie a
    server sets on one connection is sent on the others (pycurl locks it for threads).
    Another run, with other settings, starts from its own options' cookies only."""
    return _of_run(_shares, settings, _new_share)


def cookie_lines(settings: Settings) -> list[str]:
    """Every cookie of the run in this process, as Netscape cookie-file lines."""
    with _share_lock:
        share = _shares.get(id(settings))
    if share is None:
        return []
    import pycurl

    curl = pycurl.Curl()
    try:
        curl.setopt(pycurl.SHARE, share)
        return [str(line) for line in curl.getinfo(pycurl.INFO_COOKIELIST)]
    finally:
        curl.close()


def add_cookie_lines(settings: Settings, lines: list[str]) -> None:
    """Add Netscape cookie-file ``lines`` (another process's) to the run's cookies here."""
    import pycurl

    curl = pycurl.Curl()
    try:
        curl.setopt(pycurl.COOKIEFILE, "")
        curl.setopt(pycurl.SHARE, _cookie_share(settings))
        for line in lines:
            curl.setopt(pycurl.COOKIELIST, line)
    finally:
        curl.close()


BIG_BODY = 8_000_000  # bodies this large get byte progress of their own (bars, reports)


class Inflight:
    """The transfers of one run in this process, and worker processes' reports of theirs:
    how far each body has come, for byte progress (read from another thread: a snapshot
    may be a moment old, never wrong about which file is which)."""

    def __init__(self) -> None:
        import weakref

        self._transfers: weakref.WeakSet[Transfer] = weakref.WeakSet()
        self.remote: dict[int, list[tuple[str, int, int | None]]] = {}  # by worker id
        # Files fetched as ranges: the bytes of their complete ranges, by name (the
        # feeder's, see ``split_progress``); their pieces in flight are added to it.
        self._split: dict[str, tuple[int, int]] = {}

    def add(self, transfer: Transfer) -> None:
        self._transfers.add(transfer)

    def split_progress(self, name: str, have: int, length: int) -> None:
        """A file fetched as ranges has ``have`` bytes of ``length`` complete (-1: gone)."""
        if have < 0:
            self._split.pop(name, None)
        else:
            self._split[name] = (have, length)

    def snapshot(self, least: int) -> list[tuple[str, int, int | None]]:
        """(name, bytes so far, expected size) of each body of ``least`` bytes or more;
        one row for a file fetched as ranges, all its pieces counted."""
        rows = []
        pieces: dict[str, tuple[int, int | None]] = {}
        for transfer in list(self._transfers):
            body, job = transfer._body, transfer.job
            if body is None or job is None or not body.started:
                continue
            if job.span is not None:  # this piece's bytes so far, for its file's row
                got, _ = pieces.get(job.name, (0, None))
                pieces[job.name] = (got + body.kept, body.expected)
                continue
            have, total = body.offset + body.kept, body.expected
            if max(have, total or 0) >= least:
                rows.append((job.name, have, total))
        split = dict(self._split)
        for reported in list(self.remote.values()):
            for name, have, total in reported:
                if name in split:  # a worker's pieces of a file this process splits
                    got, _ = pieces.get(name, (0, None))
                    pieces[name] = (got + have, total)
                else:
                    rows.append((name, have, total))
        for name in pieces.keys() | split.keys():
            done, length = split.get(name, (0, 0))
            got, total = pieces.get(name, (0, None))
            size = length or total
            if max(done + got, size or 0) >= least:
                rows.append((name, done + got, size))
        return rows


_inflight: dict[int, Inflight] = {}


def inflight_for(settings: Settings) -> Inflight:
    """What the transfers of one run in this process are doing."""
    return _of_run(_inflight, settings, Inflight)


_rates: dict[int, Rates] = {}  # id(settings) -> its run's caps in this process


def rates_for(settings: Settings) -> Rates | None:
    """The bandwidth caps every transfer of one run shares in this process, if any."""
    if not settings.rate and not settings.host_rate:
        return None
    return _of_run(
        _rates, settings, lambda: Rates(settings.rate, settings.host_rate, time.monotonic())
    )


def resume_paused(rates: Rates, now: float) -> float | None:
    """Unpause the transfers whose caps allow them again; seconds until the next one
    may go, or None when none waits. Called by a driver, outside libcurl's callbacks."""
    import pycurl

    waiting, rates.paused = rates.paused, []
    soonest: float | None = None
    for transfer in waiting:
        delay = rates.delay(transfer.host, now)
        if delay <= 0:
            transfer.curl.pause(pycurl.PAUSE_CONT)  # may pause it again, at once
        else:
            rates.paused.append(transfer)
            soonest = delay if soonest is None else min(soonest, delay)
    if rates.paused and soonest is None:
        soonest = min(rates.delay(t.host, now) for t in rates.paused)
    return soonest


def _header_name(line: str) -> str:
    return line.partition(":")[0].strip().lower()


def _origin(url: str) -> tuple[str, str, int | None]:
    """scheme, host and port: what a redirect must keep for credentials to follow."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _cookie_lines(url: str, cookies: tuple[tuple[str, str], ...]) -> list[str]:
    """``cookies`` as host-only Netscape cookie lines for ``url``'s host."""
    host = _origin(url)[1]
    return [f"{host}\tFALSE\t/\tFALSE\t0\t{name}\t{value}" for name, value in cookies]


# libcurl error numbers by the kind of failure they are (see Attempt.kind).
_CURL_READ = frozenset({18, 52, 55, 56})  # partial file, empty reply, send/recv error
_CURL_CONNECT = frozenset({5, 6, 7})  # cannot resolve (proxy, host), cannot connect
_CURL_TLS = frozenset({35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98})
_CURL_TIMEOUT = 28
CANCELLED = -1  # not libcurl's: the run stopped the transfer
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
        "__weakref__",
        "_auto_split",
        "_away",
        "_away_headers",
        "_body",
        "_code_info",
        "_cookie_hosts",
        "_disposition",
        "_extra",
        "_folder",
        "_fresh",
        "_head",
        "_here_headers",
        "_hops",
        "_lines",
        "_low",
        "_max",
        "_own",
        "_pause",
        "_prefix",
        "_ranged",
        "_rates",
        "_redirect_info",
        "_resume",
        "_sleep",
        "_split",
        "_status",
        "_url",
        "_url_option",
        "_user_on",
        "_version_info",
        "curl",
        "host",
        "job",
        "settings",
    )

    def __init__(self, settings: Settings, *, read: int = _MIN_READ, sleep: bool = False) -> None:
        """``sleep``: a transfer run blocking on a thread of its own waits out a bandwidth
        cap by sleeping; one among others in a multi handle is paused instead."""
        self.settings = settings
        self._rates = rates_for(settings)
        inflight_for(settings).add(self)
        self._sleep = sleep
        self.host = ""  # the job's host, for its bandwidth cap
        # Header lines are collected by list.append, called from C with no Python frame,
        # and read once per response at its first body byte (or at its end).
        self._lines: list[bytes] = []
        self.curl = _new_curl(settings, self._lines.append, self._write, read)
        self._prefix = os.path.join(settings.dest, "")
        self.job: Job | None = None
        self._body: Body | SpanBody | None = None
        self._status = 0
        self._head = b""  # the head of the last response read: status line and fields
        self._low: bytes | None = None  # the same in lower case, made when first needed
        self._ranged = False  # the handle currently sends Range/If-Range headers
        self._url = ""  # the URL of the current hop
        self._hops = 0  # redirects followed in this attempt
        request = settings.request
        base = [] if request.compressed else _BASE_HEADERS
        given = [(name, f"{name}: {value}") for name, value in request.headers]
        # Request headers for the URL's own origin, and for any other a redirect leads to.
        self._here_headers = base + [line for _, line in given]
        self._away_headers = base + [
            line for name, line in given if name.lower() in PORTABLE_HEADERS
        ]
        self._extra: list[str] = []  # Range and If-Range, for a resume
        self._own: list[str] = []  # the job's own headers (from its list line)
        self._away = False  # the handle is pointed at another origin than its job's
        self._user_on = request.user is not None  # USERPWD is set on the handle
        self._cookie_hosts: set[str] = set()  # hosts given the list's cookies already
        # A compressed answer's ranges count encoded bytes: it is never resumed.
        self._resume = not settings.overwrite and not settings.request.compressed
        # A run into a folder empty at its start has no partial file but those its own
        # attempts keep: a first attempt does not look for one (an access() per file).
        self._fresh = settings.fresh
        # Large bodies as ranges (not compressed ones: their ranges count encoded bytes).
        # Automatic mode streams first, and splits the rest of a slow stream; not under
        # a bandwidth cap, where a stream is slow because it is told to be.
        most = most_ranges(settings.split)
        capped = settings.rate is not None or settings.host_rate is not None
        self._auto_split = settings.split == AUTO and not capped
        self._split = (
            (most, settings.min_split_size)
            if (settings.split > 1 or self._auto_split) and not settings.request.compressed
            else None
        )
        # Files with no name only where a partial file is looked for first (resume).
        self._folder = Folder(self._prefix, unnamed=self._resume)
        self._max = settings.max_size
        import pycurl  # once per handle, not per file

        self.curl.setopt(pycurl.HTTPHEADER, self._here_headers)
        self._url_option = pycurl.URL
        self._code_info = pycurl.RESPONSE_CODE
        self._redirect_info = pycurl.REDIRECT_URL
        self._version_info = pycurl.INFO_HTTP_VERSION
        self._pause: int = pycurl.WRITEFUNC_PAUSE
        self._disposition = settings.content_disposition

    @property
    def ending(self) -> bool:
        """Whether :meth:`end` has begun the attempt's end (and a stop cut it short, if
        the attempt is still counted as running)."""
        return self._body is None

    def close(self) -> None:
        self.curl.close()
        self._folder.close()

    def path(self, job: Job) -> str:
        return self._prefix + job.name

    def begin(self, job: Job) -> None:
        """Point the handle at ``job``, setting only the options that change."""
        self.job = job
        body: Body | SpanBody
        if job.span is None:
            body = Body(
                self._prefix,
                job,
                resume=self._resume and (job.resumable or not self._fresh),
                max_size=self._max,
                disposition=self._disposition,
                folder=self._folder,
                split=self._split,
                auto_split=self._auto_split,
            )
        else:
            body = SpanBody(self._prefix, job)
        self._body = body
        self._status = 0
        self._lines.clear()
        self._hops = 0
        self._url = job.url
        self.host = job.host
        curl = self.curl
        curl.setopt(self._url_option, job.url)
        if body.offset or self._ranged or self._away or job.headers or job.span:
            resume = [f"{k}: {v}" for k, v in body.request_headers()]
            self._send(resume, [f"{k}: {v}" for k, v in job.headers], away=False)
        request = self.settings.request
        if request.user is not None and not self._user_on:
            self._authenticate(True)
        if request.cookies:
            self._give_cookies(job.url)

    def _send(self, resume: list[str], own: list[str], *, away: bool) -> None:
        """Set the request headers: the resume's (Range, If-Range), and those given with
        the run and with this URL (``own``), all of them for the job's own origin or,
        ``away`` from it, only the portable ones."""
        import pycurl

        if away:
            mine = [line for line in own if _header_name(line) in PORTABLE_HEADERS]
            self.curl.setopt(pycurl.HTTPHEADER, self._away_headers + mine + resume)
        else:
            self.curl.setopt(pycurl.HTTPHEADER, self._here_headers + own + resume)
        self._extra = resume
        self._own = own
        self._ranged = bool(resume or own)  # the handle carries more than the run's headers
        self._away = away

    def _authenticate(self, on: bool) -> None:
        import pycurl

        if on:
            self.curl.setopt(pycurl.USERPWD, self.settings.request.user)
        else:
            self.curl.unsetopt(pycurl.USERPWD)
        self._user_on = on

    def _give_cookies(self, url: str) -> None:
        """The list's cookies, for ``url``'s host only (once per handle and host)."""
        import pycurl

        host = _origin(url)[1]
        if host not in self._cookie_hosts:
            self._cookie_hosts.add(host)
            for line in _cookie_lines(url, self.settings.request.cookies):
                self.curl.setopt(pycurl.COOKIELIST, line)

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
        rates = self._rates
        if rates is not None and not self._may_take(rates, len(data)):
            return self._pause  # libcurl keeps the chunk until the driver unpauses us
        body = self._body
        assert body is not None
        if not body.started:
            status = self._status or self._read_head()
            if not 200 <= status < 300:
                return None  # an error page: read and dropped, never saved
            if not body.start(status, _length(self._field("content-length")), self._field):
                return 0  # libcurl stops the transfer: Body.finish says why
        return None if body.write(data) else 0

    def _may_take(self, rates: Rates, size: int) -> bool:
        """Whether the bandwidth caps let a chunk of ``size`` through now; a blocking
        transfer sleeps until they do, another is listed for its driver to resume."""
        now = time.monotonic()
        while not rates.allow(self.host, size, now):
            if not self._sleep:
                rates.paused.append(self)
                return False
            time.sleep(rates.delay(self.host, now))
            now = time.monotonic()
        return True

    def end(self, errno: int = 0, message: str = "") -> Attempt | None:
        """Finish the attempt: publish the file, keep it for a resume, or drop it.

        None when the response was a redirect this handle now follows: the driver runs
        the same handle again, for the next hop of the same attempt.
        """
        body = self._body
        assert body is not None
        curl = self.curl
        code = curl.getinfo(self._code_info) or None
        if code is not None:
            body.http_version = _VERSION_NAMES.get(curl.getinfo(self._version_info))
        if errno == 0 and code is not None and 300 <= code < 400 and code != 304:
            target = self.curl.getinfo(self._redirect_info)
            if target:
                refused = self._hop(str(target))
                if refused is None:
                    return None
                self._body = None
                return body.finish(code, error=refused, kind=AttemptKind.FATAL)
        self._body = None
        if code != self._status:
            self._read_head()  # no body byte arrived for the final response
        if code == 416 and errno == 0:
            body.start(416, None, self._field)
        if errno:
            text = message or f"libcurl error {errno}"
            return body.finish(code, error=text, kind=_curl_kind(curl, errno))
        if code is not None and code >= 400:
            retry_after = parse_retry_after(self._field("retry-after"), time.time())
            return body.finish(code, retry_after=retry_after)
        return body.finish(code)

    def _hop(self, target: str) -> str | None:
        """Point the handle at redirect ``target``; why not, when it may not be followed.

        Up to :data:`MAX_REDIRECTS` hops, to http and https only, and from https to http
        only when downgrades are allowed.
        """
        self._hops += 1
        if self._hops > MAX_REDIRECTS:
            return f"too many redirects (more than {MAX_REDIRECTS})"
        scheme = target.partition(":")[0].lower()
        if scheme not in ("http", "https"):
            return f"redirect to {scheme}: refused (only http and https are followed)"
        downgrade = scheme == "http" and self._url[:6].lower() == "https:"
        if downgrade and not self.settings.allow_downgrade:
            return "redirect from https to http refused (allow it with --allow-downgrade)"
        job = self.job
        assert job is not None
        away = _origin(target) != _origin(job.url)
        if away != self._away:
            self._send(self._extra, self._own, away=away)
        if self._user_on and away:
            self._authenticate(False)  # USER:PASS is for the job's own origin only
        log = logger(DEBUG)
        if log is not None:
            log.debug("redirect %s -> %s%s", mask_url(self._url), mask_url(target),
                      " (another origin: credentials dropped)" if away else "")  # fmt: skip
        self._url = target
        self._status = 0
        self._lines.clear()
        self.curl.setopt(self._url_option, target)
        return None


_BASE_HEADERS = ["Accept-Encoding: identity"]
_VERSION_NAMES = {1: "1.0", 2: "1.1", 3: "2", 30: "3"}  # CURL_HTTP_VERSION_* as said


def _length(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _curl_kind(curl: Any, errno: int) -> AttemptKind:
    import pycurl

    if errno in _CURL_READ:
        return AttemptKind.READ
    if errno == _CURL_TIMEOUT:
        connected = curl.getinfo(pycurl.CONNECT_TIME) != 0
        return AttemptKind.READ if connected else AttemptKind.CONNECT
    if errno in _CURL_CONNECT:
        refused = errno == 7 and curl.getinfo(pycurl.OS_ERRNO) == _ECONNREFUSED
        return AttemptKind.REFUSED if refused else AttemptKind.CONNECT
    if errno in _CURL_TLS:
        return AttemptKind.TLS
    if errno == CANCELLED:
        return AttemptKind.CANCELLED
    return AttemptKind.FATAL


def curl_error(exc: BaseException) -> tuple[int, str]:
    """libcurl's error number and message from a ``pycurl.error``."""
    args = exc.args
    errno = int(args[0]) if args else -1
    return errno, str(args[1]) if len(args) >= 2 and args[1] else f"libcurl error {errno}"


class Blocking:
    """One attempt at a time over one reused libcurl handle, blocking the calling thread
    (its kept-alive connection is reused by the next attempt).

    Not thread-safe: each thread of a pool has its own. With ``abort``, another thread can
    stop the attempt in flight by setting the event: the handle then runs in a private
    multi handle driven here, which looks at the event at least every ``_ABORT_POLL``
    seconds. (libcurl's progress callback could do the same from inside ``perform()``, but
    libcurl calls it about 8 times per small file, and each call takes the GIL: with 64
    threads that cost more CPU than the downloads.)
    """

    def __init__(self, settings: Settings, abort: threading.Event | None = None) -> None:
        import pycurl

        self._error = pycurl.error
        self._again = pycurl.E_CALL_MULTI_PERFORM
        self.settings = settings
        self._abort = abort
        self._transfer = Transfer(settings, sleep=True)
        self._multi = pycurl.CurlMulti() if abort is not None else None

    def close(self) -> None:
        self._transfer.close()
        if self._multi is not None:
            self._multi.close()

    def attempt(self, job: Job) -> Attempt:
        """Make one attempt at ``job``; retries are the caller's :class:`Feeder`'s call."""
        transfer = self._transfer
        transfer.begin(job)
        while True:
            attempt = transfer.end(*self._perform(transfer.curl))
            if attempt is not None:
                return attempt  # else a redirect: the next hop

    def _perform(self, curl: Any) -> tuple[int, str]:
        """Run the transfer; libcurl's error number (0: none) and message."""
        multi = self._multi
        if multi is None:
            try:
                curl.perform()
            except self._error as exc:
                return curl_error(exc)
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


class Transfers:
    """The reused :class:`Transfer` handles of one multi handle, and which job each runs.

    A driver (the ``multi`` loop, the asyncio loop) takes a handle with :meth:`begin`,
    adds the curl handle it returns to its multi handle, and gives it back with
    :meth:`end` once libcurl says it is done (after removing it from the multi handle).
    """

    __slots__ = ("_active", "_handles", "_read", "_settings", "_spare")

    def __init__(self, settings: Settings, read: int) -> None:
        self._settings = settings
        self._read = read
        self._spare: list[Transfer] = []
        self._handles: list[Transfer] = []
        self._active: dict[Any, Transfer] = {}  # curl handle -> its transfer

    def __len__(self) -> int:
        """Attempts running."""
        return len(self._active)

    def begin(self, job: Job) -> Any:
        """Point a free handle at ``job``; the curl handle to add to the multi handle."""
        if self._spare:
            transfer = self._spare.pop()
        else:
            transfer = Transfer(self._settings, read=self._read)
            self._handles.append(transfer)
        transfer.begin(job)
        self._active[transfer.curl] = transfer
        return transfer.curl

    def end(self, curl: Any, errno: int = 0, message: str = "") -> tuple[Job, Attempt] | None:
        """The transfer ``curl`` ran is over (libcurl's outcome given): its job and result,
        or None when it follows a redirect (add ``curl`` to the multi handle again)."""
        transfer = self._active[curl]
        attempt = transfer.end(errno, message)
        if attempt is None:
            return None
        del self._active[curl]
        job = transfer.job
        assert job is not None
        self._spare.append(transfer)
        return job, attempt

    def running(self) -> list[Any]:
        """The curl handles of the attempts running."""
        return list(self._active)

    def close(self) -> list[tuple[Job, Attempt]]:
        """Cancel what still runs (remove it from the multi handle first; partial files
        are kept for a resume) and free every handle; the attempts cancelled."""
        rates = rates_for(self._settings)
        if rates is not None:
            rates.paused.clear()  # what is cancelled is never resumed
        cancelled = []
        for curl in list(self._active):
            if self._active[curl].ending:  # a stop landed in its end: it has no body now
                del self._active[curl]  # (nothing under a final name but whole files)
                continue
            ended = self.end(curl, CANCELLED, "cancelled")
            assert ended is not None  # a cancelled transfer never hops
            cancelled.append(ended)
        for transfer in self._handles:
            transfer.close()
        return cancelled
