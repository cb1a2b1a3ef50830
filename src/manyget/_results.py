"""Pure result types: what one download produced and what a run added up to.

Nothing here does I/O or reads a clock; engines create :class:`Result` values and a
:class:`Tally` folds them into a :class:`Report`, in constant memory unless asked to
keep every result.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Attempt", "Report", "Result", "Status", "Tally"]


class Status(enum.Enum):
    """How one URL ended, like the book's ``DownloadStatus``."""

    OK = "ok"
    NOT_FOUND = "not_found"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def succeeded(self) -> bool:
        """True when the file is complete under ``dest`` after the run."""
        return self in (Status.OK, Status.SKIPPED)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one request produced.

    ``kind`` says how it ended: ``"ok"`` (a response, whatever its status), or the failure:
    ``"refused"``, ``"connect"`` (no connection), ``"read"`` (the connection broke, stalled
    or the body was cut short), ``"tls"``, ``"fatal"`` (never worth retrying: a redirect
    loop, a malformed response, a local write error). ``retry_after`` is the server's
    ``Retry-After`` in seconds, when it sent one. ``complete`` is true when the attempt
    published the whole file under its final name, ``saved_as`` (when not the name planned
    from the URL: a ``Content-Disposition`` name).
    """

    http_status: int | None
    nbytes: int = 0
    error: str | None = None
    kind: str = "ok"
    retry_after: float | None = None
    complete: bool = False
    saved_as: str | None = None

    @property
    def succeeded(self) -> bool:
        """True when this attempt left the complete file under its final name."""
        return self.complete


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one URL.

    ``path`` is where the file is (or would have been) saved, relative to nothing: it is
    the full path manyget used. ``http_status`` is the last HTTP status seen, or ``None``
    when no response arrived. ``attempts`` counts requests sent for this URL.
    """

    url: str
    path: str | None
    status: Status
    http_status: int | None = None
    bytes: int = 0
    seconds: float = 0.0
    attempts: int = 1
    error: str | None = None
    history: tuple[Attempt, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status.succeeded

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready mapping (the ``--json`` record)."""
        return {
            "url": self.url,
            "path": self.path,
            "status": self.status.value,
            "http_status": self.http_status,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 6),
            "attempts": self.attempts,
            "error": self.error,
            "history": [
                {"http_status": a.http_status, "kind": a.kind, "error": a.error}
                for a in self.history
            ],
        }


@dataclass(frozen=True, slots=True)
class Report:
    """What a whole run added up to.

    ``counts`` is a :class:`collections.Counter` keyed by :class:`Status`, as in the book.
    ``results`` holds every :class:`Result` in completion order when the run kept them,
    and is empty otherwise (see ``download(keep_results=...)``).
    """

    counts: Counter[Status]
    bytes: int
    elapsed: float
    results: tuple[Result, ...] = ()

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
        return self.total / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> str:
        """One line: counts by status, bytes, elapsed time and rate."""
        parts = [f"{self.counts[s]} {s.value.replace('_', ' ')}" for s in Status if self.counts[s]]
        counts = ", ".join(parts) if parts else "nothing to do"
        return (
            f"{counts}; {_human_bytes(self.bytes)} in {self.elapsed:.2f}s "
            f"({self.files_per_second:,.1f} files/s)"
        )


@dataclass(slots=True)
class Tally:
    """Folds results into counts as they arrive; keeps them only if asked."""

    keep_results: bool = False
    counts: Counter[Status] = field(default_factory=Counter)
    bytes: int = 0
    results: list[Result] = field(default_factory=list)

    def add(self, result: Result) -> Result:
        self.counts[result.status] += 1
        if result.status is Status.OK:
            self.bytes += result.bytes
        if self.keep_results:
            self.results.append(result)
        return result

    def extend(self, results: Iterable[Result]) -> None:
        for result in results:
            self.add(result)

    def report(self, elapsed: float) -> Report:
        return Report(Counter(self.counts), self.bytes, elapsed, tuple(self.results))


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover
