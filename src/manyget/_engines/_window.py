"""A bounded window over any ``concurrent.futures.Executor``.

Theory of operation: instead of submitting one future per URL up front (a million URLs
would be a million futures), at most ``window`` futures exist at a time. Each time one
completes its result is yielded and one more job is submitted, so memory stays flat and
results come back in completion order, like ``as_completed``. A future that raises (a
worker process that died, an executor shut down under us) still yields an ``ERROR``
result for its job, so every URL is accounted for. Closing the generator cancels what
has not started.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait

from .._fetch import Fetcher
from .._hosts import HostGate
from .._jobs import Job
from .._policy import Settings
from .._results import Result, Status

__all__ = ["fetch_job", "run_executor"]

_local = threading.local()


def fetch_job(job: Job, settings: Settings, abort: threading.Event | None = None) -> Result:
    """Download one job with this thread's own reused fetcher (picklable entry point).

    ``abort``, when set by another thread, stops the download in flight.
    """
    fetchers: dict[tuple[Settings, int], Fetcher] | None = getattr(_local, "fetchers", None)
    if fetchers is None:
        fetchers = _local.fetchers = {}
    key = (settings, id(abort))
    fetcher = fetchers.get(key)
    if fetcher is None:
        fetcher = fetchers[key] = Fetcher(settings, abort)
    return fetcher.fetch(job)


def failed(job: Job, settings: Settings, exc: BaseException) -> Result:
    """The result for a job whose worker failed before producing one."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    path = os.path.join(settings.dest, job.name)
    return Result(job.url, path, Status.ERROR, error=message)


def run_executor(
    executor: Executor,
    gate: HostGate,
    settings: Settings,
    window: int,
    abort: threading.Event | None = None,
) -> Iterator[Result]:
    """Run ``fetch_job`` for every job on ``executor``, at most ``window`` at a time.

    ``abort`` (threads in this process only) is set when the run ends early, so downloads
    in flight stop instead of running to completion.
    """
    pending: dict[Future[Result], Job] = {}
    extra = () if abort is None else (abort,)
    exhausted = False

    def fill() -> None:
        nonlocal exhausted
        now = time.monotonic()
        while len(pending) < window:
            job = gate.take(now)
            if job is None:
                exhausted = True
            if not isinstance(job, Job):
                return
            pending[executor.submit(fetch_job, job, settings, *extra)] = job

    try:
        fill()
        while pending or not exhausted:
            if not pending:  # every host with jobs left is paused
                time.sleep(min(1.0, gate.wake_in(time.monotonic()) or 0.05))
                fill()
                continue
            # With a slow input, come back for its next line even if nothing finished.
            wake = None if exhausted else gate.wake_in(time.monotonic())
            done, _ = wait(pending, timeout=wake, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # the worker failed, not the download
                    result = failed(job, settings, exc)
                gate.done(job, result, time.monotonic())
                yield result
            fill()
    finally:
        for future in pending:
            future.cancel()
        if abort is not None:
            abort.set()
