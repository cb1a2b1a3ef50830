"""Coroutines on one event loop over aiohttp: the book's ``flags_asyncio.py``.

Theory of operation: the loop runs in a thread of its own, so this engine works the same
when called from plain code, from another thread, or from inside a running event loop
(a Jupyter cell). Results cross back to the caller through a thread-safe queue. A job
holds one of ``concurrency`` slots from the moment it starts until the caller has taken
its result, so neither tasks nor finished results pile up when the caller is slow, and
jobs are pulled from the input only as slots free up.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Iterator

from .._fetch import AsyncFetcher
from .._hosts import HostGate
from .._jobs import Job
from .._policy import Settings
from .._results import Result
from ._window import failed

__all__ = ["run"]


class _Done:
    """Put on the queue last; carries the loop thread's exception, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def _produce(
    gate: HostGate,
    settings: Settings,
    concurrency: int,
    slots: asyncio.Semaphore,
    out: queue.SimpleQueue[Result | _Done],
) -> None:
    tasks: set[asyncio.Task[None]] = set()
    finished = asyncio.Event()  # set whenever a download ends: the gate may open

    async def one(fetcher: AsyncFetcher, job: Job) -> None:
        try:
            result = await fetcher.afetch(job)
        except Exception as exc:
            result = failed(job, settings, exc)
        gate.done(job, result, time.monotonic())
        finished.set()
        out.put(result)

    async with AsyncFetcher(settings, concurrency) as fetcher:
        try:
            while True:
                await slots.acquire()
                job = gate.take(time.monotonic())
                if not isinstance(job, Job):
                    slots.release()
                    if job is None:
                        break
                    # WAIT: a host is full or paused; try again when a download ends.
                    finished.clear()
                    wake = gate.wake_in(time.monotonic())
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(finished.wait(), min(1.0, wake or 1.0))
                    continue
                task = asyncio.create_task(one(fetcher, job))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def run(gate: HostGate, settings: Settings, concurrency: int) -> Iterator[Result]:
    """Fetch jobs as asyncio tasks on a private loop, yielding results as they complete."""
    out: queue.SimpleQueue[Result | _Done] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()
    slots = asyncio.Semaphore(concurrency)
    main: asyncio.Task[None] | None = None
    started = threading.Event()

    def thread_main() -> None:
        nonlocal main
        asyncio.set_event_loop(loop)
        error: BaseException | None = None
        try:
            main = loop.create_task(_produce(gate, settings, concurrency, slots, out))
            started.set()
            loop.run_until_complete(main)
        except asyncio.CancelledError:
            pass
        except BaseException as exc:
            error = exc
        finally:
            started.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            out.put(_Done(error))

    thread = threading.Thread(target=thread_main, name="manyget-asyncio", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            item = out.get()
            if isinstance(item, _Done):
                finished = True
                if item.error is not None:
                    raise item.error
                return
            with contextlib.suppress(RuntimeError):  # a finished loop needs no slot back
                loop.call_soon_threadsafe(slots.release)
            yield item
    finally:
        if not finished:
            started.wait()
            if main is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed in between
                    loop.call_soon_threadsafe(main.cancel)
        thread.join()
