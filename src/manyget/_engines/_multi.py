"""Every download on one thread, driven by libcurl's multi interface (event-driven, in C).

Theory of operation: a :class:`MultiLoop` owns one ``CurlMulti`` and up to ``capacity``
reused :class:`~manyget._fetch.Transfer` handles; the multi handle keeps the connection
pool, so connections outlive the handle that opened them. ``start`` adds an attempt at
once; ``wait`` lets libcurl move bytes, waits (at most ``timeout``) for socket activity,
and returns the attempts that ended. The ``multi`` engine drives a loop with
:func:`~manyget._engines._drive.drive`; each worker of the ``processes`` engine drives one
from its inbox. This is the engine with the least CPU per file (docs/benchmarks.md),
hence the default.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from .._fetch import Transfers, preflight, rates_for, read_size, resume_paused
from .._hosts import Feeder
from .._jobs import Job
from .._policy import Settings
from .._results import Attempt, Result
from ._drive import Batch, drive

__all__ = ["MultiLoop", "run"]


class MultiLoop:
    """A bounded set of concurrent libcurl transfers on the calling thread."""

    def __init__(self, settings: Settings, capacity: int) -> None:
        import pycurl

        self._again = pycurl.E_CALL_MULTI_PERFORM
        self._error = pycurl.error
        self.settings = settings
        self.capacity = capacity
        self._multi = pycurl.CurlMulti()
        self._transfers = Transfers(settings, read_size(capacity))
        self._rates = rates_for(settings)
        self._prefix = os.path.join(settings.dest, "")

    @property
    def busy(self) -> int:
        """Attempts running."""
        return len(self._transfers)

    @property
    def free(self) -> bool:
        return len(self._transfers) < self.capacity

    def preflight(self, job: Job) -> Result | None:
        return preflight(job, self._prefix + job.name, self.settings)

    def start(self, job: Job) -> None:
        self._multi.add_handle(self._transfers.begin(job))

    def wait(self, timeout: float) -> list[tuple[Job, Attempt]]:
        """Move bytes, waiting up to ``timeout`` seconds; the attempts that ended."""
        if not self._transfers:
            time.sleep(timeout)
            return []
        multi = self._multi
        again = self._again
        rates = self._rates
        if rates is not None and rates.paused:  # bandwidth caps: resume what may go on
            resume_paused(rates, time.monotonic())
        while multi.perform()[0] == again:
            pass
        if rates is not None and rates.paused:  # wake when the first paused may go on
            now = time.monotonic()
            timeout = min(timeout, min(rates.delay(t.host, now) for t in rates.paused))
        ended: list[tuple[Job, Attempt]] = []
        end = self._transfers.end
        remove = multi.remove_handle
        add = multi.add_handle
        hops = 0
        while True:
            queued, ok, failed = multi.info_read()
            for curl in ok:
                remove(curl)
                got = end(curl)
                if got is None:  # a redirect: the same handle makes the next hop
                    hops += 1
                    add(curl)
                else:
                    ended.append(got)
            for curl, errno, message in failed:
                remove(curl)
                got = end(curl, errno, message)
                assert got is not None  # a failed transfer never hops
                ended.append(got)
            if not queued:
                break
        if not ended and not hops and timeout > 0:  # a new hop needs perform() first
            multi.select(timeout)
        return ended

    def close(self) -> list[tuple[Job, Attempt]]:
        """Abandon what is running (partial files kept for a resume), free every handle;
        the attempts cancelled."""
        for curl in self._transfers.running():
            # A stop (SIGTERM in a worker) may land between a handle's removal in wait()
            # and its end: it is off the multi handle already, and is cancelled all the same.
            with contextlib.suppress(self._error):
                self._multi.remove_handle(curl)
        cancelled = self._transfers.close()
        self._multi.close()
        return cancelled


def run(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
    """Fetch jobs on one thread with libcurl's multi interface, as they complete."""
    loop = MultiLoop(settings, feeder.capacity)
    try:
        yield from drive(feeder, loop)
    finally:
        for job, attempt in loop.close():
            feeder.cancelled(job, attempt)
