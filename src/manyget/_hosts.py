"""Pure scheduling across hosts: a per-host limit, fairness, and pauses for busy hosts.

Theory of operation: engines ask a :class:`HostGate` for their next job instead of reading
the planned jobs directly. The gate keeps at most ``per_host`` jobs of one host in flight.
When the next job in the list belongs to a host that is full (or paused), the gate looks
further down the list, up to ``lookahead`` jobs held aside, so one host that floods the
list cannot starve the others; held jobs are served round-robin by host. When a host
answers 429 or 503, the gate stops starting new jobs for that host (only that host) until
its ``Retry-After`` has passed, or for a short backoff without one. ``take`` returns a job,
:data:`WAIT` (nothing can start now; ask again after something finishes or after
:meth:`HostGate.wake_in` seconds), or ``None`` when the list is done. A slow input may
yield :data:`~manyget._jobs.PENDING` instead of a job: the gate then answers WAIT and
asks the input again on the next ``take``, so downloads in flight never wait on it. No
clock is read: callers pass ``now``.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Iterator
from typing import Final

from ._jobs import Job, _Pending
from ._results import Result

__all__ = ["WAIT", "HostGate"]


class _Wait:
    def __repr__(self) -> str:
        return "WAIT"


WAIT: Final = _Wait()
_PAUSE_STATUSES = frozenset({429, 503})
_DEFAULT_PAUSE = 1.0
_INPUT_POLL = 0.02  # how soon to ask again when the input had no job ready


class HostGate:
    """Hands out jobs within per-host limits, fairly, pausing hosts that push back."""

    def __init__(
        self,
        jobs: Iterator[Job | _Pending],
        per_host: int,
        *,
        lookahead: int = 1024,
        max_pause: float = 30.0,
    ) -> None:
        self._jobs = jobs
        self.per_host = per_host
        self.lookahead = lookahead
        self.max_pause = max_pause
        self._held: OrderedDict[str, deque[Job]] = OrderedDict()
        self._held_count = 0
        self._busy: Counter[str] = Counter()
        self._paused: dict[str, float] = {}
        self._exhausted = False
        self._starved = False  # the input said PENDING the last time it was asked

    def _ready(self, host: str, now: float) -> bool:
        if self._busy[host] >= self.per_host:
            return False
        until = self._paused.get(host)
        if until is None:
            return True
        if until <= now:
            del self._paused[host]
            return True
        return False

    def _start(self, job: Job) -> Job:
        if job.host:
            self._busy[job.host] += 1
        return job

    def take(self, now: float) -> Job | _Wait | None:
        """The next job that may start at ``now``; WAIT; or None when all are handed out."""
        for host in list(self._held) if self._held else ():
            if self._ready(host, now):
                queue = self._held[host]
                job = queue.popleft()
                self._held_count -= 1
                if queue:
                    self._held.move_to_end(host)  # round-robin among waiting hosts
                else:
                    del self._held[host]
                return self._start(job)
        while not self._exhausted and self._held_count < self.lookahead:
            fresh = next(self._jobs, None)
            if fresh is None:
                self._exhausted = True
                break
            if isinstance(fresh, _Pending):
                self._starved = True
                break
            self._starved = False
            if not fresh.host or self._ready(fresh.host, now):
                return self._start(fresh)
            self._held.setdefault(fresh.host, deque()).append(fresh)
            self._held_count += 1
        if self._exhausted and not self._held:
            return None
        return WAIT

    def done(self, job: Job, result: Result | None, now: float) -> None:
        """``job`` finished (``result`` is None when it was cancelled or lost)."""
        if not job.host:
            return
        self._busy[job.host] -= 1
        if self._busy[job.host] <= 0:
            del self._busy[job.host]
        if result is None or not result.history:
            return
        last = result.history[-1]
        if last.http_status in _PAUSE_STATUSES:
            pause = last.retry_after if last.retry_after is not None else _DEFAULT_PAUSE
            until = now + min(pause, self.max_pause)
            self._paused[job.host] = max(until, self._paused.get(job.host, 0.0))

    def wake_in(self, now: float) -> float | None:
        """Seconds until a job may be ready: a paused host with held jobs may start again,
        or (soon) the input that had nothing ready may have more; None if neither."""
        times = [t - now for host, t in self._paused.items() if host in self._held]
        if self._starved:
            times.append(_INPUT_POLL)
        return max(0.0, min(times)) if times else None
