"""Several worker processes, each running many downloads at once on a libcurl multi loop.

Theory of operation: one process per core (at most ``concurrency``) is started by a plain
``fork`` when the parent has a single thread, and otherwise through ``forkserver``
(``spawn`` where there is none), so no thread of the parent, such as an embedded server,
is ever forked. Each worker owns an inbox queue and runs a libcurl
multi loop (``_multi.MultiLoop``) of ``ceil(concurrency / workers)`` transfers: it starts
each job it receives and sends the results of each turn of its loop back together, each
tagged with its job's index, on one shared outbox. The parent reads the list lazily and
keeps every worker's backlog short (twice its share of the concurrency), always feeding
the least-loaded worker, so memory stays flat and a slow worker does not hold up the
others. Jobs and results travel in batches: a queue's per-message cost (pickling, a
feeder thread, a pipe write, a lock) is paid once per turn rather than once per file.
It remembers which jobs each worker holds: when a worker dies, those jobs are reported as
errors and a new worker takes its place.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
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

from .._hosts import HostGate
from .._jobs import Job
from .._policy import Settings
from .._results import Result
from ._multi import MultiLoop
from ._window import failed

__all__ = ["run"]

_POLL = 0.25  # seconds between checks that every worker is still alive
_REFILL = 0.005  # longest wait on sockets while a worker could take another job


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
    loop = MultiLoop(settings, capacity)
    pending: deque[Job] = deque()  # received, waiting for a free transfer
    closed = False
    checked = time.monotonic()
    try:
        while not closed or loop.load or pending:
            now = time.monotonic()
            if now - checked > _POLL:
                checked = now
                if not _parent_alive(parent):
                    return
            done: list[tuple[int, Result]] = []
            while loop.free and (pending or not closed):
                if not pending:
                    try:
                        # Wait only when idle, and never for long: the parent may be gone.
                        batch = inbox.get(block=not loop.load, timeout=_POLL)
                    except queue.Empty:
                        break
                    if batch is None:
                        closed = True
                        break
                    pending.extend(batch)
                job = pending.popleft()
                answer = loop.add(job)
                if answer is not None:
                    done.append((job.index, answer))
            # Short waits while more jobs may arrive; longer ones once the inbox is closed.
            for job, result in loop.step(1.0 if closed and not pending else _REFILL):
                done.append((job.index, result))
            if done:
                outbox.put((wid, done))
    finally:
        loop.close()


@dataclass
class _Slot:
    """The parent's view of one worker: its process, inbox and the jobs it holds."""

    process: Any
    inbox: Any
    held: dict[int, Job] = field(default_factory=dict)


def run(gate: HostGate, settings: Settings, concurrency: int) -> Iterator[Result]:
    """Fetch jobs on worker processes, yielding results as they complete."""
    ctx = _context()
    nworkers = max(1, min(os.cpu_count() or 1, concurrency))
    capacity = math.ceil(concurrency / nworkers)
    backlog = 2 * capacity
    outbox: Any = ctx.Queue()
    slots: list[_Slot] = []

    def start(wid: int) -> _Slot:
        inbox: Any = ctx.Queue()
        process = ctx.Process(
            target=_worker,
            args=(wid, inbox, outbox, settings, capacity, os.getpid()),
            name=f"manyget-worker-{wid}",
            daemon=True,
        )
        process.start()
        return _Slot(process, inbox)

    exhausted = announced = False  # no more jobs; the workers were told so (once)

    def feed() -> None:
        nonlocal exhausted, announced
        now = time.monotonic()
        batches: dict[int, list[Job]] = {}
        while not exhausted:
            wid = min(range(len(slots)), key=lambda w: len(slots[w].held))
            if len(slots[wid].held) >= backlog:
                break
            job = gate.take(now)
            if job is None:
                exhausted = True
                break
            if not isinstance(job, Job):
                break  # WAIT: a host limit or pause; asked again after each result
            slots[wid].held[job.index] = job
            batches.setdefault(wid, []).append(job)
        for wid, jobs in batches.items():
            slots[wid].inbox.put(jobs)
        if exhausted and not announced:
            announced = True
            for slot in slots:
                slot.inbox.put(None)

    finished = False
    try:
        slots.extend(start(wid) for wid in range(nworkers))
        feed()
        while not exhausted or any(slot.held for slot in slots):
            wake = None if exhausted else gate.wake_in(time.monotonic())
            try:
                wid, done = outbox.get(timeout=_POLL if wake is None else min(_POLL, wake))
            except queue.Empty:
                for job, lost in _replace_dead(slots, start, settings, exhausted):
                    gate.done(job, None, time.monotonic())
                    yield lost
                feed()
                continue
            held = slots[wid].held
            for index, result in done:
                job = held.pop(index, None)
                if job is not None:
                    gate.done(job, result, time.monotonic())
                yield result
            feed()
        finished = True
    finally:
        _stop(slots, outbox, abort=not finished)


def _replace_dead(
    slots: list[_Slot], start: Any, settings: Settings, exhausted: bool
) -> Iterator[tuple[Job, Result]]:
    for wid, slot in enumerate(slots):
        code = slot.process.exitcode
        if code is None or not slot.held:
            continue
        lost = list(slot.held.values())
        slots[wid] = start(wid)
        if exhausted:
            slots[wid].inbox.put(None)
        for job in lost:
            yield job, failed(job, settings, ChildProcessError(f"worker process exited ({code})"))


def _stop(slots: list[_Slot], outbox: Any, *, abort: bool) -> None:
    """Close every inbox; when the run was cut short, also stop the work in flight."""
    for slot in slots:
        with contextlib.suppress(Exception):
            slot.inbox.put(None)
    for slot in slots:
        if abort and slot.process.exitcode is None:
            slot.process.terminate()  # SIGTERM: the worker cleans up and exits
        slot.process.join(timeout=5)
        if slot.process.exitcode is None:
            slot.process.kill()
            slot.process.join(timeout=5)
    for q in [*(slot.inbox for slot in slots), outbox]:
        q.cancel_join_thread()
        q.close()
