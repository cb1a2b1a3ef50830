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

import contextlib
import dataclasses
import heapq
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._jobs import Job, _Pending, mask_url
from ._log import DEBUG, INFO, logger
from ._results import Attempt, AttemptKind, Result, conclude
from ._split import Split

if TYPE_CHECKING:
    import logging

    from ._policy import RetryPolicy

__all__ = ["WAIT", "Feeder", "HostGate", "SplitHandle"]


class _Wait:
    def __repr__(self) -> str:
        return "WAIT"


WAIT: Final = _Wait()
_PAUSE_STATUSES = frozenset({429, 503})
# Failures another server cannot help with: a mirror is not tried after them.
_NOT_THE_SERVER = frozenset({AttemptKind.DISK, AttemptKind.LOCAL, AttemptKind.CANCELLED})
_DEFAULT_PAUSE = 1.0
_INPUT_POLL = 0.02  # how soon to ask again when the input had no job ready
_SPLIT, _FATAL, _LOCAL = AttemptKind.SPLIT, AttemptKind.FATAL, AttemptKind.LOCAL
_LOAD = (429, 503)  # a piece refused for load while others run: fewer connections


class SplitHandle(Protocol):
    """The partial file of a file fetched as ranges (``_fetch._part.SplitFile``)."""

    shown: str
    inode: int

    def open(self, url: str, length: int, validator: str | None) -> list[tuple[int, int]]: ...
    def record(self, done: list[tuple[int, int]]) -> None: ...
    def publish(self, sha256: str | None) -> str | None: ...
    def close(self) -> None: ...
    def drop(self) -> None: ...
    def steal(self, least: int, *, take: bool = True) -> tuple[int, int, int] | None: ...


class HostGate:
    """Hands out jobs within per-host limits, fairly, pausing hosts that push back."""

    def __init__(
        self,
        jobs: Iterator[Job | _Pending],
        per_host: int,
        *,
        lookahead: int = 1024,
        max_pause: float = 30.0,
        max_rps: float | None = None,
    ) -> None:
        self._jobs = jobs
        self.per_host = per_host
        # At most max_rps requests a second to one host: the earliest next start of each.
        self._gap = 1.0 / max_rps if max_rps else 0.0
        self._next_start: dict[str, float] = {}
        self.lookahead = lookahead
        self.max_pause = max_pause
        self._held: OrderedDict[str, deque[Job]] = OrderedDict()
        self._held_count = 0
        self._busy: Counter[str] = Counter()
        self._paused: dict[str, float] = {}
        self._exhausted = False
        self._starved = False  # the input said PENDING the last time it was asked

    @property
    def max_rps(self) -> float | None:
        """Requests a second to one host at most, if limited."""
        return 1.0 / self._gap if self._gap else None

    def _ready(self, host: str, now: float) -> bool:
        if self._busy[host] >= self.per_host:
            return False
        if self._gap and self._next_start.get(host, now) > now:
            return False
        until = self._paused.get(host)
        if until is None:
            return True
        if until <= now:
            del self._paused[host]
            return True
        return False

    def _start(self, job: Job, now: float) -> Job:
        if job.host:
            self._busy[job.host] += 1
            if self._gap:
                starts = self._next_start
                if len(starts) > 4096:  # forget hosts that may start again anyway
                    for host in [h for h, t in starts.items() if t <= now]:
                        del starts[host]
                starts[job.host] = max(now, starts.get(job.host, now)) + self._gap
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
                return self._start(job, now)
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
                return self._start(fresh, now)
            self._held.setdefault(fresh.host, deque()).append(fresh)
            self._held_count += 1
        if self._exhausted and not self._held:
            return None
        return WAIT

    def host_bound(self) -> bool:
        """True when the jobs held back all wait for their host's ``per_host`` limit
        (not for a pause, not for the input): the limit is what holds the run back."""
        held = self._held
        if not held or self._starved:
            return False
        busy, limit = self._busy, self.per_host
        return all(busy[host] >= limit for host in held)

    def borrow(self, host: str) -> bool:
        """One more connection to ``host`` for a job already started (another range of a
        file fetched as ranges), if its limit allows; give it back with :meth:`give_back`."""
        if not host:
            return True
        if self._busy[host] >= self.per_host:
            return False
        self._busy[host] += 1
        return True

    def give_back(self, host: str) -> None:
        if host:
            self._busy[host] -= 1
            if self._busy[host] <= 0:
                del self._busy[host]

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
            log = logger(INFO)
            if log is not None:
                wait = min(pause, self.max_pause)
                log.info("host %s paused %.1fs after HTTP %s", job.host, wait, last.http_status)

    def wake_in(self, now: float) -> float | None:
        """Seconds until a job may be ready: a paused host with held jobs may start again,
        or (soon) the input that had nothing ready may have more; None if neither."""
        times = [t - now for host, t in self._paused.items() if host in self._held]
        if self._gap:
            starts = self._next_start
            times.extend(
                starts[host] - now
                for host in self._held
                if host in starts and self._busy[host] < self.per_host
            )
        if self._starved:
            times.append(_INPUT_POLL)
        return max(0.0, min(times)) if times else None


