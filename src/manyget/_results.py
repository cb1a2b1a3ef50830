"""Pure result types: what one download produced and what a run added up to.

Nothing here does I/O or reads a clock; engines create :class:`Result` values and a
:class:`Tally` folds them into a :class:`Report`, in constant memory unless asked to
keep every result.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._frozen import quick_init

if TYPE_CHECKING:
    from ._jobs import Job

_NOT_FOUND = frozenset({404, 410})

__all__ = [
    "Attempt",
    "AttemptKind",
    "Report",
    "Result",
    "Status",
    "Tally",
    "conclude",
    "http_error",
    "human_bytes",
]


class Status(enum.Enum):
    """How one URL ended, like the book's ``DownloadStatus``."""

    OK = "ok"
    NOT_FOUND = "not_found"
    ERROR = "error"
    SKIPPED = "skipped"

    # Members hash by identity, in C: Enum's own __hash__ is a Python call, and every
    # result is counted by its status.
    __hash__ = object.__hash__

    @property
    def succeeded(self) -> bool:
        """True when the file is complete under ``dest`` after the run."""
        return self in _SUCCEEDED


_SUCCEEDED = frozenset((Status.OK, Status.SKIPPED))


class AttemptKind(enum.StrEnum):
    """How one request ended: a usable response, or the kind of failure (which decides
    whether, and on which budget, it is retried)."""

    OK = "ok"  # a 1xx-3xx response, or a 2xx body stored
    STATUS = "status"  # a response with an error status (4xx, 5xx)
    REFUSED = "refused"  # the connection was refused
    CONNECT = "connect"  # no connection: name not resolved, unreachable, connect timeout
    READ = "read"  # the connection broke, stalled, or the body was cut short
    TLS = "tls"  # the TLS handshake or the certificate failed
    FATAL = "fatal"  # never worth retrying: redirect loop, malformed response, busy file
    DISK = "disk"  # the disk is full (the run stops)
    LOCAL = "local"  # another local write error
    CANCELLED = "cancelled"  # the run stopped while the request was in flight
    # The file is fetched as ranges (a first answer: length and validator known), or, from
    # a piece, the ranges stopped working and the file starts over as one stream.
    SPLIT = "split"


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """What one request produced.

    ``kind`` says how it ended (:class:`AttemptKind`). ``nbytes`` is the size of the file
    it published, ``received`` the body bytes that crossed the wire (less than ``nbytes``
    for a resumed file), ``kept`` the bytes left in a partial file for a resume.
    ``retry_after`` is the server's ``Retry-After`` in seconds, when it sent one.
    ``complete`` is true when the attempt published the whole file under its final name,
    ``saved_as`` (when not the name planned from the URL: a ``Content-Disposition`` name).
    """

    http_status: int | None
    kind: AttemptKind = AttemptKind.OK
    error: str | None = None
    nbytes: int = 0
    received: int = 0
    kept: int = 0
    retry_after: float | None = None
    complete: bool = False
    saved_as: str | None = None
    http_version: str | None = None  # "1.1", "2" or "3": the protocol of the response
    validator: str | None = None  # kind SPLIT: the ETag (or Last-Modified) of the file

    @property
    def succeeded(self) -> bool:
        """True when this attempt left the complete file under its final name."""
        return self.complete


