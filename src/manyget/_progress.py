"""Observers of a run: progress bar, verbose lines, JSON lines. The core never prints.

An observer is told when a run starts (with the number of URLs when it is known), about
each result as it completes, and when the run ends. ``download(progress=...)`` and the CLI
attach them; library code only calls them.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import IO, Any, Protocol

from ._jobs import mask_text, mask_url, printable
from ._results import Report, Result, Status, human_bytes

__all__ = ["Bar", "FailureLines", "JsonLines", "Observer", "Ticker", "VerboseLines", "describe"]


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
    """The progress bar on ``stream`` (stderr by default); other lines print through it.

    ``1561/2000 files  12 failed  7.8 MB  0.6 MB/s  ETA 00:03``: files done out of the
    total (when the list's length is known, or as soon as :meth:`set_total` learns it;
    for a list still arriving, ``1561/1800+``, what was read so far), failures so far,
    bytes received in this run and their rate (powers of 1000, as in the summary).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._bar: Any = None
        self._files: dict[str, Any] = {}  # byte bars of big files in flight, by name
        self._stop: threading.Event | None = None
        self._watcher: threading.Thread | None = None
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

    def watch(self, probe: Probe) -> None:
        """Show byte bars (at most :data:`FILE_BARS`, the largest) of the big files in
        flight that ``probe()`` lists as (name, bytes so far, expected size)."""
        stop = self._stop = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, args=(probe, stop), name="manyget-bars", daemon=True
        )
        self._watcher.start()

    def _watch(self, probe: Probe, stop: threading.Event) -> None:
        while not stop.wait(0.25):
            try:
                self._draw_files(probe())
            except Exception:  # a display glitch must never stop a download
                return

    def _draw_files(self, rows: list[tuple[str, int, int | None]]) -> None:
        from tqdm import tqdm

        shown = sorted(rows, key=lambda row: -max(row[1], row[2] or 0))[:FILE_BARS]
        names = {name for name, _, _ in shown}
        for name in [n for n in self._files if n not in names]:
            self._files.pop(name).close()  # done (or no longer among the largest)
        used = {bar.pos for bar in self._files.values()}
        for name, have, total in shown:
            bar = self._files.get(name)
            if bar is None:
                position = min(p for p in range(1, FILE_BARS + 2) if p not in used
                               and -p not in used)  # fmt: skip
                used.add(position)
                label = name if len(name) <= 24 else name[:11] + "..." + name[-10:]
                bar = self._files[name] = tqdm(
                    total=total, desc=printable(label), position=position, leave=False,
                    file=self.stream, unit="B", unit_scale=True, unit_divisor=1000,
                    dynamic_ncols=True, mininterval=0,
                )  # fmt: skip
            bar.n = have
            bar.refresh()

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
        if self._stop is not None and self._watcher is not None:
            self._stop.set()
            self._watcher.join(timeout=2)
        for bar in self._files.values():
            bar.close()
        self._files.clear()
        if self._bar is not None:
            self._bar.close()
            self._bar = None


FILE_BARS = 4  # byte bars shown at most, under the main one
Probe = Callable[[], "list[tuple[str, int, int | None]]"]

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
