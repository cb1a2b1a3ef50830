"""Downloads on an asyncio event loop, over the same libcurl transfers as every engine:
the book's ``flags_asyncio.py``, and what ``adownload`` and ``AsyncDownloader`` run on the
caller's own loop.

Theory of operation: an :class:`AsyncLoop` drives libcurl's multi-socket interface from
the event loop (``pycurl.AsyncCurlMulti``: libcurl's socket and timer callbacks become
``loop.add_reader``/``add_writer``/``call_later``, so nothing blocks and no thread is
used). Each attempt is a reused :class:`~manyget._fetch.Transfer`, exactly as in the
``multi`` engine; its end is a done-callback, not a task, so an attempt costs no
coroutine. :func:`adrive` is the ``async`` twin of :func:`~manyget._engines._drive.drive`:
the same :class:`~manyget._hosts.Feeder` decides what starts, what is retried and when.
The synchronous engine (:func:`run`) runs :func:`adrive` on a private loop in a thread of
its own, so it works the same from plain code, another thread, or inside a running loop;
batches of results cross back through a queue, at most two ahead of the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from .._fetch import Transfer, curl_error, preflight, read_size
from .._fetch._curl import CANCELLED
from .._hosts import Feeder
from .._jobs import Job
from .._policy import Settings
from .._results import Attempt, Result
from ._drive import Batch, start_ready, timeout_for

__all__ = ["AsyncLoop", "adrive", "run"]


class AsyncLoop:
    """Concurrent libcurl transfers on the running event loop (an async Runner)."""

    def __init__(self, settings: Settings, capacity: int) -> None:
        import pycurl

        self.settings = settings
        self._error = pycurl.error
        self._multi = pycurl.AsyncCurlMulti()
        self._spare: list[Transfer] = []
        self._handles: list[Transfer] = []
        self._active: dict[Any, Transfer] = {}
        self._ended: list[tuple[Job, Attempt]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._prefix = os.path.join(settings.dest, "")
        self._read = read_size(capacity)

    def preflight(self, job: Job) -> Result | None:
        return preflight(job, self._prefix + job.name, self.settings)

    def start(self, job: Job) -> None:
        if self._spare:
            transfer = self._spare.pop()
        else:
            transfer = Transfer(self.settings, read=self._read)
            self._handles.append(transfer)
        transfer.begin(job)
        future = self._multi.add_handle(transfer.curl)
        self._active[transfer.curl] = transfer
        future.add_done_callback(functools.partial(self._done, transfer))

    def _done(self, transfer: Transfer, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or self._active.pop(transfer.curl, None) is None:
            return  # removed by aclose, which ends the attempt itself
        exc = future.exception()
        errno, message = (0, "") if exc is None else curl_error(exc)
        job = transfer.job
        assert job is not None
        self._ended.append((job, transfer.end(errno, message)))
        self._spare.append(transfer)
        self.poke()

    async def wait(self, timeout: float) -> list[tuple[Job, Attempt]]:
        """The attempts that ended, waiting up to ``timeout`` seconds for one."""
        if not self._ended:
            if timeout > 0:
                loop = asyncio.get_running_loop()
                waiter = self._waiter = loop.create_future()
                timer = loop.call_later(timeout, _wake, waiter)
                try:
                    await waiter
                finally:
                    timer.cancel()
                    self._waiter = None
            else:
                await asyncio.sleep(0)
        ended, self._ended = self._ended, []
        return ended

    def poke(self) -> None:
        """Wake :meth:`wait` now: new work may be ready."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def aclose(self) -> list[tuple[Job, Attempt]]:
        """Abandon what is running (partial files kept for a resume), free every handle;
        the attempts cancelled."""
        active, self._active = self._active, {}
        cancelled: list[tuple[Job, Attempt]] = []
        for curl, transfer in active.items():
            with contextlib.suppress(Exception):
                self._multi.remove_handle(curl)
            job = transfer.job
            assert job is not None
            cancelled.append((job, transfer.end(CANCELLED, "cancelled")))
        await self._multi.aclose()
        for transfer in self._handles:
            transfer.close()
        return cancelled


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def adrive(feeder: Feeder, runner: AsyncLoop) -> AsyncIterator[Batch]:
    """The async twin of :func:`~manyget._engines._drive.drive`."""
    clock = time.monotonic
    while not feeder.finished:
        done: Batch = []
        now = clock()
        start_ready(feeder, runner, now, done)
        if feeder.running or (not done and not feeder.finished):
            # With nothing running this waits for new input too: poke() ends it at once.
            ended = await runner.wait(timeout_for(feeder, now, done))
            now = clock()
            for job, attempt in ended:
                result = feeder.ended(job, attempt, now)
                if result is not None:
                    done.append((job, result))
        if done:
            yield done


class _End:
    """Put on the queue last; carries the loop thread's exception, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def run(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
    """Fetch jobs on a private event loop in a thread, yielding results as they complete."""
    out: queue.SimpleQueue[Batch | _End] = queue.SimpleQueue()
    loop = asyncio.new_event_loop()
    room = asyncio.Semaphore(2)  # batches the caller has not taken yet
    main: asyncio.Task[None] | None = None
    started = threading.Event()

    async def pump() -> None:
        runner = AsyncLoop(settings, feeder.capacity)
        try:
            async for batch in adrive(feeder, runner):
                await room.acquire()
                out.put(batch)
        finally:
            for job, attempt in await runner.aclose():
                feeder.cancelled(job, attempt)

    def thread_main() -> None:
        nonlocal main
        asyncio.set_event_loop(loop)
        error: BaseException | None = None
        try:
            main = loop.create_task(pump())
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
            out.put(_End(error))

    thread = threading.Thread(target=thread_main, name="manyget-asyncio", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            item = out.get()
            if isinstance(item, _End):
                finished = True
                if item.error is not None:
                    raise item.error
                return
            with contextlib.suppress(RuntimeError):  # a finished loop needs no room back
                loop.call_soon_threadsafe(room.release)
            yield item
    finally:
        if not finished:
            started.wait()
            if main is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed in between
                    loop.call_soon_threadsafe(main.cancel)
        thread.join()