class Feeder:
    """The one feeding rule every driver follows: which attempt starts next, and when a
    job is done.

    Theory of operation: a driver (a libcurl multi loop, an event loop, a thread pool, a
    pool of processes) only knows how to run one attempt at a job and how to wait. It asks
    :meth:`next` for work while it has room, runs what it gets, and passes each attempt's
    outcome to :meth:`ended`, which either concludes the job (a :class:`Result`, reported to
    the gate) or schedules a retry once the policy's backoff is over. A retry waiting out
    its backoff holds no transfer, but still counts against the job's host in the gate
    (politeness) and against ``capacity`` (memory). :meth:`wait` says how long the driver
    may block for I/O before asking again: until the next retry is due, until a paused host
    may resume, or, with a slow input, 20 ms. Nothing here reads a clock or does I/O.
    """

    __slots__ = (
        "_accept",
        "_bound_since",
        "_due",
        "_log",
        "_log_checked",
        "_order",
        "_prefix",
        "_retry",
        "_split",
        "_splits",
        "_tries",
        "capacity",
        "exhausted",
        "gate",
        "host_bound",
        "kept_bytes",
        "kept_files",
        "known",
        "running",
        "slots",
        "split_progress",
    )

    def __init__(
        self,
        gate: HostGate,
        retry: RetryPolicy,
        capacity: int,
        prefix: str,
        accept: Callable[[Job], bool] | None = None,
    ) -> None:
        self.gate = gate
        self.capacity = capacity
        # The run's own concurrency: engines that keep a queue fed may raise ``capacity``
        # (processes, an outside executor), but a host holds the run back only while
        # fewer than this many attempts run.
        self.slots = capacity
        self._retry = retry
        self._prefix = prefix  # the destination with its trailing separator
        self._accept = accept
        # job index -> (attempts so far, when the first began)
        # job index -> (attempts so far, when the first began, the job as the gate gave it)
        self._tries: dict[int, tuple[list[Attempt], float, Job]] = {}
        self._due: list[tuple[float, int, Job]] = []  # retries waiting out their backoff
        self._order = 0
        self.running = 0  # attempts started and not yet ended
        self.exhausted = False  # the gate has no more jobs
        self.kept_files = 0  # partial files that cancelled attempts left for a resume
        self.kept_bytes = 0
        self.host_bound = 0.0  # seconds with room for more, but only per-host-held jobs
        self._bound_since: float | None = None
        self._log: logging.Logger | None = None  # the DEBUG logger, when on
        self._log_checked = -math.inf
        # The result of a job the run knows is done without a look at the disk (the
        # journal's record), asked before the runner's preflight; None: no such record.
        self.known: Callable[[Job], Result | None] | None = None
        # Files fetched as ranges (see ``_split``): at most how many at once, pieces at
        # least how large, and what opens a partial file for them (the only I/O).
        self._split: tuple[int, int, Callable[[Job], SplitHandle]] | None = None
        self._splits: dict[int, Split] = {}  # by job index
        # Told the bytes complete of each split file (name, bytes, length; -1: no longer
        # split), for byte progress.
        self.split_progress: Callable[[str, int, int], None] | None = None

    def split_with(self, most: int, least: int, files: Callable[[Job], SplitHandle]) -> None:
        """Fetch large files as up to ``most`` ranges at once, of at least ``least`` bytes;
        ``files(job)`` makes the handle of a job's partial file."""
        if most > 1:
            self._split = (most, least, files)

    @property
    def finished(self) -> bool:
        """True when every job has been handed out and concluded."""
        return self.exhausted and not self.running and not self._due and not self._splits

    @property
    def held(self) -> int:
        """Jobs started and not concluded: running, or waiting to be retried."""
        return self.running + len(self._due)

    def path(self, job: Job) -> str:
        return self._prefix + job.name

    def next(self, now: float) -> tuple[Job, bool] | None:
        """The next attempt to start at ``now`` and whether it is the job's first; None
        when there is no room or nothing is ready (ask again after :meth:`wait`)."""
        due = self._due
        if due and due[0][0] <= now:
            self.running += 1
            return heapq.heappop(due)[2], False
        if self._splits and self.running + len(due) < self.capacity:
            piece = self._piece()
            if piece is not None:
                self.running += 1
                return piece, False
        while self.running + len(due) < self.capacity and not self.exhausted:
            job = self.gate.take(now)
            if job is None:
                self.exhausted = True
                self._unbound(now)
                return None
            if not isinstance(job, Job):  # WAIT
                if self.running < self.slots and self.gate.host_bound():
                    if self._bound_since is None:
                        self._bound_since = now
                else:
                    self._unbound(now)
                return None
            if self._bound_since is not None:
                self._unbound(now)
            if self._accept is not None and not self._accept(job):
                self.gate.done(job, None, now)  # cancelled before it started
                continue
            self.running += 1
            self._tries[job.index] = ([], now, job)
            return job, True
        return None

    def _piece(self) -> Job | None:
        """The next range of a file fetched as ranges, if one may start: from the least
        busy of its sources whose host has a slot (its own, or one borrowed)."""
        for split in self._splits.values():
            if split.wants():
                source = self._source(split)
                if source is None:
                    continue
                url, host = source
                start, end = split.take(url)
            elif split.may_steal() and split.handle.steal(split.least, take=False):
                source = self._source(split)  # the rest of the slowest running piece
                stolen = None if source is None else split.handle.steal(split.least)
                if source is None or stolen is None:
                    continue
                url, host = source
                began, start, end = stolen
                split.stolen(began, start)
                split.took(url)
            else:
                continue
            job = split.job
            assert isinstance(job, Job)
            span = (start, end, split.length, split.inode)
            return dataclasses.replace(
                job, url=url, host=host, span=span, validator=split.validator
            )
        return None

    def _source(self, split: Split) -> tuple[str, str] | None:
        """The source of ``split``'s next piece: the least busy one whose host has a slot
        (one this file holds and no piece uses, or one borrowed now); None if none has."""
        for url, host in split.sources_by_load():
            if split.on_host(host) < split.held.get(host, 0):
                return url, host
            if self.gate.borrow(host):
                split.held[host] = split.held.get(host, 0) + 1
                return url, host
        return None

    def _unbound(self, now: float) -> None:
        if self._bound_since is not None:
            self.host_bound += now - self._bound_since
            self._bound_since = None

    def ended(self, job: Job, attempt: Attempt, now: float) -> Result | None:
        """Record ``attempt`` at ``job``: its :class:`Result` when the job is done, None
        when it will be tried again (handed out by :meth:`next` once due)."""
        if job.span is not None or attempt.kind is _SPLIT:
            return self._split_ended(job, attempt, now)
        self.running -= 1
        history, started, first = self._tries[job.index]
        history.append(attempt)
        delay = None if attempt.complete else self._retry.delay_for(history)
        if job.mirrors and not attempt.complete and attempt.kind not in _NOT_THE_SERVER:
            # Another URL of the same file: try it at once, before any backoff.
            job = dataclasses.replace(
                job, url=job.mirrors[0], mirrors=job.mirrors[1:], host=job.mirror_hosts[0],
                mirror_hosts=job.mirror_hosts[1:],
            )  # fmt: skip
            delay = 0.0
        if now >= self._log_checked:  # whether DEBUG is on, looked at once a second
            self._log = logger(DEBUG)
            self._log_checked = now + 1.0
        log = self._log
        if log is not None:
            _log_attempt(log, job, attempt, len(history), delay)
        if delay is None:
            del self._tries[job.index]
            result = conclude(job, self._prefix + job.name, history, now - started)
            self.gate.done(first, result, now)  # the host the gate counted, not a mirror's
            return result
        if attempt.kept and not job.resumable:
            job = dataclasses.replace(job, resumable=True)  # the retry looks for its part
        self._order += 1
        heapq.heappush(self._due, (now + delay, self._order, job))
        return None

    def _split_ended(self, job: Job, attempt: Attempt, now: float) -> Result | None:
        """An attempt of a file fetched as ranges ended: the first answer (split the
        file), or one of its pieces."""
        self.running -= 1
        tries = self._tries.get(job.index)
        if tries is not None:  # (None: the file went on as one stream, and is done)
            tries[0].append(attempt)
        span = job.span
        if span is None:
            return self._split_file(job, attempt, now)
        split = self._splits.get(job.index)
        if split is None or split.inode != span[3]:
            return None  # a piece still running when its file gave up the ranges
        start, end = span[0], split.end_of(span[0], span[1])  # (cut short: stolen from)
        kept = attempt.kept
        if kept:
            split.wrote(start, start + kept)
        if start + kept >= end:  # whole (a complete piece wrote every byte it owns)
            split.release(job.url)
        elif (
            attempt.http_status in _LOAD
            and not split.stopped
            and split.too_many(start + kept, end)
        ):
            split.release(job.url)  # the server limits connections: one fewer from now
        elif not split.stopped and split.refuse(job.url, start + kept, end):
            split.release(job.url)  # a mirror failed a piece: the others take it over
        elif attempt.kind is _SPLIT:
            split.release(job.url)
            if not split.broken:
                split.broken = True
                split.handle.drop()
                self._order += 1
                whole = dataclasses.replace(job, span=None, validator=None, whole=True)
                heapq.heappush(self._due, (now, self._order, whole))
        else:
            piece_tries = split.tries.setdefault(end, [])
            piece_tries.append(attempt)
            delay = None if split.stopped else self._retry.delay_for(piece_tries)
            if delay is None:
                split.release(job.url)
                if split.failed is None and not split.broken:
                    split.failed = attempt
            else:
                self._order += 1
                again = dataclasses.replace(job, span=(start + kept, end, *span[2:]))
                heapq.heappush(self._due, (now + delay, self._order, again))
        if kept and not split.broken:
            self._record(split)
        return self._settle(split, now)

    def _tell(self, split: Split, have: int | None = None) -> None:
        progress = self.split_progress
        if progress is not None:
            job = split.job
            assert isinstance(job, Job)
            progress(job.name, split.have if have is None else have, split.length)

    def _record(self, split: Split) -> None:
        self._tell(split)
        # Failing that, the sidecar lags behind: a rerun fetches a little more, never less.
        with contextlib.suppress(OSError):
            split.handle.record(split.done)

    def _split_file(self, job: Job, attempt: Attempt, now: float) -> Result | None:
        """The first answer said the file is worth fetching as ranges: make its partial
        file and hand out its pieces (none, when an earlier run left it complete)."""
        assert self._split is not None
        most, least, files = self._split
        handle = files(job)
        try:
            done = handle.open(job.url, attempt.nbytes, attempt.validator)
        except OSError as exc:  # EBUSY: another process holds the partial file
            error = f"{handle.shown}: {exc.strerror or exc}"
            return self._conclude_split(job, now, kind=_FATAL, error=error)
        sources = [(job.url, job.host), *zip(job.mirrors, job.mirror_hosts, strict=True)]
        split = Split(
            job, attempt.nbytes, attempt.validator or "", handle.inode, done,
            most=most, least=least, handle=handle, sources=sources,
        )  # fmt: skip
        self._splits[job.index] = split
        self._tell(split)
        return self._settle(split, now)

    def _settle(self, split: Split, now: float) -> Result | None:
        """Give back host slots no piece needs; conclude the file once nothing runs."""
        job = split.job
        assert isinstance(job, Job)
        wanted = {host for _, host in split.sources_by_load()} if split.wants() else set()
        for host, held in list(split.held.items()):
            need = held if host in wanted else split.on_host(host)
            if host == job.host:
                need = max(1, need)  # the file's own slot, given back when it concludes
            while held > need:
                self.gate.give_back(host)
                held -= 1
            split.held[host] = held
        if not split.finished:
            return None
        del self._splits[job.index]
        self._tell(split, -1)
        handle: SplitHandle = split.handle
        if split.broken:
            return None  # the file goes on as one stream (already queued)
        if split.failed is not None:
            handle.close()  # the partial file and its sidecar stay for a later run
            failed = split.failed
            return self._conclude_split(
                job, now, http_status=failed.http_status, kind=failed.kind, error=failed.error,
                kept=split.have, complete=False,
            )  # fmt: skip
        try:
            mismatch = handle.publish(job.sha256)
        except OSError as exc:
            handle.close()
            error = f"{handle.shown}: {exc.strerror or exc}"
            return self._conclude_split(
                job, now, kind=_LOCAL, error=error, kept=split.have, complete=False
            )
        if mismatch is not None:
            return self._conclude_split(
                job, now, kind=AttemptKind.READ, error=mismatch, kept=0, complete=False
            )
        return self._conclude_split(job, now, nbytes=split.length, kept=0, complete=True)

    def _conclude_split(self, job: Job, now: float, **last: Any) -> Result:
        """Conclude a file fetched as ranges: its last request's attempt says, with
        ``last``'s changes, what became of the whole file (a piece is not a file)."""
        history, started, first = self._tries.pop(job.index)
        history[-1] = dataclasses.replace(history[-1], **last)
        result = conclude(job, self._prefix + job.name, history, now - started)
        self.gate.done(first, result, now)
        return result

    def skipped(self, job: Job, result: Result, now: float) -> Result:
        """``job`` needed no request (a bad URL, a file already complete): ``result``."""
        self.running -= 1
        first = self._tries.pop(job.index)[2]
        self.gate.done(first, result, now)
        return result

    def lost(self, job: Job, now: float) -> None:
        """``job``'s attempt was cancelled, or its worker vanished without an answer."""
        self.running -= 1
        if job.span is not None:
            split = self._splits.get(job.index)
            if split is not None and split.inode == job.span[3]:
                split.release(job.url)
                began = job.span[0]
                split.again(began, split.end_of(began, job.span[1]))
            return
        tries = self._tries.pop(job.index, None)
        self.gate.done(job if tries is None else tries[2], None, now)

    def cancelled(self, job: Job, attempt: Attempt) -> None:
        """``attempt`` was cancelled as the run stopped; count what it kept for a resume."""
        self.running -= 1
        if job.span is not None:
            split = self._splits.get(job.index)
            if split is None or split.inode != job.span[3]:
                return
            split.wrote(job.span[0], job.span[0] + attempt.kept)
            split.end_of(job.span[0], job.span[1])
            split.release(job.url)
            if not split.broken:
                self._record(split)
            if not split.active:  # the last piece of it: the file stays for a later run
                del self._splits[job.index]
                self._tell(split, -1)
                self._tries.pop(job.index, None)
                split.handle.close()
                if split.have and not split.broken:
                    self.kept_files += 1
                    self.kept_bytes += split.have
            return
        self._tries.pop(job.index, None)
        if attempt.kept:
            self.kept_files += 1
            self.kept_bytes += attempt.kept

    def wait(self, now: float) -> float | None:
        """Seconds a driver may wait for I/O before calling :meth:`next` again; None when
        only the end of a running attempt can make more work ready."""
        soonest = self._due[0][0] - now if self._due else None
        if not self.exhausted and self.running + len(self._due) < self.capacity:
            wake = self.gate.wake_in(now)
            if wake is not None and (soonest is None or wake < soonest):
                soonest = wake
        return None if soonest is None else max(0.0, soonest)


def _log_attempt(
    log: logging.Logger, job: Job, attempt: Attempt, number: int, delay: float | None
) -> None:
    url = mask_url(job.url)
    status = attempt.http_status
    if attempt.complete:
        log.debug("attempt %d at %s: ok, HTTP %s, %d bytes", number, url, status, attempt.nbytes)
        return
    why = attempt.error or f"HTTP {status}"
    if delay is None:
        log.debug("attempt %d at %s: %s (%s); giving up", number, url, why, attempt.kind.value)
    else:
        log.info(
            "attempt %d at %s: %s (%s); retry in %.2fs",
            number,
            url,
            why,
            attempt.kind.value,
            delay,
        )
