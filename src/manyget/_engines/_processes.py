"""Several worker processes, each running many downloads at once on a libcurl multi loop.

Theory of operation: one process per core (at most ``concurrency``) is started by a plain
``fork`` when the parent has a single thread, and otherwise through ``forkserver``
(``spawn`` where there is none), so no thread of the parent, such as an embedded server,
is ever forked. Each worker owns an inbox queue and runs a libcurl
multi loop (``_multi.MultiLoop``) of ``ceil(concurrency / workers)`` transfers: it starts
an attempt at each job it receives and sends the attempts that ended in each turn of its
loop back together, each tagged with its job's index, on one shared outbox. The parent
runs the same :func:`~manyget._engines._drive.drive` loop as every engine: it decides
retries and results, reads the list lazily and keeps every worker's backlog short (its
share of the concurrency again), always feeding the least-loaded worker, so memory stays
flat and a slow worker does not hold up the others. Jobs and attempts travel in batches:
a queue's per-message cost (pickling, a feeder thread, a pipe write, a lock) is paid once
per turn rather than once per file. The parent remembers which jobs each worker holds:
when a worker dies, their attempts fail and a new worker takes its place.

Pieces of split files: each worker reports where its running pieces are with its
progress (every ``_POLL`` seconds), and the parent keeps copies of them
(``_part.Mirror``) where its feeder looks for a slow piece to take the rest of; a cut
made there goes to the worker in its inbox, and its piece stops at that byte. Positions
are up to two polls old, so a cut may land behind where the piece is: the bytes between
are then fetched twice, the same bytes of the same version (``If-Range``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .._fetch import BIG_BODY, add_cookie_lines, cookie_lines, inflight_for, preflight
from .._fetch._part import Mirror, cut_rows, piece_key, running_rows
from .._hosts import Feeder
from .._jobs import Job
from .._policy import Settings
from .._results import Attempt, Result
from ._drive import Batch, drive
from ._multi import MultiLoop
from ._window import failed_attempt

__all__ = ["run"]

Key = int | tuple[int, int]  # a job's index; with the start of its range, for a piece of a file


def _key(job: Job) -> Key:
    """Which attempt an answer from a worker is about: pieces of one file share its index,
    and no two of them running begin at the same byte (the rest of a piece taken over
    ends where the piece ended, so the end would not tell them apart)."""
    return job.index if job.span is None else (job.index, job.span[0])


_POLL = 0.25  # seconds between checks that every worker is still alive (and reports)
_REFILL = 0.005  # longest wait on sockets while a worker could take another job
_DRAIN = 0.01  # how often the outbox is read while the workers stop


def _context() -> Any:
    if sys.platform.startswith("linux"):
        # fork is safe, and saves the fork server's start-up (~0.1 s), only while this
        # process has a single thread: a forked lock held by another thread never frees.
        method = "fork" if threading.active_count() == 1 else "forkserver"
    else:
        method = "spawn"
    return multiprocessing.get_context(method)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)  # unwinds through the loop's clean-up, unlike the default


def _stop_later(unraisable: Any) -> None:
    """A SIGTERM that landed in a callback Python cannot raise from (a weakref's, a
    ``__del__``) is sent again, to land in the loop; nothing is printed for it."""
    if isinstance(unraisable.exc_value, SystemExit):
        os.kill(os.getpid(), signal.SIGTERM)
    else:
        sys.__unraisablehook__(unraisable)


def _parent_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a reused pid of another user
        return False
    return True


def _worker(
    wid: int, inbox: Any, outbox: Any, settings: Settings, capacity: int, parent: int
) -> None:
    # The parent handles Ctrl-C; it stops its workers with SIGTERM when interrupted. If it
    # dies without a word (kill -9), the worker notices within a second and stops too,
    # leaving its partial files resumable, instead of downloading on as an orphan.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sys.unraisablehook = _stop_later
    loop = MultiLoop(settings, capacity)
    pending: deque[Job] = deque()  # received, waiting for a free transfer
    closed = False
    checked = time.monotonic()
    inflight = inflight_for(settings)
    reported = False  # the parent holds a progress report of ours
    told = False  # the parent holds a list of our running pieces

    def take(item: Any) -> bool:
        """Take one message from the inbox; False once it is closed."""
        if item is None:
            return False
        if isinstance(item, tuple):  # ("cut", ...): pieces the parent cut short
            cut_rows(item[1])
        else:
            pending.extend(item)
        return True

    try:
        while not closed or loop.busy or pending:
            now = time.monotonic()
            if now - checked > _POLL:
                checked = now
                if not _parent_alive(parent):
                    return
                while not closed:  # cuts wait here while every transfer is busy
                    try:
                        closed = not take(inbox.get_nowait())
                    except queue.Empty:
                        break
                rows = inflight.snapshot(BIG_BODY)  # byte progress of big bodies only
                pieces = running_rows()
                if rows or reported or pieces or told:
                    outbox.put((wid, [], {"progress": rows, "pieces": pieces}))
                    reported, told = bool(rows), bool(pieces)
            while loop.free and (pending or not closed):
                if not pending:
                    try:
                        # Wait only when idle, and never for long: the parent may be gone.
                        batch = inbox.get(block=not loop.busy, timeout=_POLL)
                    except queue.Empty:
                        break
                    if not take(batch):
                        closed = True
                        break
                    if not pending:
                        continue
                loop.start(pending.popleft())
            if closed and not loop.busy and not pending:
                break  # done: nothing runs, nothing more will come
            # Short waits while more jobs may arrive; longer ones once the inbox is closed.
            ended = loop.wait(1.0 if closed and not pending else _REFILL)
            if ended:
                outbox.put((wid, [(_key(job), attempt) for job, attempt in ended], None))
                if reported and not loop.busy:
                    outbox.put((wid, [], {"progress": []}))
                    reported = False
    finally:
        # Stopped (SIGTERM) or done: the attempts cut short tell the parent what they kept.
        cancelled = loop.close()
        # The cookies this worker's transfers set go to the parent, for the run's jar.
        extra = {"cookies": cookie_lines(settings)} if settings.request.cookie_jar else None
        if cancelled or extra:
            with contextlib.suppress(Exception):
                done = [(_key(job), attempt) for job, attempt in cancelled]
                outbox.put((wid, done, extra))


@dataclass
class _Slot:
    """The parent's view of one worker: its process, inbox and the jobs it holds."""

    process: Any
    inbox: Any
    held: dict[Key, Job] = field(default_factory=dict)


