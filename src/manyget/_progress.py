"""Observers of a run: progress bar, verbose lines, JSON lines. The core never prints.

An observer is told when a run starts (with the number of URLs when it is known), about
each result as it completes, and when the run ends. ``download(progress=...)`` and the CLI
attach them; library code only calls them.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Protocol

from ._jobs import mask_url
from ._results import Report, Result, Status, human_bytes

__all__ = ["Bar", "FailureLines", "JsonLines", "Observer", "Ticker", "VerboseLines", "describe"]


class Observer(Protocol):
    def started(self, total: int | None) -> None: ...

    def result(self, result: Result) -> None: ...

    def finished(self, report: Report) -> None: ...


def describe(result: Result) -> str:
    """One human line for a result: ``URL -> path (12.3 KB, 0.01s)`` or the error."""
    url = mask_url(result.url)
    if result.status is Status.OK:
        return f"OK {url} -> {result.path} ({result.bytes:,} B, {result.seconds:.2f}s)"
    if result.status is Status.SKIPPED:
        return f"SKIPPED {url} -> {result.path}"
    label = "NOT FOUND" if result.status is Status.NOT_FOUND else "ERROR"
    return f"{label} {url}: {result.error}"


class Bar:
    """The progress bar on ``stream`` (stderr by default); other lines print through it.

    ``1561/2000 files  12 failed  7.8 MB  0.6 MB/s  ETA 00:03``: files done out of the
    total (when the list's length is known, or as soon as :meth:`set_total` learns it;
    for a list still arriving, ``1561/1800+``, what was read so far), failures so far,
    bytes received in this run and their rate (powers of 1000, as in the summary).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._failed = 0
        self._bytes = 0
        self._seen = 0  # list entries read so far, when the total is not known
        self._total: int | None = None  # learnt by set_total before the start

    def started(self, total: int | None) -> None:
        from tqdm import tqdm

        if total is None:
            total = self._total
        outer = self

        class _Tqdm(tqdm):  # type: ignore[type-arg]
            @property
            def format_dict(self) -> dict[str, Any]:
                values = dict(super().format_dict)
                values.update(outer._fields(values))
                return values

        self._bar = _Tqdm(
            total=total,
            file=self.stream,
            dynamic_ncols=True,
            mininterval=0.2,
            bar_format=_KNOWN if total is not None else _UNKNOWN,
        )

    def _fields(self, values: dict[str, Any]) -> dict[str, str]:
        elapsed = values.get("elapsed") or 0.0
        rate = self._bytes / elapsed if elapsed > 0 else 0.0
        seen = max(self._seen, values.get("n") or 0)
        return {
            "failed": f"  {self._failed:,} failed" if self._failed else "",
            "received": human_bytes(self._bytes),
            "speed": f"{human_bytes(rate)}/s",
            "seen": f"/{seen:,}+" if seen else "",
        }

    def set_total(self, total: int) -> None:
        """The list's length, learnt after the start (counted on another thread)."""
        bar = self._bar
        if bar is None:
            self._total = total
        elif bar.total is None:
            bar.total = total
            bar.bar_format = _KNOWN

    def seen(self, count: int) -> None:
        """``count`` entries of a list of unknown length have been read so far."""
        self._seen = count

    def result(self, result: Result) -> None:
        self._bytes += result.received
        if not result.ok:
            self._failed += 1
        if self._bar is not None:
            self._bar.update(1)

    def write(self, line: str, stream: IO[str]) -> None:
        """Print ``line`` above the bar without tearing it."""
        if self._bar is not None:
            self._bar.write(line, file=stream)
        else:
            print(line, file=stream)

    def finished(self, report: Report) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


_KNOWN = "{n_fmt}/{total_fmt} files{failed}  {received}  {speed}  ETA {remaining}"
_UNKNOWN = "{n_fmt}{seen} files{failed}  {received}  {speed}"


class Ticker:
    """Progress as a plain line every ``every`` seconds at most, for a stream that is not
    a terminal (a log, a CI job): no control characters."""

    def __init__(self, stream: IO[str], every: float = 5.0) -> None:
        self.stream = stream
        self.every = every
        self._total: int | None = None
        self._done = 0
        self._failed = 0
        self._bytes = 0
        self._start = 0.0
        self._last = 0.0

    def started(self, total: int | None) -> None:
        import time

        self._total = total
        self._start = self._last = time.monotonic()

    def set_total(self, total: int) -> None:
        self._total = total

    def seen(self, count: int) -> None:
        pass

    def result(self, result: Result) -> None:
        import time

        self._done += 1
        self._bytes += result.received
        if not result.ok:
            self._failed += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            total = f"/{self._total:,}" if self._total is not None else ""
            rate = self._bytes / (now - self._start) if now > self._start else 0.0
            print(
                f"manyget: {self._done:,}{total} files, {self._failed:,} failed, "
                f"{human_bytes(self._bytes)}, {human_bytes(rate)}/s",
                file=self.stream,
                flush=True,
            )

    def finished(self, report: Report) -> None:
        pass


class _Lines:
    """Shared by the line printers: print through the bar when there is one."""

    def __init__(self, stream: IO[str], bar: Bar | None = None) -> None:
        self.stream = stream
        self.bar = bar

    def emit(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def started(self, total: int | None) -> None:
        pass

    def finished(self, report: Report) -> None:
        pass


class VerboseLines(_Lines):
    """One line per result."""

    def result(self, result: Result) -> None:
        self.emit(describe(result))


class FailureLines(_Lines):
    """One line per failed result (what the CLI prints when not verbose)."""

    def result(self, result: Result) -> None:
        if not result.ok:
            self.emit(describe(result))


class JsonLines(_Lines):
    """One JSON object per result."""

    def result(self, result: Result) -> None:
        record = result.to_dict()
        record["url"] = mask_url(result.url)
        import json  # only JSON output needs it; kept out of start-up

        print(json.dumps(record), file=self.stream)
