"""Several worker processes, each running many downloads at once on its own threads.

Theory of operation: one process per core (at most ``concurrency``) is started through
``forkserver`` (``spawn`` where there is none), so no thread of the parent, such as an
embedded server, is ever forked. Each worker owns an inbox queue and a small thread pool
of ``ceil(concurrency / workers)`` libcurl fetchers; it submits each job it receives to
that pool and sends each result back, tagged with the job's index, on one shared outbox
as soon as it completes. The parent reads the list lazily and keeps every worker's
backlog short (twice its thread count), always feeding the least-loaded worker, so memory
stays flat and a slow worker does not hold up the others. It remembers which jobs each
worker holds: when a worker dies, those jobs are reported as errors and a new worker
takes its place.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import queue
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from .._jobs import Job
from .._policy import Settings
from .._results import Result
from ._window import failed, fetch_job

__all__ = ["run"]

_POLL = 0.25  # seconds between checks that every worker is still alive


def _context() -> Any:
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def _worker(wid: int, inbox: Any, outbox: Any, settings: Settings, threads: int) -> None:
    # The parent handles Ctrl-C and stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def one(job: Job) -> None:
        try:
            result = fetch_job(job, settings)
        except Exception as exc:
            result = failed(job, settings, exc)
        outbox.put((wid, job.index, result))

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="manyget") as pool:
        for job in iter(inbox.get, None):
            pool.submit(one, job)


@dataclass
class _Slot:
    """The parent's view of one worker: its process, inbox and the jobs it holds."""

    process: Any
    inbox: Any
    held: dict[int, Job] = field(default_factory=dict)


def run(jobs: Iterator[Job], settings: Settings, concurrency: int) -> Iterator[Result]:
    """Fetch jobs on worker processes, yielding results as they complete."""
    ctx = _context()
    nworkers = max(1, min(os.cpu_count() or 1, concurrency))
    threads = math.ceil(concurrency / nworkers)
    backlog = 2 * threads
    outbox: Any = ctx.Queue()
    slots: list[_Slot] = []

    def start(wid: int) -> _Slot:
        inbox: Any = ctx.Queue()
        process = ctx.Process(
            target=_worker,
            args=(wid, inbox, outbox, settings, threads),
            name=f"manyget-worker-{wid}",
            daemon=True,
        )
        process.start()
        return _Slot(process, inbox)

    exhausted = False

    def feed() -> None:
        nonlocal exhausted
        while not exhausted:
            slot = min(slots, key=lambda s: len(s.held))
            if len(slot.held) >= backlog:
                return
            job = next(jobs, None)
            if job is None:
                exhausted = True
                for each in slots:
                    each.inbox.put(None)
                return
            slot.held[job.index] = job
            slot.inbox.put(job)

    try:
        slots.extend(start(wid) for wid in range(nworkers))
        feed()
        while any(slot.held for slot in slots):
            try:
                wid, index, result = outbox.get(timeout=_POLL)
            except queue.Empty:
                yield from _replace_dead(slots, start, settings, exhausted)
                feed()
                continue
            slots[wid].held.pop(index, None)
            yield result
            feed()
    finally:
        _stop(slots, outbox)


def _replace_dead(
    slots: list[_Slot], start: Any, settings: Settings, exhausted: bool
) -> Iterator[Result]:
    for wid, slot in enumerate(slots):
        code = slot.process.exitcode
        if code is None or not slot.held:
            continue
        lost = list(slot.held.values())
        slots[wid] = start(wid)
        if exhausted:
            slots[wid].inbox.put(None)
        for job in lost:
            yield failed(job, settings, ChildProcessError(f"worker process exited ({code})"))


def _stop(slots: list[_Slot], outbox: Any) -> None:
    for slot in slots:
        with contextlib.suppress(Exception):
            slot.inbox.put(None)
    for slot in slots:
        slot.process.join(timeout=5)
        if slot.process.exitcode is None:
            slot.process.terminate()
            slot.process.join(timeout=5)
    for q in [*(slot.inbox for slot in slots), outbox]:
        q.cancel_join_thread()
        q.close()
