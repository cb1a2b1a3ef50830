"""The options of a run, declared once: the keyword arguments every entry point takes
(:class:`Options`), the small frozen values they group into, and :func:`configure`, the
one place that checks them and turns them into what the engines need.

``download``, ``iter_download``, ``adownload``, ``aiter_download``, :class:`Downloader`,
:class:`AsyncDownloader` and the command line all take these options and nothing else,
so a new option is added here once and reaches every face.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from ._exceptions import UsageError
from ._policy import DEFAULT_USER_AGENT, TLS, Request, RetryPolicy, Settings, Timeouts

if TYPE_CHECKING:
    from concurrent.futures import Executor
    from pathlib import Path

    from ._store import Store

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PER_HOST",
    "Config",
    "Limits",
    "Options",
    "configure",
    "load_checksums",
]

DEFAULT_CONCURRENCY = 64
DEFAULT_PER_HOST = 8  # polite: a server sees at most 8 connections from us


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """How much a run may do: ``concurrency`` downloads at once in all, ``per_host`` to
    one host (``scheme://host:port``), at most ``max_size`` bytes in one body; at most
    ``limit_rate`` bytes a second in all and ``limit_rate_host`` from one host; at most
    ``max_rps`` requests a second to one host."""

    concurrency: int = DEFAULT_CONCURRENCY
    per_host: int = DEFAULT_PER_HOST
    max_size: int | None = None
    limit_rate: float | None = None
    limit_rate_host: float | None = None
    max_rps: float | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.per_host < 1:
            raise UsageError(f"per_host must be >= 1, got {self.per_host}")
        if self.max_size is not None and self.max_size < 0:
            raise UsageError(f"max_size must be >= 0, got {self.max_size}")
        for name in ("limit_rate", "limit_rate_host", "max_rps"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"{name} must be > 0, got {value}")


class Options(TypedDict, total=False):
    """The keyword options of every entry point (see ``download`` for each one's meaning)."""

    engine: str | None
    executor: Executor | None
    concurrency: int | None
    per_host: int | None
    limits: Limits | None
    timeout: float | Timeouts | None
    retries: int | RetryPolicy | None
    overwrite: bool
    max_size: int | None
    limit_rate: float | None
    limit_rate_host: float | None
    max_rps: float | None
    ca_file: str | os.PathLike[str] | None
    allow_downgrade: bool
    content_disposition: bool
    checksums: str | os.PathLike[str] | Mapping[str, str] | None
    headers: Mapping[str, str] | Sequence[str] | None
    user_agent: str | None
    referer: str | None
    user: str | None
    netrc: bool | str | os.PathLike[str] | None
    cookies: str | Mapping[str, str] | None
    cookie_jar: str | os.PathLike[str] | None
    proxy: str | None
    noproxy: str | None
    ca_path: str | os.PathLike[str] | None
    cert: str | os.PathLike[str] | None
    key: str | os.PathLike[str] | None
    insecure: bool
    tls_min: str | None
    http: str | None
    compressed: bool
    staging: str | os.PathLike[str] | None
    storage_options: Mapping[str, Any] | None
    journal: str | os.PathLike[str] | bool | None
    scheduler: str | None
    split: int | Literal["auto"] | None
    min_split_size: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Checked options: the engine to run (or an executor) and how; ``checksums`` maps a
    file's name (its path in the list of sums, and its last segment when that is unique)
    to the SHA-256 it must have."""

    engine: str
    executor: Executor | None
    limits: Limits
    settings: Settings
    checksums: Mapping[str, str] | None = None
    journal: str | None = None  # the journal's path (see ``_journal``), if the run keeps one
    scheduler: str | None = None  # engine dask: the scheduler's address (tcp://HOST:PORT)
    store: Store | None = None  # an object-store destination (settings.dest stages for it)


def configure(dest: Path, options: Options) -> Config:
    """Check ``options`` once and build the run's :class:`Config` for ``dest``."""
    from ._engines import DEFAULT_ENGINE, ENGINES, fixed_concurrency

    unknown = set(options) - set(Options.__annotations__)
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}")
    engine = options.get("engine")
    executor = options.get("executor")
    if engine is not None and executor is not None:
        raise UsageError("give either engine= or executor=, not both")
    engine = engine or DEFAULT_ENGINE
    if engine not in ENGINES:
        from ._exceptions import EngineError

        raise EngineError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    base = options.get("limits") or Limits()
    concurrency = options.get("concurrency")
    per_host = options.get("per_host")
    max_size = options.get("max_size")
    limit_rate = options.get("limit_rate")
    limit_rate_host = options.get("limit_rate_host")
    max_rps = options.get("max_rps")
    limits = dataclasses.replace(
        base,
        concurrency=base.concurrency if concurrency is None else concurrency,
        per_host=base.per_host if per_host is None else per_host,
        max_size=base.max_size if max_size is None else max_size,
        limit_rate=base.limit_rate if limit_rate is None else limit_rate,
        limit_rate_host=base.limit_rate_host if limit_rate_host is None else limit_rate_host,
        max_rps=base.max_rps if max_rps is None else max_rps,
    )
    fixed = None if executor is not None else fixed_concurrency(engine)
    if fixed is not None:
        limits = dataclasses.replace(
            limits, concurrency=fixed, per_host=min(limits.per_host, fixed)
        )
    timeout = options.get("timeout")
    if timeout is None:
        timeouts = Timeouts()
    elif isinstance(timeout, Timeouts):
        timeouts = timeout
    else:
        timeouts = Timeouts(connect=timeout, idle=timeout)
    retries = options.get("retries")
    if retries is None:
        retry = RetryPolicy()
    elif isinstance(retries, RetryPolicy):
        retry = retries
    else:
        retry = RetryPolicy(retries=retries)
    settings = Settings(
        dest=dest,
        timeouts=timeouts,
        retry=retry,
        request=_request(options),
        tls=_tls(options),
        overwrite=options.get("overwrite", False),
        max_size=limits.max_size,
        rate=limits.limit_rate,
        host_rate=limits.limit_rate_host,
        allow_downgrade=options.get("allow_downgrade", False),
        content_disposition=options.get("content_disposition", False),
        split=_split(options.get("split")),
        min_split_size=_min_split_size(options.get("min_split_size")),
    )
    sums = options.get("checksums")
    checksums = None if sums is None else load_checksums(sums)
    return Config(
        engine=engine,
        executor=executor,
        limits=limits,
        settings=settings,
        checksums=checksums,
        journal=_journal(dest, options.get("journal")),
        scheduler=_scheduler(engine, options.get("scheduler")),
    )


def _split(value: int | str | None) -> int:
    """At most how many ranges of one file at once; None or "auto": automatic (one
    stream, its rest split when it is slow: ``_split.AUTO``)."""
    if value is None or value == "auto":
        return 0  # _split.AUTO, without importing it for every run
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"split must be an integer >= 1 or 'auto', got {value!r}")
    return value