class _Pool:
    """A :class:`~manyget._engines._drive.Runner` whose attempts run in worker processes."""

    def __init__(self, settings: Settings, concurrency: int) -> None:
        self._ctx = _context()
        self._run_settings = settings  # the run's own, whose cookie store gathers workers'
        self._prefix = os.path.join(settings.dest, "")
        nworkers = max(1, min(os.cpu_count() or 1, concurrency))
        if settings.rate or settings.host_rate:  # each worker caps its share
            settings = dataclasses.replace(
                settings,
                rate=settings.rate / nworkers if settings.rate else None,
                host_rate=settings.host_rate / nworkers if settings.host_rate else None,
            )
        self._settings = settings
        self._capacity = math.ceil(concurrency / nworkers)
        self._mirror = Mirror()  # the workers' running pieces, for the feeder to cut
        self._outbox: Any = self._ctx.Queue()
        self._batches: dict[int, list[Job]] = {}
        self.slots: list[_Slot] = []
        self.slots.extend(self._spawn(wid) for wid in range(nworkers))

    def _spawn(self, wid: int) -> _Slot:
        inbox: Any = self._ctx.Queue()
        process = self._ctx.Process(
            target=_worker,
            args=(wid, inbox, self._outbox, self._settings, self._capacity, os.getpid()),
            name=f"manyget-worker-{wid}",
            daemon=True,
        )
        process.start()
        return _Slot(process, inbox)

    def preflight(self, job: Job) -> Result | None:
        return preflight(job, self._prefix + job.name, self._settings)

    def start(self, job: Job) -> None:
        slots = self.slots
        wid = min(range(len(slots)), key=lambda w: len(slots[w].held))
        slots[wid].held[_key(job)] = job
        self._batches.setdefault(wid, []).append(job)

    def wait(self, timeout: float) -> list[tuple[Job, Attempt]]:
        for wid, jobs in self._batches.items():  # one message per worker per turn
            self.slots[wid].inbox.put(jobs)
        self._batches.clear()
        for wid, cuts in self._mirror.cuts().items():
            self.slots[wid].inbox.put(("cut", cuts))
        try:
            wid, done, extra = self._outbox.get(timeout=min(timeout, _POLL))
        except queue.Empty:
            return list(self._replace_dead())
        if extra:
            self._note(wid, extra)
        held = self.slots[wid].held
        ended = [(held.pop(index), attempt) for index, attempt in done]
        for job, _ in ended:
            if job.span is not None:  # ended there: no longer to be cut
                tmp, inode = piece_key(self._prefix, job.name, job.span[3])
                self._mirror.forget(wid, tmp, inode, job.span[0])
        return ended

    def _replace_dead(self) -> Iterator[tuple[Job, Attempt]]:
        for wid, slot in enumerate(self.slots):
            code = slot.process.exitcode
            if code is None or not slot.held:
                continue
            lost = list(slot.held.values())
            self._mirror.update(wid, [])  # its pieces are gone with it
            self.slots[wid] = self._spawn(wid)
            error = ChildProcessError(f"worker process exited ({code})")
            for job in lost:
                yield job, failed_attempt(error)

    def stop(self, *, abort: bool) -> list[tuple[Job, Attempt]]:
        """Close every inbox; when the run was cut short, also stop the work in flight.

        Returns the attempts still held when the workers stopped: those cut short say
        what they kept for a resume.
        """
        for slot in self.slots:
            with contextlib.suppress(Exception):
                slot.inbox.put(None)
        if abort:
            for slot in self.slots:
                if slot.process.exitcode is None:
                    slot.process.terminate()  # SIGTERM: the worker cleans up and exits
        late: list[tuple[Job, Attempt]] = []
        # Read the outbox while the workers exit: one blocked writing to a full pipe
        # would otherwise never finish. Their exits are waited for, not polled: a run
        # ends as soon as its last worker does.
        deadline = time.monotonic() + 5.0
        while True:
            late.extend(self._collect(0.0))
            running = [
                slot.process.sentinel for slot in self.slots if slot.process.exitcode is None
            ]
            if not running:
                late.extend(self._collect(0.0))
                break
            if time.monotonic() >= deadline:
                break
            multiprocessing.connection.wait(running, timeout=_DRAIN)
        for wid in range(len(self.slots)):
            self._mirror.update(wid, [])  # nothing of theirs runs any more
        for slot in self.slots:
            slot.process.join(timeout=0.1)
            if slot.process.exitcode is None:
                slot.process.kill()
                slot.process.join(timeout=5)
        for q in [*(slot.inbox for slot in self.slots), self._outbox]:
            q.cancel_join_thread()
            q.close()
        return late

    def _note(self, wid: int, extra: dict[str, Any]) -> None:
        """What a worker tells besides attempts: its cookies at the end, its progress."""
        if "cookies" in extra:
            add_cookie_lines(self._run_settings, extra["cookies"])
        if "progress" in extra:
            inflight_for(self._run_settings).remote[wid] = extra["progress"]
        if "pieces" in extra:
            self._mirror.update(wid, extra["pieces"])

    def _collect(self, timeout: float) -> Iterator[tuple[Job, Attempt]]:
        """Attempts waiting in the outbox, for jobs the parent still holds."""
        while True:
            try:
                wid, done, extra = (
                    self._outbox.get(timeout=timeout) if timeout else (self._outbox.get_nowait())
                )
            except (queue.Empty, OSError, ValueError):
                return
            if extra:
                self._note(wid, extra)
            held = self.slots[wid].held
            for index, attempt in done:
                job = held.pop(index, None)
                if job is not None:
                    yield job, attempt


def run(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
    """Fetch jobs on worker processes, yielding results as they complete."""
    concurrency = feeder.capacity
    # Each worker holds a backlog as long as its share of the transfers, so it never
    # idles while the parent answers: the feeder may hand out twice the concurrency.
    feeder.capacity = 2 * concurrency
    pool = _Pool(settings, concurrency)
    finished = False
    try:
        yield from drive(feeder, pool)
        finished = True
    finally:
        for job, attempt in pool.stop(abort=not finished):
            if not finished:
                feeder.cancelled(job, attempt)