@quick_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """The outcome of one URL.

    ``path`` is the full path of the file, when there is one after the run (downloaded or
    already complete); ``None`` otherwise. ``http_status`` is the last HTTP status seen, or
    ``None`` when no response arrived. ``bytes`` is the size of the file at ``path``;
    ``received`` the body bytes fetched for it in this run (less than ``bytes`` for a
    resumed file, 0 for a skipped one); ``kept`` the bytes left in a partial file for a
    later resume. ``attempts`` counts requests sent for this URL.
    """

    url: str
    path: str | None
    status: Status
    http_status: int | None = None
    bytes: int = 0
    received: int = 0
    kept: int = 0
    seconds: float = 0.0
    attempts: int = 1
    error: str | None = None
    history: tuple[Attempt, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status in _SUCCEEDED

    @property
    def http_version(self) -> str | None:
        """The protocol of the last response: ``"1.1"``, ``"2"`` or ``"3"``."""
        return self.history[-1].http_version if self.history else None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping (the ``--json`` record)."""
        return {
            "url": self.url,
            "path": self.path,
            "status": self.status.value,
            "http_status": self.http_status,
            "http_version": self.http_version,
            "bytes": self.bytes,
            "received": self.received,
            "kept": self.kept,
            "seconds": round(self.seconds, 6),
            "attempts": self.attempts,
            "error": self.error,
            "history": [
                {"http_status": a.http_status, "kind": a.kind.value, "error": a.error}
                for a in self.history
            ],
        }


_LABELS = {
    Status.OK: "downloaded",
    Status.SKIPPED: "skipped",
    Status.NOT_FOUND: "not found",
    Status.ERROR: "failed",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What a whole run added up to.

    ``counts`` is a :class:`collections.Counter` keyed by :class:`Status`, as in the book.
    ``bytes`` counts the body bytes received in this run (so a resumed file counts only
    its rest, a skipped one nothing); ``kept_files`` and ``kept_bytes`` the partial files
    left for a resume. ``results`` holds every :class:`Result` in completion order when
    the run kept them, and is empty otherwise (see ``download(keep_results=...)``).
    """

    counts: Counter[Status]
    bytes: int
    elapsed: float
    kept_files: int = 0
    kept_bytes: int = 0
    results: tuple[Result, ...] = ()
    host_bound: float = 0.0  # seconds the per-host limit alone held downloads back

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """True when every URL ended complete (downloaded or already there)."""
        return all(status.succeeded for status, n in self.counts.items() if n)

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.counts.items() if not status.succeeded)

    @property
    def files_per_second(self) -> float:
        """Files fetched per second; files already complete are not counted."""
        fetched = self.total - self.counts[Status.SKIPPED]
        return fetched / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        """One line: counts by status, bytes received, elapsed time and rates (sizes in
        powers of 1000: kB, MB, GB)."""
        parts = [f"{self.counts[s]:,} {_LABELS[s]}" for s in Status if self.counts[s]]
        counts = ", ".join(parts) if parts else "nothing done"
        line = (
            f"{counts}; {human_bytes(self.bytes)} received in {self.elapsed:.2f}s "
            f"({self.files_per_second:,.1f} files/s, {human_bytes(self.bytes_per_second)}/s)"
        )
        if self.kept_files:
            plural = "s" if self.kept_files != 1 else ""
            line += (
                f"; {self.kept_files:,} partial file{plural} "
                f"({human_bytes(self.kept_bytes)}) kept for a resume"
            )
        return line


@dataclass(slots=True)
class Tally:
    """Folds results into counts as they arrive; keeps them only if asked."""

    keep_results: bool = False
    counts: Counter[Status] = field(default_factory=Counter)
    bytes: int = 0
    kept_files: int = 0
    kept_bytes: int = 0
    results: list[Result] = field(default_factory=list)
    host_bound: float = 0.0

    def add(self, result: Result) -> Result:
        self.counts[result.status] += 1
        self.bytes += result.received
        if result.kept:
            self.kept_files += 1
            self.kept_bytes += result.kept
        if self.keep_results:
            self.results.append(result)
        return result

    def extend(self, results: Iterable[Result]) -> None:
        for result in results:
            self.add(result)

    def keep(self, files: int, nbytes: int) -> None:
        """Transfers cancelled when the run stopped left ``files`` partial files of
        ``nbytes`` bytes in all, for a resume."""
        self.kept_files += files
        self.kept_bytes += nbytes

    def report(self, elapsed: float) -> Report:
        return Report(
            counts=Counter(self.counts),
            bytes=self.bytes,
            elapsed=elapsed,
            kept_files=self.kept_files,
            kept_bytes=self.kept_bytes,
            results=tuple(self.results),
            host_bound=self.host_bound,
        )


def conclude(job: Job, path: str, history: Sequence[Attempt], seconds: float) -> Result:
    """Turn the attempts at ``job``, to be saved at ``path``, into its :class:`Result`."""
    last = history[-1]
    code = last.http_status
    kept = tuple(history)
    received = sum(a.received for a in kept)
    if last.succeeded:
        return Result(
            url=job.url,
            path=last.saved_as or path,
            status=Status.OK,
            http_status=code,
            bytes=last.nbytes,
            received=received,
            seconds=seconds,
            attempts=len(kept),
            history=kept,
        )
    not_found = last.kind is AttemptKind.STATUS and code in _NOT_FOUND
    return Result(
        url=job.url,
        path=None,
        status=Status.NOT_FOUND if not_found else Status.ERROR,
        http_status=code,
        received=received,
        kept=last.kept,
        seconds=seconds,
        attempts=len(kept),
        error=last.error or http_error(code),
        history=kept,
    )


def http_error(code: int | None) -> str:
    """``HTTP 404 Not Found``: the error text of a response that made no file."""
    if code is None:
        return "no response"
    import http

    try:
        phrase = http.HTTPStatus(code).phrase
    except ValueError:
        phrase = "Unknown"
    return f"HTTP {code} {phrase}"


def human_bytes(n: float) -> str:
    """``n`` bytes in powers of 1000: ``512 B``, ``7.8 MB``."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover
