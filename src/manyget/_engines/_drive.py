"""The driving loop every synchronous engine shares, and the contract of a runner.

Theory of operation: a runner knows how to start one attempt at a job and how to wait
for attempts to end (a libcurl multi handle, a thread pool, worker processes). It knows
nothing of lists, per-host limits, retries or results: the :class:`~manyget._hosts.Feeder`
decides what starts next and what an ended attempt means, and :func:`drive` joins the two,
turn by turn. Each turn starts every attempt that may start, waits for the runner at
most as long as the feeder allows, and yields the jobs that concluded in that turn as one
batch (engines that cross a process boundary send a batch as one message); a turn with
none yields an empty batch once a second, so the consumer is never starved of control. The asyncio
engine has the same loop as an ``async`` twin, :func:`~manyget._engines._asyncio.adrive`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Protocol

from .._hosts import Feeder
from .._jobs import Job
from .._results import Attempt, Result

__all__ = [
    "IDLE_WAIT",
    "MAX_WAIT",
    "Batch",
    "Runner",
    "Starter",
    "drive",
    "start_ready",
    "timeout_for",
]

Batch = list[tuple[Job, Result]]
MAX_WAIT = 1.0  # the longest a driver blocks: Ctrl-C and new input are seen at least this often
IDLE_WAIT = 0.05  # nothing runs and the feeder named no time: look again this soon


class Starter(Protocol):
    """Starts attempts: the half of a runner that both twins of the loop share."""

    def preflight(self, job: Job) -> Result | None:
        """The result of a job needing no request (a bad URL, a file already complete)."""

    def start(self, job: Job) -> None:
        """Begin one attempt at ``job``."""


class Runner(Starter, Protocol):
    """Runs attempts; see :func:`drive`."""

    def wait(self, timeout: float) -> list[tuple[Job, Attempt]]:
        """Block at most ``timeout`` seconds; the attempts that ended meanwhile."""


def start_ready(feeder: Feeder, runner: Starter, now: float, done: Batch) -> None:
    """Start every attempt the feeder allows at ``now``; answers needing no request go to
    ``done`` (at most ``feeder.capacity`` per turn, so a list of complete files cannot
    pile up results in memory)."""
    limit = len(done) + feeder.capacity
    while len(done) < limit:
        item = feeder.next(now)
        if item is None:
            return
        job, first = item
        if first:
            known = feeder.known
            early = known(job) if known is not None else None
            if early is None:
                early = runner.preflight(job)
            if early is not None:
                done.append((job, feeder.skipped(job, early, now)))
                continue
        runner.start(job)


def timeout_for(feeder: Feeder, now: float, done: Batch) -> float:
    """How long a driver may block on I/O in this turn."""
    if done:
        return 0.0  # results wait to be yielded: only collect what has ended already
    wanted = feeder.wait(now)
    if wanted is None:
        return MAX_WAIT if feeder.running else IDLE_WAIT
    return min(MAX_WAIT, wanted)


def drive(feeder: Feeder, runner: Runner) -> Iterator[Batch]:
    """Run every job the feeder hands out on ``runner``; yield each turn's results (an
    empty batch after :data:`MAX_WAIT` without one, so a consumer with work of its own,
    the upload stage, gets control while long transfers run)."""
    clock = time.monotonic
    last = clock()
    while not feeder.finished:
        done: Batch = []
        now = clock()
        start_ready(feeder, runner, now, done)
        if feeder.running:
            ended = runner.wait(timeout_for(feeder, now, done))
            now = clock()
            for job, attempt in ended:
                result = feeder.ended(job, attempt, now)
                if result is not None:
                    done.append((job, result))
        elif not done and not feeder.finished:
            time.sleep(timeout_for(feeder, now, done))  # every host paused, or no input yet
        if done or clock() - last >= MAX_WAIT:
            yield done
            last = clock()
