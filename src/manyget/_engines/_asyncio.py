"""Downloads on an asyncio event loop, over the same libcurl transfers as every engine:
the book's ``flags_asyncio.py``, and what ``adownload`` and ``AsyncDownloader`` run on the
caller's own loop.

Theory of operation: an :class:`AsyncLoop` drives libcurl's multi-socket interface from
the event loop (libcurl's socket and timer callbacks are mapped onto a selector the loop
watches and onto ``call_at``, so nothing blocks and no thread is used). Each attempt is a
reused :class:`~manyget._fetch.Transfer`, exactly as in the ``multi`` engine; its end is
noticed by ``info_read`` after each socket action, so an attempt costs no task, future or
coroutine. (``pycurl.AsyncCurlMulti`` does the same with one asyncio reader per socket
and a future per transfer; measured on 10,000 small files it cost 1.9x the CPU of the
``multi`` engine, see docs/benchmarks.md.) :func:`adrive` is the ``async`` twin of
:func:`~manyget._engines._drive.drive`: the same :class:`~manyget._hosts.Feeder` decides
what starts, what is retried and when. The synchronous engine (:func:`run`) runs
:func:`adrive` on a private loop on the calling thread, between the batches it yields;
where that thread's own loop is already running, the private loop runs on a thread of its
own and batches cross back through a queue, at most two ahead of the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import select
import selectors
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

from .._fetch import Transfers, preflight, rates_for, read_size, resume_paused
from .._hosts import Feeder
from .._jobs import Job
from .._policy import Settings
from .._results import Attempt, Result
from ._drive import MAX_WAIT, Batch, start_ready, timeout_for

__all__ = ["AsyncLoop", "adrive", "run"]


class AsyncLoop:
    """Concurrent libcurl transfers on the running event loop (an async Runner).

    libcurl's socket callback keeps a selector of our own up to date (a C call per
    change), and the event loop watches only that selector's descriptor: one reader for
    every connection, instead of asyncio handles made and dropped for each socket each
    time libcurl changes its interest (twice per file on a kept-alive connection). When
    the selector is ready, each ready socket goes to ``socket_action``; libcurl's timer
    callback keeps one ``call_later`` handle, moved only when libcurl wants to be called
    sooner (a call that comes early is harmless: libcurl asks again). Transfers that ended
    are read with ``info_read`` after each action; ``wait`` hands them to the driver.
    """

    def __init__(self, settings: Settings, capacity: int) -> None:
        import pycurl

        self.settings = settings
        self._pycurl = pycurl
        self._loop = asyncio.get_running_loop()
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._remove = pycurl.POLL_REMOVE
        self._selector = _Watch()
        self._loop.add_reader(self._selector.fileno(), self._on_ready)
        self._timer: asyncio.TimerHandle | None = None
        self._transfers = Transfers(settings, read_size(capacity))
        self._ended: list[tuple[Job, Attempt]] = []
        self._waiter: asyncio.Future[None] | None = None
        self._prefix = os.path.join(settings.dest, "")
        self._closed = False
        self._rates = rates_for(settings)
        self._resume: asyncio.TimerHandle | None = None  # bandwidth caps: next unpause

    def preflight(self, job: Job) -> Result | None:
        return preflight(job, self._prefix + job.name, self.settings)

    def start(self, job: Job) -> None:
        self._multi.add_handle(self._transfers.begin(job))  # libcurl sets a timer to start it

    # -- libcurl's callbacks: they run inside socket_action, so they only take notes

    def _on_socket(self, what: int, fd: int, multi: object, socketp: object) -> None:
        # POLL_IN is 1 and POLL_OUT 2, as EVENT_READ and EVENT_WRITE; REMOVE is 4 (none).
        self._selector.watch(fd, what & 3 if what != self._remove else 0)

    def _on_timer(self, timeout_ms: int) -> None:
        timer = self._timer
        if timeout_ms < 0:
            if timer is not None:
                timer.cancel()
                self._timer = None
            return
        when = self._loop.time() + timeout_ms / 1000
        if timer is not None:
            if timer.when() <= when:
                return  # fires sooner anyway; libcurl will ask for the rest then
            timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timeout)

    # -- the event loop's callbacks

    def _on_timeout(self) -> None:
        self._timer = None
        if not self._closed:
            self._multi.socket_action(self._pycurl.SOCKET_TIMEOUT, 0)
            self._collect()

    def _on_ready(self) -> None:
        if self._closed:
            return
        action = self._multi.socket_action
        for fd, mask in self._selector.ready():  # CSELECT_IN is 1, CSELECT_OUT 2
            action(fd, mask)
        self._collect()

    def _on_resume(self) -> None:
        self._resume = None
        rates = self._rates
        if not self._closed and rates is not None:
            resume_paused(rates, time.monotonic())  # libcurl's timer then moves them on
            self._collect()

    def _collect(self) -> None:
        """Read the transfers that ended from libcurl and end their attempts."""
        rates = self._rates
        if rates is not None and rates.paused and self._resume is None:
            delay = min(rates.delay(t.host, time.monotonic()) for t in rates.paused)
            self._resume = self._loop.call_later(delay, self._on_resume)
        multi = self._multi
        ended = self._ended
        before = len(ended)
        end = self._transfers.end
        remove = multi.remove_handle
        add = multi.add_handle  # libcurl's timer callback then starts the next hop
        while True:
            queued, ok, failed = multi.info_read()
            for curl in ok:
                remove(curl)
                got = end(curl)
                if got is None:  # a redirect: the same handle makes the next hop
                    add(curl)
                else:
                    ended.append(got)
            for curl, errno, message in failed:
                remove(curl)
                got = end(curl, errno, message)
                assert got is not None  # a failed transfer never hops
                ended.append(got)
            if not queued:
                break
        if len(ended) > before:
            self.poke()

    async def wait(self, timeout: float) -> list[tuple[Job, Attempt]]:
        """The attempts that ended, waiting up to ``timeout`` seconds for one."""
        if not self._ended:
            if timeout > 0:
                loop = self._loop
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
        """Wake :meth:`wait` now: an attempt ended, or new work may be ready."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def aclose(self) -> list[tuple[Job, Attempt]]:
        """Abandon what is running (partial files kept for a resume), free every handle;
        the attempts cancelled."""
        self._closed = True
        for handle in (self._timer, self._resume):
            if handle is not None:
                handle.cancel()
        self._timer = self._resume = None
        for curl in self._transfers.running():
            self._multi.remove_handle(curl)
        cancelled = self._transfers.close()
        self._loop.remove_reader(self._selector.fileno())
        self._multi.close()
        self._selector.close()
        return cancelled


