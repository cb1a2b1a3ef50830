"""Observers of a run: progress bar, verbose lines, JSON lines. The core never prints.

An observer is told when a run starts (with the number of URLs when it is known), about
each result as it completes, and when the run ends. ``download(progress=...)`` and the CLI
attach them; library code only calls them.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING, Never, Protocol

from ._jobs import mask_text, mask_url, printable
from ._results import Report, Result, Status

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["Bar", "FailureLines", "JsonLines", "Observer", "VerboseLines", "describe"]


class Observer(Protocol):
    def started(self, total: int | None) -> None: ...

    def result(self, result: Result) -> None: ...

    def finished(self, report: Report) -> None: ...


_SHOW_URL = 2000  # characters of a URL shown in a human line


def describe(result: Result) -> str:
    """One human line for a result: ``URL -> path (12.3 KB, 0.01s)`` or the error.

    Credentials are masked and every control character escaped (:func:`printable`).
    """
    url = mask_url(result.url)
    if len(url) > _SHOW_URL:  # a bad line may be megabytes long: its line number says where
        url = f"{url[:_SHOW_URL]}... ({len(result.url):,} characters)"
    if result.status is Status.OK:
        line = f"OK {url} -> {result.path} ({result.bytes:,} B, {result.seconds:.2f}s)"
    elif result.status is Status.SKIPPED:
        line = f"SKIPPED {url} -> {result.path}"
    else:
        label = "NOT FOUND" if result.status is Status.NOT_FOUND else "ERROR"
        line = f"{label} {url}: {mask_text(result.error or '')}"
    return printable(line)


class Bar:
    """A tqdm progress bar on ``stream`` (stderr by default); others print through it."""

    def __init__(self, stream: IO[str] | None = None, unit: str = "file") -> None:
        self.stream = stream or sys.stderr
        self.unit = unit
        self._bar: tqdm[Never] | None = None

    def started(self, total: int | None) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, unit=self.unit, file=self.stream, dynamic_ncols=True)

    def result(self, result: Result) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def write(self, line: str, stream: IO[str]) -> None:
        """Print ``line`` without tearing the bar."""
        if self._bar is not None:
            self._bar.write(line, file=stream)
        else:
            print(line, file=stream)

    def finished(self, report: Report) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _Lines:
    """Shared by the line printers: print through the bar when there is one."""

    def __init__(self, stream: IO[str], bar: Bar | None = None) -> None:
        self.stream = stream
        self.bar = bar

    def emit(self, line: str) -> None:
        line = printable(line)
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
        if record.get("error"):
            record["error"] = mask_text(str(record["error"]))
        import json  # only JSON output needs it; kept out of start-up

        print(json.dumps(record), file=self.stream)
