"""Attempts on any ``concurrent.futures.Executor``, at most a bounded window at a time.

Theory of operation: instead of submitting one future per URL up front (a million URLs
would be a million futures), the :class:`~manyget._hosts.Feeder` hands out at most
``capacity`` attempts; each becomes one future running :func:`attempt_job`, which makes a
single attempt with the worker thread's own reused libcurl handle. Retries come back
through the feeder like any other attempt. A future that raises (a worker process that
died, an executor shut down under us) becomes a failed attempt, so every URL is
accounted for. Closing the run cancels what has not started.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait

from .._fetch import Blocking, preflight
from .._hosts import Feeder
from .._jobs import Job
from .._policy import Settings
from .._results import Attempt, AttemptKind, Result
from ._drive import Batch, drive

__all__ = ["ExecutorRunner", "attempt_job", "failed_attempt", "run_executor"]

_local = threading.local()


def attempt_job(job: Job, settings: Settings, abort: threading.Event | None = None) -> Attempt:
    """One attempt at ``job`` with this thread's own reused handle (picklable entry point).

    ``abort``, when set by another thread, stops the attempt in flight.
    """
    runners: dict[tuple[Settings, int], Blocking] | None = getattr(_local, "runners", None)
    if runners is None:
        runners = _local.runners = {}
    key = (settings, id(abort))
    runner = runners.get(key)
    if runner is None:
        runner = runners[key] = Blocking(settings, abort)
    return runner.attempt(job)


def failed_attempt(exc: BaseException) -> Attempt:
    """The attempt of a job whose worker failed before producing one."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Attempt(http_status=None, error=message, kind=AttemptKind.FATAL)


class ExecutorRunner:
    """A :class:`~manyget._engines._drive.Runner` over an executor's futures."""

    def __init__(
        self, executor: Executor, settings: Settings, abort: threading.Event | None = None
    ) -> None:
        self._executor = executor
        self._settings = settings
        self._prefix = os.path.join(settings.dest, "")
        self._extra = () if abort is None else (abort,)
        self._pending: dict[Future[Attempt], Job] = {}

    def preflight(self, job: Job) -> Result | None:
        return preflight(job, self._prefix + job.name, self._settings)

    def start(self, job: Job) -> None:
        future = self._executor.submit(attempt_job, job, self._settings, *self._extra)
        self._pending[future] = job

    def wait(self, timeout: float) -> list[tuple[Job, Attempt]]:
        done, _ = wait(self._pending, timeout=timeout, return_when=FIRST_COMPLETED)
        ended: list[tuple[Job, Attempt]] = []
        for future in done:
            job = self._pending.pop(future)
            try:
                attempt = future.result()
            except Exception as exc:  # the worker failed, not the download
                attempt = failed_attempt(exc)
            ended.append((job, attempt))
        return ended

    def cancel(self, *, wait: bool) -> list[tuple[Job, Attempt]]:
        """Cancel what has not started; with ``wait`` (the caller has set ``abort``, so
        they stop within a second), the attempts that were running, once stopped."""
        running = [(f, job) for f, job in self._pending.items() if not f.cancel()]
        self._pending.clear()
        stopped: list[tuple[Job, Attempt]] = []
        for future, job in running if wait else ():
            try:
                stopped.append((job, future.result()))
            except Exception:  # the worker failed: nothing was kept
                continue
        return stopped


def run_executor(
    executor: Executor,
    feeder: Feeder,
    settings: Settings,
    abort: threading.Event | None = None,
) -> Iterator[Batch]:
    """Run attempts on ``executor``, at most ``feeder.capacity`` at a time.

    ``abort`` (threads in this process only) is set when the run ends early, so attempts
    in flight stop instead of running to completion.
    """
    runner = ExecutorRunner(executor, settings, abort)
    try:
        yield from drive(feeder, runner)
    finally:
        if abort is not None:
            abort.set()
        for job, attempt in runner.cancel(wait=abort is not None):
            feeder.cancelled(job, attempt)