class _Watch:
    """The sockets libcurl wants watched, in an epoll set (a selector elsewhere) whose one
    descriptor the event loop watches. Interest is 1 (read), 2 (write), 3, or 0 (none)."""

    def __init__(self) -> None:
        self._interest: dict[int, int] = {}
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._selector = None if self._epoll else selectors.DefaultSelector()

    def fileno(self) -> int:
        return self._epoll.fileno() if self._epoll else self._selector.fileno()  # type: ignore[union-attr]

    def watch(self, fd: int, interest: int) -> None:
        old = self._interest.get(fd, 0)
        if interest == old:
            return
        if self._epoll is not None:
            events = (select.EPOLLIN if interest & 1 else 0) | (
                select.EPOLLOUT if interest & 2 else 0
            )
            if not old:
                self._epoll.register(fd, events)
            elif interest:
                self._epoll.modify(fd, events)
            else:
                with contextlib.suppress(OSError):  # libcurl may have closed it already
                    self._epoll.unregister(fd)
        else:
            assert self._selector is not None
            if not old:
                self._selector.register(fd, interest)
            elif interest:
                self._selector.modify(fd, interest)
            else:
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self._selector.unregister(fd)
        if interest:
            self._interest[fd] = interest
        else:
            del self._interest[fd]

    def ready(self) -> list[tuple[int, int]]:
        """``(fd, mask)`` for each ready socket: 1 readable (or closed, or in error), 2
        writable."""
        if self._epoll is not None:
            hup = select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR
            return [
                (fd, (1 if ev & hup else 0) | (2 if ev & select.EPOLLOUT else 0))
                for fd, ev in self._epoll.poll(0)
            ]
        assert self._selector is not None
        return [(key.fd, events) for key, events in self._selector.select(0)]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        else:
            assert self._selector is not None
            self._selector.close()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


async def adrive(feeder: Feeder, runner: AsyncLoop) -> AsyncGenerator[Batch, None]:
    """The async twin of :func:`~manyget._engines._drive.drive` (empty batches too)."""
    clock = time.monotonic
    last = clock()
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
        if done or clock() - last >= MAX_WAIT:
            yield done
            last = clock()


class _End:
    """Put on the queue last; carries the loop thread's exception, if any."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def run(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
    """Fetch jobs on a private event loop, yielding results as they complete.

    The loop runs on the calling thread between the batches it yields, like the ``multi``
    engine's: no second thread, no hand-over. A thread whose own loop is running (code
    called from a coroutine, a notebook) cannot run another, so there the private loop
    gets a thread of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_here(feeder, settings)
    return _run_on_thread(feeder, settings)


def _run_here(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
    loop = asyncio.new_event_loop()
    runner: AsyncLoop | None = None
    batches: AsyncIterator[Batch] | None = None
    step: asyncio.Future[Batch] | None = None

    async def setup() -> AsyncLoop:
        return AsyncLoop(settings, feeder.capacity)

    try:
        runner = loop.run_until_complete(setup())
        batches = adrive(feeder, runner)
        while True:
            step = asyncio.ensure_future(anext(batches), loop=loop)
            try:
                batch = loop.run_until_complete(step)
            except StopAsyncIteration:
                return
            step = None
            yield batch
    finally:
        try:
            if step is not None and not step.done():  # interrupted inside the loop
                step.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(step)
            if isinstance(batches, AsyncGenerator):
                with contextlib.suppress(RuntimeError):
                    loop.run_until_complete(batches.aclose())
            if runner is not None:
                for job, attempt in loop.run_until_complete(runner.aclose()):
                    feeder.cancelled(job, attempt)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


def _run_on_thread(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
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
