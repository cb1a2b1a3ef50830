"""Pure option values and decisions: timeouts, retry policy, run settings.

Each option is a small frozen value validated once when built. Retry state is a value too:
:meth:`RetryPolicy.delay_for` answers "retry after how long, or not at all" from the
history of attempts so far, with no clock and no sleeping, so every fetcher shares one
decision and tests can check it directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from ._exceptions import UsageError
from ._results import Attempt, AttemptKind

if TYPE_CHECKING:
    import random

__all__ = [
    "DEFAULT_USER_AGENT",
    "HTTP_VERSIONS",
    "PORTABLE_HEADERS",
    "RETRY_STATUSES",
    "TLS",
    "TLS_VERSIONS",
    "Request",
    "Resume",
    "RetryPolicy",
    "Saved",
    "Settings",
    "Timeouts",
    "parse_retry_after",
    "resume_decision",
]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Which budget each kind of failure draws on; kinds not listed are never retried.
_BUDGET_OF = {
    AttemptKind.STATUS: "status",
    AttemptKind.CONNECT: "connect",
    AttemptKind.REFUSED: "connect",
    AttemptKind.READ: "read",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """``connect``: seconds to open a connection; ``idle``: the window over which a body
    must average at least ``min_speed`` bytes a second (so a connection with no byte at
    all for ``idle`` seconds, or a server dripping a byte every few seconds, is cut off)."""

    connect: float = 10.0
    idle: float = 30.0
    min_speed: int = 1

    def __post_init__(self) -> None:
        for name in ("connect", "idle"):
            value = getattr(self, name)
            if not value > 0:
                raise UsageError(f"timeout {name} must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When a failed download is tried again, and how long to wait first.

    ``retries`` caps the retries of one URL; ``connect``, ``read`` and ``status`` cap those
    spent on each kind of failure (``None``: only ``retries`` applies). Retried: no
    connection or a connect timeout, a broken, stalled or truncated body, and the statuses
    in ``statuses``. Never retried: other statuses, TLS errors, redirect loops, malformed
    responses, local errors; refused connections only with ``refused=True``. The wait is
    capped exponential backoff with full jitter, or the server's ``Retry-After`` when it
    sent one, never more than ``max_wait``.
    """

    retries: int = 3
    connect: int | None = None
    read: int | None = None
    status: int | None = None
    refused: bool = False
    statuses: frozenset[int] = RETRY_STATUSES
    backoff: float = 0.5
    max_wait: float = 30.0

    def __post_init__(self) -> None:
        for name in ("retries", "connect", "read", "status"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise UsageError(f"{name} retries must be >= 0, got {value}")
        if self.backoff < 0 or self.max_wait < 0:
            raise UsageError("backoff and max_wait must be >= 0")

    def delay_for(
        self, history: Sequence[Attempt], rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before trying again after ``history``, or ``None`` to stop."""
        last = history[-1]
        kind = last.kind
        budget_name = _BUDGET_OF.get(kind)
        if budget_name is None or len(history) > self.retries:
            return None
        if kind is AttemptKind.STATUS and last.http_status not in self.statuses:
            return None
        if kind is AttemptKind.REFUSED and not self.refused:
            return None
        budget: int | None = getattr(self, budget_name)
        if budget is not None:
            spent = sum(1 for a in history if _BUDGET_OF.get(a.kind) == budget_name)
            if spent > budget:
                return None
        if last.retry_after is not None:
            return min(self.max_wait, max(0.0, last.retry_after))
        ceiling = min(self.max_wait, self.backoff * 2 ** (len(history) - 1))
        if rng is None:
            import random  # here, not at the top: most runs never back off

            return random.uniform(0, ceiling)
        return rng.uniform(0, ceiling)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (seconds or HTTP-date), or ``None``.

    ``now`` is the current Unix time; a date in the past means "now" (0 seconds).
    """
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    import email.utils  # here, not at the top: a good part of the start-up time

    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class Saved:
    """What a partial download's sidecar remembers about the response it came from."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    length: int | None = None

    @property
    def validator(self) -> str | None:
        """The value for ``If-Range``: a strong ETag, else Last-Modified."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified


_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)", re.IGNORECASE)


class Resume(StrEnum):
    """:func:`resume_decision`'s answer."""

    FRESH = "fresh"  # write the body from byte 0: the server sent the whole file
    APPEND = "append"  # the body continues the partial file at its offset
    COMPLETE = "complete"  # 416, and the partial file already has every byte
    RESTART = "restart"  # the answer does not fit the partial file: drop it, ask again


def resume_decision(
    offset: int,
    saved: Saved | None,
    status: int,
    content_range: str | None,
    etag: str | None,
) -> Resume:
    """What to do with a response to a request for the rest of a partial file.

    ``offset`` is the partial file's size (0 when the request asked for everything),
    ``saved`` what its sidecar remembers, ``content_range`` and ``etag`` the response's
    headers. A 200 is always :attr:`Resume.FRESH`: a whole file is never appended.
    """
    if status == 200:
        return Resume.FRESH
    match = _CONTENT_RANGE.fullmatch((content_range or "").strip())
    total = int(match.group(3)) if match and match.group(3) != "*" else None
    known = saved.length if saved is not None else None
    if known is not None and total is not None and total != known:
        return Resume.RESTART
    if status == 416:
        complete = offset > 0 and total == offset
        return Resume.COMPLETE if complete else Resume.RESTART
    if status != 206 or offset == 0 or match is None or match.group(1) is None:
        return Resume.RESTART
    if int(match.group(1)) != offset:
        return Resume.RESTART
    if saved is not None and saved.etag and etag and etag != saved.etag:
        return Resume.RESTART
    return Resume.APPEND


DEFAULT_USER_AGENT = f"manyget/{__version__}"
HTTP_VERSIONS = ("auto", "1.1", "2-prior-knowledge", "3")
TLS_VERSIONS = ("1.2", "1.3")
# Request headers that say nothing about who asks: a redirect to another origin keeps
# them. Every other header given with -H may carry a credential (an API key, a session,
# a signature) and is sent to the origin of the URL it was given for only.
PORTABLE_HEADERS = frozenset(
    {"accept", "accept-language", "cache-control", "dnt", "pragma", "user-agent"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """What every request carries beyond a GET of its URL.

    ``headers`` are sent as given (see :data:`PORTABLE_HEADERS` for what a redirect to
    another origin keeps); ``user`` (``USER:PASS``) authenticates to the URL's own
    origin only; ``netrc`` reads credentials by host from ``netrc_file`` (default
    ``~/.netrc``). ``cookies`` (name, value) go to the host of each URL of the list,
    never to a host a redirect leads to; ``cookie_file`` is a Netscape cookie file whose
    cookies go where their domains say; ``cookie_jar`` is where every cookie of the run is
    written (Netscape format, atomically) when it ends. With any of them, cookies a server
    sets are sent back within the run. ``proxy``: ``http://``, ``https://``, ``socks5://`` or
    ``socks5h://`` (else libcurl reads ``http_proxy``, ``https_proxy``, ``all_proxy`` and
    ``no_proxy``); ``noproxy``: hosts reached directly. ``http``: ``auto`` (HTTP/2 over
    TLS when the server offers it, else HTTP/1.1), ``1.1``, ``2-prior-knowledge`` (h2c)
    or ``3``. ``compressed``: ask for gzip, br or zstd and store the decoded body.
    """

    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str = DEFAULT_USER_AGENT
    referer: str | None = None
    user: str | None = field(default=None, repr=False)
    netrc: bool = False
    netrc_file: str | None = None
    cookies: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    cookie_file: str | None = None
    cookie_jar: str | None = None  # where the run's cookies are written when it ends
    proxy: str | None = field(default=None, repr=False)
    noproxy: str | None = None
    http: str = "auto"
    compressed: bool = False

    def __post_init__(self) -> None:
        if self.http not in HTTP_VERSIONS:
            raise UsageError(f"http must be one of {', '.join(HTTP_VERSIONS)}, got {self.http!r}")
        for name, value in self.headers:
            if not name or any(c in name for c in ":\r\n \t") or any(c in value for c in "\r\n\0"):
                raise UsageError(f"bad header {name!r}: a name, then a value on one line")


@dataclass(frozen=True, slots=True, kw_only=True)
class TLS:
    """Which servers to trust and who we are to them.

    ``ca_file`` (a PEM bundle) and ``ca_path`` (a folder of hashed certificates) add
    trusted authorities; ``cert`` and ``key`` are a client certificate (PEM); ``insecure``
    turns certificate checks off; ``min_version`` is ``1.2`` or ``1.3``.
    """

    ca_file: str | None = None
    ca_path: str | None = None
    cert: str | None = None
    key: str | None = None
    insecure: bool = False
    min_version: str | None = None

    def __post_init__(self) -> None:
        if self.min_version is not None and self.min_version not in TLS_VERSIONS:
            raise UsageError(
                f"TLS version must be one of {', '.join(TLS_VERSIONS)}, got {self.min_version!r}"
            )


@dataclass(frozen=True, slots=True, kw_only=True, weakref_slot=True)
class Settings:
    """Everything a fetcher needs, in one picklable value shipped to workers."""

    dest: Path
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    request: Request = field(default_factory=Request)
    tls: TLS = field(default_factory=TLS)
    overwrite: bool = False
    max_size: int | None = None  # bytes; a longer body is cut off while streaming
    allow_downgrade: bool = False  # follow redirects from https to http
    rate: float | None = None  # bytes per second for the whole run (this process's share)
    host_rate: float | None = None  # bytes per second from any one host
    content_disposition: bool = False  # name files as the server's Content-Disposition says
    # The destination held nothing when this run started: a name of the run is there only
    # once the run put it there, so a first attempt needs no look for a complete file.
    fresh: bool = False
    # At most this many ranges of one file at once (1: one stream; 0: automatic, see
    # ``_split``: one stream, its rest split when it is slow).
    split: int = 0
    min_split_size: int = 16 << 20  # pieces of a split file are at least this large