MIN_PIECE = 1 << 16  # --min-split-size at least 64 KiB: smaller pieces cost more than they win


def _min_split_size(value: int | None) -> int:
    if value is None:
        return 16 << 20
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_PIECE:
        raise UsageError(f"min_split_size must be at least {MIN_PIECE:,} bytes, got {value!r}")
    return value


def _scheduler(engine: str, address: str | None) -> str | None:
    """``scheduler=``: only for the dask engine."""
    if address is not None and engine != "dask":
        raise UsageError("scheduler= (--scheduler) is for engine='dask' only")
    return address


def _journal(dest: Path, value: str | os.PathLike[str] | bool | None) -> str | None:
    """``journal=``: True for ``DEST/.manyget-journal.sqlite``, or a path."""
    if value is None or value is False:
        return None
    if not isinstance(value, (bool, str, os.PathLike)):
        raise UsageError(f"journal: expected a path or True, got {value!r}")
    from ._journal import journal_path

    return journal_path(dest, value)


def _file(value: object, what: str, *, folder: bool = False) -> str | None:
    """``value`` as a path to a file (or ``folder``) that exists; None for None."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{what}: expected a path, got {value!r}")
    path = str(os.fspath(value))
    if not (os.path.isdir(path) if folder else os.path.isfile(path)):
        raise UsageError(f"{what} {path!r} does not exist")
    return path


def _jar(value: str | os.PathLike[str] | None) -> str | None:
    """Where the cookie jar goes: its folder must exist (checked before any request)."""
    if value is None:
        return None
    path = os.path.abspath(os.fspath(value))
    if not os.path.isdir(os.path.dirname(path)):
        raise UsageError(f"cookie jar {os.fspath(value)!r}: its folder does not exist")
    return path


def parse_header(line: str) -> tuple[str, str]:
    """``Name: value`` as a (name, value) pair; UsageError when it is not a header."""
    name, colon, value = line.partition(":")
    if not colon or not name.strip():
        raise UsageError(f"a header is 'Name: value', got {line!r}")
    return name.strip(), value.strip()


def parse_cookies(text: str) -> tuple[tuple[str, str], ...]:
    """``k=v; k2=v2`` as (name, value) pairs."""
    pairs = []
    for part in text.split(";"):
        name, eq, value = part.strip().partition("=")
        if part.strip() and (not eq or not name.strip()):
            raise UsageError(f"cookies are 'name=value; name2=value2', got {part.strip()!r}")
        if name.strip():
            pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def _request(options: Options) -> Request:
    given = options.get("headers") or ()
    if isinstance(given, Mapping):
        headers = tuple((str(k).strip(), str(v).strip()) for k, v in given.items())
    elif isinstance(given, str):
        headers = (parse_header(given),)
    else:
        headers = tuple(parse_header(line) for line in given)
    cookies = options.get("cookies")
    cookie_pairs: tuple[tuple[str, str], ...] = ()
    cookie_file = None
    if isinstance(cookies, Mapping):
        cookie_pairs = tuple((str(k), str(v)) for k, v in cookies.items())
    elif cookies is not None and "=" in cookies:
        cookie_pairs = parse_cookies(cookies)  # curl's rule: with a '=', it is cookie data
    elif cookies is not None:
        cookie_file = _file(cookies, "cookie file")
    netrc = options.get("netrc")
    netrc_file = None
    if netrc is not None and not isinstance(netrc, bool):
        netrc_file = _file(netrc, "netrc file")
    user_agent = options.get("user_agent")
    http = options.get("http")
    if http == "3":
        check_http3()
    return Request(
        headers=headers,
        user_agent=DEFAULT_USER_AGENT if user_agent is None else user_agent,
        referer=options.get("referer"),
        user=options.get("user"),
        netrc=bool(netrc),
        netrc_file=netrc_file,
        cookies=cookie_pairs,
        cookie_file=cookie_file,
        cookie_jar=_jar(options.get("cookie_jar")),
        proxy=options.get("proxy"),
        noproxy=options.get("noproxy"),
        http="auto" if http is None else http,
        compressed=options.get("compressed", False),
    )


def check_http3(features: int | None = None) -> None:
    """Refuse ``http="3"`` (``--http3``) up front when libcurl was built without HTTP/3.

    Such a libcurl refuses the option on every handle, so each URL would fail alike; one
    usage error before any request says why. ``features`` is libcurl's feature bits
    (``pycurl.version_info()[4]``), given only to check this rule on a libcurl that has
    HTTP/3.
    """
    try:
        import pycurl
    except ImportError:  # the engine's own import says which package is missing
        return
    info = pycurl.version_info()
    if features is None:
        features = int(info[4])
    if not features & pycurl.VERSION_HTTP3:
        raise UsageError(
            f"--http3 (http='3') needs a libcurl built with HTTP/3; libcurl/{info[1]} has none"
        )


def _tls(options: Options) -> TLS:
    return TLS(
        ca_file=_file(options.get("ca_file"), "certificate file"),
        ca_path=_file(options.get("ca_path"), "certificate folder", folder=True),
        cert=_file(options.get("cert"), "client certificate"),
        key=_file(options.get("key"), "client key"),
        insecure=options.get("insecure", False),
        min_version=options.get("tls_min"),
    )


_SUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
_BSD_LINE = re.compile(r"SHA256 \((.+)\) = ([0-9a-fA-F]{64})")


def load_checksums(source: str | os.PathLike[str] | Mapping[str, str]) -> dict[str, str]:
    """Checksums by name from a ``sha256sum`` file (``HEX  NAME``, ``HEX *NAME`` or the
    BSD ``SHA256 (NAME) = HEX``; blank lines and ``#`` comments skipped), or a mapping.

    Each name is kept as written, and also by its last segment when no other entry has
    that last segment, so ``flags/br/br.gif`` checks a file saved as ``br.gif``.
    """
    if isinstance(source, Mapping):
        pairs = [(str(name), str(value).lower()) for name, value in source.items()]
    else:
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read checksums {path!r}: {exc.strerror or exc}") from None
        pairs = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _SUM_LINE.fullmatch(line)
            if match is not None:
                pairs.append((match[2], match[1].lower()))
                continue
            match = _BSD_LINE.fullmatch(line)
            if match is None:
                raise UsageError(f"checksums {path!r} line {number}: not a sha256sum line")
            pairs.append((match[1], match[2].lower()))
    for name, value in pairs:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise UsageError(f"checksum of {name!r} is not 64 hexadecimal digits")
    sums = {name.removeprefix("./"): value for name, value in pairs}
    last: dict[str, list[str]] = {}
    for name in sums:
        last.setdefault(name.rsplit("/", 1)[-1], []).append(name)
    for segment, names in last.items():
        if len(names) == 1 and segment not in sums:
            sums[segment] = sums[names[0]]
    return sums
