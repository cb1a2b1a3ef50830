"""Every download on one thread, driven by libcurl's multi interface (event-driven, in C).

Theory of operation: a :class:`MultiLoop` owns one ``CurlMulti`` and up to ``capacity``
reused :class:`~manyget._fetch.Transfer` handles; the multi handle keeps the connection
pool, so connections outlive the handle that opened them. ``add`` starts a job at once;
``step`` waits (at most ``timeout``) for socket activity, lets libcurl move bytes, and
returns the results of transfers that ended. A transfer that failed transiently is not
retried on the spot: it waits in a heap until its backoff is over, holding no handle.
The ``multi`` engine drives a loop from an iterator; each worker of the ``processes``
engine drives one from its inbox. This is the engine with the least CPU per file
(docs/benchmarks.md), hence the default.
"""

from __future__ import annotations

import heapq
import itertools
import os
import time
from collections.abc import Iterator
from typing import Any

from .._fetch import Transfer, conclude, preflight, read_size
from .._hosts import WAIT, HostGate
from .._jobs import Job
from .._policy import Settings
from .._results import Attempt, Result

__all__ = ["MultiLoop", "run"]


class MultiLoop:
    """A bounded set of concurrent libcurl transfers on the calling thread."""

    def __init__(self, settings: Settings, capacity: int) -> None:
        import pycurl

        self._pycurl = pycurl
        self.settings = settings
        self.capacity = capacity
        self._multi = pycurl.CurlMulti()
        self._spare: list[Transfer] = []
        self._handles: list[Transfer] = []
        # curl handle -> (transfer, earlier attempts, start time of the first attempt)
        self._active: dict[Any, tuple[Transfer, list[Attempt], float]] = {}
        self._waiting: list[tuple[float, int, Job, list[Attempt], float]] = []
        self._prefix = os.path.join(settings.dest, "")
        self._order = itertools.count()
        self._read = read_size(capacity)

    @property
    def load(self) -> int:
        """Jobs held: running, or waiting to be retried."""
        return len(self._active) + len(self._waiting)

    @property
    def free(self) -> bool:
        return self.load < self.capacity

    def add(self, job: Job) -> Result | None:
        """Start ``job``; one that needs no request (bad URL, complete file) is answered."""
        early = preflight(job, self._prefix + job.name, self.settings)
        if early is not None:
            return early
        self._start(job, [], time.monotonic())
        return None

    def _start(self, job: Job, history: list[Attempt], started: float) -> None:
        if self._spare:
            transfer = self._spare.pop()
        else:
            transfer = Transfer(self.settings, read=self._read)
            self._handles.append(transfer)
        transfer.begin(job)
        self._active[transfer.curl] = (transfer, history, started)
        self._multi.add_handle(transfer.curl)

    def step(self, timeout: float = 1.0) -> list[tuple[Job, Result]]:
        """Move bytes for up to ``timeout`` seconds; return the jobs that completed."""
        now = time.monotonic()
        waiting = self._waiting
        while waiting and waiting[0][0] <= now:
            _, _, job, history, started = heapq.heappop(waiting)
            self._start(job, history, started)
        if waiting:
            timeout = min(timeout, waiting[0][0] - now)
        if not self._active:
            if waiting:
                time.sleep(max(0.0, timeout))
            return []
        multi = self._multi
        perform_again = self._pycurl.E_CALL_MULTI_PERFORM
        while multi.perform()[0] == perform_again:
            pass
        results: list[tuple[Job, Result]] = []
        while True:
            queued, ok, failed = multi.info_read()
            for curl in ok:
                self._finish(curl, 0, "", results)
            for curl, errno, message in failed:
                self._finish(curl, errno, message, results)
            if not queued:
                break
        if not results and self._active:
            multi.select(max(0.0, timeout))
        return results

    def _finish(
        self, curl: Any, errno: int, message: str, results: list[tuple[Job, Result]]
    ) -> None:
        transfer, history, started = self._active.pop(curl)
        self._multi.remove_handle(curl)
        job = transfer.job
        assert job is not None
        attempt = transfer.end(errno, message)
        history.append(attempt)
        self._spare.append(transfer)
        delay = None if attempt.complete else self.settings.retry.delay_for(history)
        if delay is None:
            seconds = time.monotonic() - started
            results.append((job, conclude(job, transfer.path(job), history, seconds)))
        else:
            due = time.monotonic() + delay
            heapq.heappush(self._waiting, (due, next(self._order), job, history, started))

    def close(self) -> None:
        """Abandon what is running (temporary files removed) and free every handle."""
        for curl, (transfer, _, _) in list(self._active.items()):
            self._multi.remove_handle(curl)
            transfer.end(-1, "cancelled")
        self._active.clear()
        self._waiting.clear()
        for transfer in self._handles:
            transfer.close()
        self._multi.close()


def run(gate: HostGate, settings: Settings, concurrency: int) -> Iterator[Result]:
    """Fetch jobs on one thread with libcurl's multi interface, as they complete."""
    loop = MultiLoop(settings, concurrency)
    exhausted = False
    try:
        while True:
            now = time.monotonic()
            while not exhausted and loop.free:
                job = gate.take(now)
                if job is None:
                    exhausted = True
                elif job is not WAIT:
                    assert isinstance(job, Job)
                    answer = loop.add(job)
                    if answer is not None:
                        gate.done(job, answer, now)
                        yield answer
                    continue
                break
            wake = None if exhausted else gate.wake_in(now)
            if not loop.load:
                if exhausted:
                    return
                time.sleep(min(1.0, wake or 0.05))  # every host is paused, or no input yet
                continue
            for job, result in loop.step(1.0 if wake is None else min(1.0, wake)):
                gate.done(job, result, time.monotonic())
                yield result
    finally:
        loop.close()
