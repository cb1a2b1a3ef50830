"""The session: :class:`Downloader` (``concurrent.futures`` style) and
:class:`AsyncDownloader` (on the caller's event loop), and the one pipeline under both.

Theory of operation: every entry point (``download``, ``iter_download``, the CLI, the
async functions, the two sessions) runs the same pipeline, :func:`pipeline`: lines are
planned into jobs (:func:`~manyget._jobs.plan_lines`), a :class:`~manyget._hosts.HostGate`
applies the per-host limits, a :class:`~manyget._hosts.Feeder` hands out attempts and
concludes results, and an engine moves the bytes. There are two ways in:

- *Streaming* (``Downloader.iterate``, ``download``, ``iter_download``, the CLI): the
  caller's iterable is the input and the engine runs on the calling thread; results come
  back in completion order. No future exists, so a million URLs cost a few hundred jobs'
  memory. A source that may block (an iterator, a pipe) is read on a thread of its own
  (:class:`~manyget._input.ReadAhead`), so it never stalls transfers in flight.
- *Futures* (``Downloader.submit``, ``map``, ``as_completed``): ``submit`` puts the URL in
  a bounded queue (blocking while it is full: back-pressure) and returns a real
  :class:`concurrent.futures.Future`. One engine runs on a background thread over that
  queue. A job's future turns *running* when the gate hands the job out (a future
  cancelled before that is skipped) and *finished* when its result is known.

:class:`AsyncDownloader` and ``aiter_download`` run the asyncio engine's loop
(:func:`~manyget._engines._asyncio.adrive`) on the caller's running loop: nothing blocks
it, and ``fetch`` wakes the loop at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import queue
import threading
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
    Sized,
)
from pathlib import Path
from typing import TYPE_CHECKING, Unpack

from ._exceptions import DestinationError, DiskFull, UsageError
from ._hosts import Feeder, HostGate
from ._jobs import PENDING, Job, _Pending, clean_name, plan_lines
from ._options import Config, Options, configure
from ._progress import Bar, Observer
from ._results import AttemptKind, Report, Result, Tally

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future

    from ._engines._asyncio import AsyncLoop
    from ._engines._drive import Batch
    from ._journal import Journal
    from ._policy import Settings
    from ._store import Stage, Store

__all__ = [
    "AsyncDownloader",
    "Downloader",
    "ProgressArg",
    "adownload",
    "aiter_download",
    "download",
    "iter_download",
    "pipeline",
    "prepare_dest",
]

ProgressArg = bool | Observer | Sequence[Observer]
Line = tuple[int | None, str]
_IDLE_INPUT_WAIT = 0.05  # an idle session waits on its queue this long between looks


def prepare_dest(dest: str | os.PathLike[str]) -> Path:
    """Check ``dest`` is a writable folder before any request, creating it if needed.

    Like ``mkdir`` without ``-p``, only the last level is created: a mistyped path fails
    instead of growing a new tree somewhere unexpected.
    """
    path = Path(dest)
    try:
        path.mkdir(exist_ok=True)
    except FileExistsError:
        raise DestinationError(f"destination {str(path)!r} is not a folder") from None
    except FileNotFoundError:
        raise DestinationError(
            f"cannot create destination {str(path)!r}: its parent folder does not exist"
        ) from None
    except OSError as exc:
        raise DestinationError(
            f"cannot create destination {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    if not path.is_dir():
        raise DestinationError(f"destination {str(path)!r} is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise DestinationError(f"destination {str(path)!r} is not writable")
    return path


def _for_run(config: Config) -> Config:
    """``config`` for one run over its destination: its settings say ``fresh`` when the
    folder held nothing at the start (no name of the run can be there before the run
    puts it there, so first attempts skip the look for a complete file)."""
    settings = config.settings
    if settings.overwrite or settings.content_disposition or not _empty(settings.dest):
        return config  # (a server-chosen name may be any later job's name)
    return dataclasses.replace(config, settings=dataclasses.replace(settings, fresh=True))


def _empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _open_dest(dest: str | os.PathLike[str], options: Options) -> tuple[Path, Store | None]:
    """The local folder files are written to, and the object store they go to from there
    (None for a local destination; see ``_store``)."""
    from ._store import is_url, local_path

    text = os.fspath(dest)
    if not is_url(text):
        return prepare_dest(local_path(text) or text), None
    from ._store import open_store

    store = open_store(text, options.get("staging"), options.get("storage_options"))
    return _staging(store.staging, options), store


def _staging(staging: str | os.PathLike[str] | None, options: Options) -> Path:
    """The local folder of a run into an object store: ``staging``, or when there is
    none, the temporary files' folder (each run makes its own private folder there)."""
    if staging is None:
        if options.get("journal") is True:  # DEST/.manyget-journal.sqlite: not in a store
            raise UsageError(
                "--journal needs a FILE with an object-store destination "
                "(or --staging DIR, which then holds it)"
            )
        import tempfile

        return Path(tempfile.gettempdir())
    return prepare_dest(os.fspath(staging))


def _observers(progress: ProgressArg) -> list[Observer]:
    if progress is True:
        return [Bar()]
    if progress is False:
        return []
    if isinstance(progress, Sequence):
        return list(progress)
    return [progress]


def _open_journal(config: Config) -> Journal | None:
    """The run's journal, when it keeps one (opened before any request)."""
    if config.journal is None:
        return None
    from ._journal import Journal

    dest = config.settings.dest if config.store is None else config.store.url
    return Journal(config.journal, dest)


def _feeder(
    config: Config,
    jobs: Iterator[Job | _Pending],
    accept: Callable[[Job], bool] | None = None,
    journal: Journal | None = None,
) -> Feeder:
    concurrency = config.limits.concurrency
    limits = config.limits
    jobs = _checked(jobs, config.checksums)
    gate = HostGate(
        jobs, limits.per_host, lookahead=max(1024, 16 * concurrency), max_rps=limits.max_rps
    )
    prefix = os.path.join(config.settings.dest, "")
    feeder = Feeder(gate, config.settings.retry, concurrency, prefix, accept)
    if config.settings.split != 1:  # N ranges, or automatic
        from ._fetch import inflight_for, split_files

        feeder.split_with(*split_files(config.settings))
        feeder.split_progress = inflight_for(config.settings).split_progress
    if journal is not None and not config.settings.overwrite:
        feeder.known = journal.known  # done in an earlier run: skipped, the file untouched
    return feeder


def pipeline(config: Config, feeder: Feeder) -> Iterator[Batch]:
    """Run ``feeder``'s jobs on the configured engine (or executor), batch by batch."""
    if config.executor is not None:
        from ._engines._window import run_executor  # concurrent.futures: only when asked

        feeder.capacity *= 2  # an executor of unknown size: keep its queue fed
        return run_executor(config.executor, feeder, config.settings)
    from ._engines import get_engine

    run = get_engine(config.engine)
    if config.engine == "dask":  # the scheduler's address, and workers upload to the store
        from ._engines._dask import run_on

        return run_on(config.scheduler, feeder, config.settings, config.store)
    return run(feeder, config.settings)


def _lines(urls: Iterable[str], ahead: int) -> Iterable[Line | _Pending]:
    """URLs as planning input; a source that may block (an iterator, not a list) is read
    on a thread of its own, at most ``ahead`` URLs ahead of the downloads."""
    if isinstance(urls, str):
        urls = [urls]
    pairs = ((None, url.strip()) for url in urls)
    if isinstance(urls, Sized):
        return pairs
    from ._input import ReadAhead

    return ReadAhead(pairs, ahead)


def _entry(url: str, sha256: str | None, headers: Mapping[str, str] | None) -> str:
    """A list entry for ``url`` and its own options (see ``_jobs.parse_entry``)."""
    fields = [url.strip()]
    if sha256 is not None:
        fields.append(f"sha256={sha256}")
    for header, value in (headers or {}).items():
        if any(c in f"{header}{value}" for c in "\t\r\n\0"):
            raise UsageError(f"bad header {header!r}: a name, then a value on one line")
        fields.append(f"header={header}: {value}")
    return "\t".join(fields)


def _checked(
    jobs: Iterator[Job | _Pending], sums: Mapping[str, str] | None
) -> Iterator[Job | _Pending]:
    """``jobs``, each with the checksum ``sums`` gives its name, unless the list gave one."""
    if not sums:
        return jobs
    return (
        dataclasses.replace(job, sha256=sums[job.name])
        if isinstance(job, Job) and job.sha256 is None and job.name in sums
        else job
        for job in jobs
    )


def _named(jobs: Iterator[Job | _Pending], names: dict[int, str]) -> Iterator[Job | _Pending]:
    """``jobs``, with the name the caller chose (by job index) instead of the URL's."""
    for job in jobs:
        if names and isinstance(job, Job):
            name = names.pop(job.index, None)
            if name is not None:
                job = dataclasses.replace(job, name=clean_name(name))
        yield job


def _stop_if_disk_full(result: Result) -> None:
    if result.history and result.history[-1].kind is AttemptKind.DISK:
        # Every other download would fail the same way: stop here. Closing the engine
        # cancels the transfers in flight and keeps their partial files.
        raise DiskFull(f"{result.error}; the run stopped, partial files are kept")


def _save_cookies(settings: Settings, jar: str) -> None:
    """Write the run's cookies to ``jar`` in the Netscape format, atomically: a reader
    sees the old jar or the new one, never half of one."""
    import tempfile

    from ._fetch import cookie_lines

    lines = cookie_lines(settings)
    folder = os.path.dirname(os.path.abspath(jar))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".manyget-cookies-", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("# Netscape HTTP Cookie File\n# written by manyget\n\n")
            f.writelines(line + "\n" for line in lines)
        os.chmod(tmp, 0o600)  # cookies are credentials
        os.replace(tmp, jar)
    except OSError as exc:
        raise DestinationError(f"cannot write cookie jar {jar!r}: {exc.strerror or exc}") from None


def _probe(settings: Settings) -> Callable[[], list[tuple[str, int, int | None]]]:
    from ._fetch import BIG_BODY, inflight_for

    inflight = inflight_for(settings)
    return lambda: inflight.snapshot(BIG_BODY)


class _Run:
    """What one run tells its observers and adds up; every face of the session uses it."""

    def __init__(
        self,
        observers: list[Observer],
        total: int | None,
        tally: Tally | None = None,
        settings: Settings | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.observers = observers
        self._settings = settings
        self._journal = journal
        if settings is not None:
            for observer in observers:
                watch = getattr(observer, "watch", None)
                if watch is not None:  # byte bars of big files in flight
                    watch(_probe(settings))
        self.tally = tally if tally is not None else Tally()
        self._start = time.monotonic()
        for observer in observers:
            observer.started(total)

    def result(self, result: Result, job: Job | None = None) -> None:
        if self._journal is not None and job is not None:
            self._journal.record(job, result)
        self.tally.add(result)
        for observer in self.observers:
            observer.result(result)

    def finish(self, feeder: Feeder) -> None:
        """The run ended: count what cancelled transfers kept, and report."""
        if self._journal is not None:
            self._journal.close()
        self.tally.keep(feeder.kept_files, feeder.kept_bytes)
        self.tally.host_bound += feeder.host_bound
        if self._settings is not None and self._settings.request.cookie_jar is not None:
            _save_cookies(self._settings, self._settings.request.cookie_jar)
        report = self.tally.report(time.monotonic() - self._start)
        for observer in self.observers:
            observer.finished(report)


class Downloader:
    """A download session: one engine, one destination, one set of options.

    >>> with manyget.Downloader("downloads", engine="threads") as d:  # doctest: +SKIP
    ...     futures = [d.submit(url) for url in urls]
    ...     for future in concurrent.futures.as_completed(futures):
    ...         print(future.result().status)

    ``submit`` returns a :class:`concurrent.futures.Future` of a :class:`Result`, so
    ``as_completed``, ``wait`` and ``add_done_callback`` work; ``map`` yields results in
    input order like ``Executor.map``; ``as_completed`` as they finish; ``iterate`` and
    ``download`` stream a whole list on the calling thread (the fastest way, no futures).
    Leaving the ``with`` block waits for every submitted download. ``submit`` may be
    called from several threads at once; it blocks while ``queue_size`` URLs wait, so
    memory stays bounded whatever is submitted. Options are those of ``download``.
    With an object-store ``dest`` (``s3://...``), ``store`` is its
    :class:`~manyget._store.Store` and ``dest`` the local folder runs stage files in.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str] = "downloads",
        *,
        progress: ProgressArg = False,
        queue_size: int | None = None,
        **options: Unpack[Options],
    ) -> None:
        self.dest, self.store = _open_dest(dest, options)
        self.config = configure(self.dest, options)
        self._stage: Stage | None = None  # the futures' run's uploads (store only)
        self._progress = progress
        concurrency = self.config.limits.concurrency
        self._window = max(64, 2 * concurrency)
        size = queue_size if queue_size is not None else self._window
        if size < 1:
            raise UsageError(f"queue_size must be >= 1, got {size}")
        self._queue: queue.Queue[tuple[int, str, str | None] | None] = queue.Queue(maxsize=size)
        self._futures: dict[int, Future[Result]] = {}
        self._lock = threading.Lock()
        self._count = itertools.count()
        self._closing = False
        self._error: BaseException | None = None  # why the engine stopped, if it failed
        self._thread: threading.Thread | None = None
        self._observers: list[Observer] = []
        self._names: dict[int, str] = {}  # job index -> the name its caller chose

    @property
    def concurrency(self) -> int:
        """Downloads at once (the engine's own figure where it is fixed: sequential 1)."""
        return self.config.limits.concurrency

    def __enter__(self) -> Downloader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)

    # ------------------------------------------------------------------ streaming

    def iterate(
        self, urls: Iterable[str], *, total: int | None = None, tally: Tally | None = None
    ) -> Iterator[Result]:
        """Download every URL, yielding each :class:`Result` as it completes (``tally``,
        when given, adds up the run as it goes, kept partial files included)."""
        if total is None and isinstance(urls, Sized) and not isinstance(urls, str):
            total = len(urls)
        lines = _lines(urls, 2 * self.config.limits.concurrency)
        return self.iterate_lines(lines, total=total, tally=tally)

    def iterate_lines(
        self,
        lines: Iterable[Line | _Pending],
        *,
        total: int | None = None,
        tally: Tally | None = None,
    ) -> Iterator[Result]:
        """:meth:`iterate` for ``(line number, entry)`` pairs, as from a URL list file."""
        observers = _observers(self._progress)
        jobs = plan_lines(lines)
        if self.store is None:
            config = _for_run(self.config)  # before the journal adds a file to the folder
            journal = _open_journal(config)
            feeder = _feeder(config, jobs, journal=journal)
            batches = pipeline(config, feeder)
            return self._observe(
                batches, feeder, total, observers, tally or Tally(), config, journal
            )
        from ._store import Stage

        stage = Stage(self.store, self.config.settings)  # lists the store: before any request
        config = stage.configure(self.config)
        journal = _open_journal(config)
        feeder = _feeder(config, stage.mark(jobs), journal=journal)
        batches = stage.stream(pipeline(config, feeder), feeder)
        return self._observe(batches, feeder, total, observers, tally or Tally(), config, journal)

    def _observe(
        self,
        batches: Iterator[Batch],
        feeder: Feeder,
        total: int | None,
        observers: list[Observer],
        tally: Tally,
        config: Config | None = None,
        journal: Journal | None = None,
    ) -> Iterator[Result]:
        run = _Run(observers, total, tally, (config or self.config).settings, journal)
        try:
            for batch in batches:
                for job, result in batch:
                    run.result(result, job)
                    yield result
                    _stop_if_disk_full(result)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            run.finish(feeder)

    def download(self, urls: Iterable[str], *, keep_results: bool = True) -> Report:
        """Download every URL and return the :class:`Report` of the run."""
        start = time.monotonic()
        tally = Tally(keep_results=keep_results)
        for _ in self.iterate(urls, tally=tally):
            pass
        return tally.report(time.monotonic() - start)

    # ------------------------------------------------------------------ futures

    def submit(
        self,
        url: str,
        *,
        name: str | None = None,
        sha256: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Future[Result]:
        """Schedule ``url``; its :class:`Result` arrives in the returned future.

        ``name`` saves the file under that name (cleaned like any name) instead of one
        from the URL; ``sha256`` publishes it only if its bytes match; ``headers`` are
        sent with this URL only (to its own origin, as the run's are).
        """
        if name is not None and not clean_name(name):
            raise UsageError(f"name {name!r} is not usable as a file name")
        entry = _entry(url, sha256, headers)
        from concurrent.futures import Future  # here: the streaming path never needs it

        future: Future[Result] = Future()
        with self._lock:
            self._check_open()
            if self._thread is None:
                self._start()
            index = next(self._count)
            self._futures[index] = future
            self._queue.put((index, entry, name))  # blocks while full: back-pressure
        if self._error is not None:  # the engine stopped while we waited for room
            self._fail_waiting()
        return future

    def _check_open(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"the session's engine stopped: {self._error!r}")
        if self._closing:
            raise RuntimeError("cannot submit after shutdown")

    def _fail_waiting(self) -> None:
        """The engine is gone: no queued or held URL will run; finish their futures."""
        error = self._error
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for index in list(self._futures):
            future = self._futures.pop(index, None)
            if future is None or future.done():
                continue
            if future.running() and error is not None:
                future.set_exception(error)
            else:
                future.cancel()

    def _start(self) -> None:
        if self.store is not None:
            from ._store import Stage

            self._stage = Stage(self.store, self.config.settings)  # lists it, on this thread
        self._observers = _observers(self._progress)
        self._thread = threading.Thread(target=self._serve, name="manyget-session", daemon=True)
        self._thread.start()

    def _input(self, feeder: Callable[[], Feeder]) -> Iterator[Line | _Pending]:
        names: dict[int, str] = self._names
        get = self._queue.get
        while True:
            try:
                # Nothing running: wait on the queue itself, so a submit starts at once.
                # Otherwise never block the transfers in flight.
                idle = feeder().held == 0
                item = get(timeout=_IDLE_INPUT_WAIT) if idle else get(block=False)
            except queue.Empty:
                if self._closing and self._queue.empty():
                    return
                yield PENDING
                continue
            if item is None:  # shutdown's wake-up call
                continue
            index, entry, name = item
            if name is not None:
                names[index] = name
            yield None, entry

    def _accept(self, job: Job) -> bool:
        future = self._futures.get(job.index)
        if future is None or not future.set_running_or_notify_cancel():
            self._futures.pop(job.index, None)
            return False
        return True

    def _serve(self) -> None:
        stage = self._stage
        config = _for_run(self.config) if stage is None else stage.configure(self.config)
        try:
            journal = _open_journal(config)
        except BaseException as exc:  # a journal that cannot be used fails every future
            self._error = exc
            self._fail_waiting()
            return
        run = _Run(self._observers, None, None, config.settings, journal)
        jobs = _named(plan_lines(self._input(lambda: feeder)), self._names)
        if stage is not None:
            jobs = stage.mark(jobs)
        feeder = _feeder(config, jobs, self._accept, journal)
        lock = threading.Lock()  # uploads report from their own threads

        def report(job: Job, result: Result) -> None:
            with lock:
                run.result(result, job)
                future = self._futures.pop(job.index, None)
            if future is not None:
                future.set_result(result)

        if stage is not None:
            stage.set_report(report)
        try:
            for batch in pipeline(config, feeder):
                for job, result in batch:
                    now = result if stage is None else stage.put(job, result)
                    if now is not None:
                        report(job, now)
        except BaseException as exc:  # handed to every waiting future, not lost
            self._error = exc
            self._fail_waiting()
        finally:
            if stage is not None:
                stage.close(feeder, cancel=self._error is not None)  # waits for uploads
            run.finish(feeder)

    def map(self, urls: Iterable[str], *, timeout: float | None = None) -> Iterator[Result]:
        """Results in the order of ``urls``, like ``Executor.map``: the first URLs are
        submitted before this returns, a window of ``2 x concurrency`` (64 at least) ahead
        of the result awaited (not every URL, so a long list costs bounded memory), and
        ``timeout`` counts from this call."""
        end = None if timeout is None else time.monotonic() + timeout
        source = iter(urls)
        window = deque(self.submit(url) for url in itertools.islice(source, self._window))
        return self._in_order(source, window, end)

    def _in_order(
        self, source: Iterator[str], window: deque[Future[Result]], end: float | None
    ) -> Iterator[Result]:
        try:
            while window:
                left = None if end is None else end - time.monotonic()
                yield window.popleft().result(left)
                window.extend(self.submit(url) for url in itertools.islice(source, 1))
        finally:
            for future in window:
                future.cancel()

    def as_completed(self, urls: Iterable[str]) -> Iterator[Result]:
        """Results of ``urls`` as they complete, submitting a bounded window ahead."""
        done: queue.SimpleQueue[Future[Result]] = queue.SimpleQueue()
        waiting: set[Future[Result]] = set()

        def take() -> Result | None:
            future = done.get()
            waiting.discard(future)
            return None if future.cancelled() else future.result()

        try:
            for url in urls:
                future = self.submit(url)
                waiting.add(future)
                future.add_done_callback(done.put)
                while len(waiting) >= self._window or not done.empty():
                    result = take()
                    if result is not None:
                        yield result
            while waiting:
                result = take()
                if result is not None:
                    yield result
        finally:
            for future in waiting:
                future.cancel()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking URLs; as ``Executor.shutdown``: ``wait`` for what was submitted,
        and with ``cancel_futures`` cancel what has not started."""
        self._closing = True
        thread = self._thread
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wakes an idle engine to see it is closing
        if cancel_futures:
            for future in list(self._futures.values()):
                future.cancel()
        if wait and thread is not None:
            thread.join()


def iter_download(
    urls: Iterable[str],
    dest: str | os.PathLike[str] = "downloads",
    *,
    progress: ProgressArg = False,
    **options: Unpack[Options],
) -> Iterator[Result]:
    """Download every URL into ``dest``, yielding each :class:`Result` as it completes.

    Takes the options of :func:`download`. Every option is checked before this returns.
    """
    return Downloader(dest, progress=progress, **options).iterate(urls)


def download(
    urls: Iterable[str],
    dest: str | os.PathLike[str] = "downloads",
    *,
    progress: ProgressArg = False,
    keep_results: bool = True,
    **options: Unpack[Options],
) -> Report:
    """Download every URL into ``dest`` and return the :class:`Report` of the run.

    ``urls`` may be any iterable, including a generator of millions of lines: it is read
    lazily (on a thread of its own when it is an iterator, so a slow one never stalls
    transfers) and only a bounded window of downloads is in flight. Options:

    - ``engine``: ``multi`` (default), ``sequential``, ``threads``, ``processes``,
      ``asyncio`` or ``dask`` (on the Dask cluster at ``scheduler="tcp://HOST:PORT"`` or
      ``DASK_SCHEDULER_ADDRESS``, else a local one; see docs/scale-out.md); or
      ``executor``: any ``concurrent.futures.Executor`` runs the attempts.
    - ``concurrency`` (default 64) downloads at once, ``per_host`` (default 8) to one host;
      a host that answers 429 or 503 gets no new request until its ``Retry-After`` has
      passed, while other hosts go on. (``limits=Limits(...)`` sets the three at once.)
    - ``timeout``: seconds to connect and, after that, between received bytes (or a
      :class:`Timeouts`); ``retries``: a count or a :class:`RetryPolicy` (default: 3
      retries of transient failures).
    - ``overwrite``: download files already complete under ``dest`` again (they are
      skipped, ``Status.SKIPPED``, otherwise); ``max_size``: cut off longer bodies.
    - ``allow_downgrade``: follow redirects from https to http; ``content_disposition``:
      name files as the server's ``Content-Disposition`` says (cleaned like any name,
      never replacing another file).
    - What requests carry: ``headers`` (a mapping or ``"Name: value"`` strings),
      ``user_agent``, ``referer``, ``user`` (``"USER:PASS"``), ``netrc`` (True or a path),
      ``cookies`` (a cookie file's path, ``"k=v; k2=v2"`` or a mapping), ``proxy``,
      ``noproxy``, ``http`` (``"auto"``, ``"1.1"``, ``"2-prior-knowledge"``, ``"3"``),
      ``compressed``; TLS: ``ca_file``, ``ca_path``, ``cert``, ``key``, ``insecure``,
      ``tls_min``. A redirect to another origin carries none of the credentials
      (see :class:`~manyget._policy.Request`).
    - ``dest`` may be an object-store URL (``s3://bucket/prefix``, any fsspec URL; the
      ``s3`` extra): files are downloaded into a staging folder (``staging``: a folder
      that persists, for resumes; default: a private temporary one per run), uploaded so
      an object appears only whole, and reported with the object's URL as ``path``;
      ``storage_options`` go to fsspec as they are.

    - ``journal``: ``True`` (``DEST/.manyget-journal.sqlite``) or a path: record each
      URL's outcome in a SQLite journal; a later run with it skips, without a look at the
      files, the URLs it holds as done (``manyget status JOURNAL`` summarises it).

    With ``keep_results=False`` the report holds only the counts, so memory stays flat.
    """
    start = time.monotonic()
    tally = Tally(keep_results=keep_results)
    session = Downloader(dest, progress=progress, **options)
    for _ in session.iterate(urls, tally=tally):
        pass
    return tally.report(time.monotonic() - start)


# --------------------------------------------------------------------------- async


def _async_config(dest: str | os.PathLike[str], options: Options) -> tuple[Config, str | None]:
    """The run's config, and the object store's URL when ``dest`` is one: the store is
    opened later, on a thread (:func:`_astage`), as fsspec's import and the listing block."""
    from ._store import is_url

    engine = options.get("engine")
    if engine not in (None, "asyncio") or options.get("executor") is not None:
        raise UsageError("the async API runs the asyncio engine on your loop; leave out engine=")
    text = os.fspath(dest)
    if is_url(text):
        folder = _staging(options.get("staging"), options)
        return configure(folder, {**options, "engine": "asyncio"}), text
    return configure(_open_dest(dest, options)[0], {**options, "engine": "asyncio"}), None


async def _aopen(config: Config, url: str | None, options: Options) -> tuple[Config, Stage | None]:
    """The config of an async run, and its stage when it goes to the object store at
    ``url`` (opened and listed on a thread)."""
    if url is None:
        return _for_run(config), None
    import asyncio

    from ._store import Stage, open_store

    def opened() -> Stage:
        store = open_store(url, options.get("staging"), options.get("storage_options"))
        return Stage(store, config.settings)  # lists the store: before any request

    stage = await asyncio.to_thread(opened)
    return stage.configure(config), stage


async def aiter_download(
    urls: Iterable[str],
    dest: str | os.PathLike[str] = "downloads",
    *,
    progress: ProgressArg = False,
    tally: Tally | None = None,
    **options: Unpack[Options],
) -> AsyncIterator[Result]:
    """Async :func:`iter_download` on the running loop, which it never blocks."""
    await _load_async_engine()
    from ._engines._asyncio import AsyncLoop

    config, stage = await _aopen(*_async_config(dest, options), options)
    journal = _open_journal(config)
    lines = _lines(urls, 2 * config.limits.concurrency)
    jobs = plan_lines(lines)
    feeder = _feeder(config, jobs if stage is None else stage.mark(jobs), None, journal)
    runner = AsyncLoop(config.settings, feeder.capacity)
    total = len(urls) if isinstance(urls, Sized) and not isinstance(urls, str) else None
    run = _Run(_observers(progress), total, tally, config.settings, journal)
    batches = _abatches(feeder, runner, stage)
    try:
        async for batch in batches:
            for job, result in batch:
                run.result(result, job)
                yield result
                _stop_if_disk_full(result)
    finally:
        await _astop(batches, runner, feeder, stage)
        run.finish(feeder)


async def _load_async_engine() -> None:
    """Import the engine and libcurl on a worker thread the first time, so the caller's
    loop goes on meanwhile (about 60 ms here)."""
    import sys

    if "pycurl" not in sys.modules or "manyget._engines._asyncio" not in sys.modules:
        import asyncio
        import importlib

        def load() -> None:
            importlib.import_module("pycurl")
            importlib.import_module("manyget._engines._asyncio")

        await asyncio.to_thread(load)


async def _aclose(runner: AsyncLoop, feeder: Feeder) -> None:
    """Stop ``runner``, counting what its cancelled transfers kept."""
    for job, attempt in await runner.aclose():
        feeder.cancelled(job, attempt)


def _abatches(
    feeder: Feeder, runner: AsyncLoop, stage: Stage | None
) -> AsyncGenerator[Batch, None]:
    """An async run's batches of results: once uploaded, with a stage."""
    from ._engines._asyncio import adrive

    driving = adrive(feeder, runner)
    return driving if stage is None else stage.astream(driving)


async def _astop(
    batches: AsyncGenerator[Batch, None], runner: AsyncLoop, feeder: Feeder, stage: Stage | None
) -> None:
    """End an async run: the batches, the transfers, then the uploads (waited for on a
    thread: those started finish, those queued are dropped when the run was cut short)."""
    await batches.aclose()
    await _aclose(runner, feeder)
    if stage is not None:
        import asyncio

        await asyncio.to_thread(stage.close, feeder)


async def adownload(
    urls: Iterable[str],
    dest: str | os.PathLike[str] = "downloads",
    *,
    progress: ProgressArg = False,
    keep_results: bool = True,
    **options: Unpack[Options],
) -> Report:
    """Async :func:`download` on the running loop, which it never blocks."""
    start = time.monotonic()
    tally = Tally(keep_results=keep_results)
    async for _ in aiter_download(urls, dest, progress=progress, tally=tally, **options):
        pass
    return tally.report(time.monotonic() - start)


class AsyncDownloader:
    """A download session on the running event loop.

    >>> async with manyget.AsyncDownloader("downloads") as d:  # doctest: +SKIP
    ...     result = await d.fetch(url)
    ...     results = await asyncio.gather(*(d.fetch(u) for u in urls))

    ``fetch`` (a coroutine) and ``submit`` (an :class:`asyncio.Future`) share one set of
    transfers and per-host limits; ``as_completed`` yields results as they finish.
    Leaving the ``async with`` block waits for every download started.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str] = "downloads",
        *,
        progress: ProgressArg = False,
        **options: Unpack[Options],
    ) -> None:
        self.config, self._store_url = _async_config(dest, options)
        self._options = options
        self._window = max(64, 2 * self.config.limits.concurrency)
        self._progress = progress
        self._pending: deque[tuple[int, str, str | None]] = deque()
        self._futures: dict[int, asyncio.Future[Result]] = {}
        self._names: dict[int, str] = {}
        self._count = itertools.count()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._runner: object = None

    async def __aenter__(self) -> AsyncDownloader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def submit(
        self,
        url: str,
        *,
        name: str | None = None,
        sha256: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> asyncio.Future[Result]:
        """Schedule ``url`` on the running loop; a future of its :class:`Result`."""
        if self._closing:
            raise RuntimeError("cannot submit after aclose()")
        if name is not None and not clean_name(name):
            raise UsageError(f"name {name!r} is not usable as a file name")
        import asyncio

        loop = asyncio.get_running_loop()
        if self._task is None:
            self._task = loop.create_task(self._serve())
        entry = _entry(url, sha256, headers)
        index = next(self._count)
        future: asyncio.Future[Result] = loop.create_future()
        self._futures[index] = future
        self._pending.append((index, entry, name))
        self._poke()
        return future

    async def fetch(
        self,
        url: str,
        *,
        name: str | None = None,
        sha256: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Result:
        """Download ``url`` and return its :class:`Result`."""
        return await self.submit(url, name=name, sha256=sha256, headers=headers)

    async def as_completed(self, urls: Iterable[str]) -> AsyncIterator[Result]:
        """Results of ``urls`` as they complete; a bounded window of URLs is submitted
        ahead, so a long list costs bounded memory."""
        import asyncio

        source = iter(urls)
        pending = {self.submit(url) for url in itertools.islice(source, self._window)}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                pending.update(self.submit(url) for url in itertools.islice(source, len(done)))
                for future in done:
                    if not future.cancelled():
                        yield future.result()
        finally:
            for future in pending:
                future.cancel()

    def _poke(self) -> None:
        from ._engines._asyncio import AsyncLoop

        if isinstance(self._runner, AsyncLoop):
            self._runner.poke()

    def _input(self) -> Iterator[Line | _Pending]:
        while True:
            if not self._pending:
                if self._closing:
                    return
                yield PENDING
                continue
            index, entry, name = self._pending.popleft()
            if name is not None:
                self._names[index] = name
            yield None, entry

    def _accept(self, job: Job) -> bool:
        future = self._futures.get(job.index)
        if future is None or future.cancelled():
            self._futures.pop(job.index, None)
            return False
        return True

    async def _serve(self) -> None:
        await _load_async_engine()
        from ._engines._asyncio import AsyncLoop

        try:
            config, stage = await _aopen(self.config, self._store_url, self._options)
        except BaseException as exc:  # (an unusable store) every download fails with it
            for waiting in self._futures.values():
                if waiting.done():
                    continue
                if isinstance(exc, Exception):
                    waiting.set_exception(exc)
                else:
                    waiting.cancel()
            raise
        journal = _open_journal(config)
        run = _Run(_observers(self._progress), None, None, config.settings, journal)
        jobs = _named(plan_lines(self._input()), self._names)
        feeder = _feeder(
            config, jobs if stage is None else stage.mark(jobs), self._accept, journal
        )
        runner = self._runner = AsyncLoop(config.settings, feeder.capacity)
        batches = _abatches(feeder, runner, stage)
        try:
            async for batch in batches:
                for job, result in batch:
                    run.result(result, job)
                    future = self._futures.pop(job.index, None)
                    if future is not None and not future.done():
                        future.set_result(result)
        finally:
            await _astop(batches, runner, feeder, stage)
            for future in self._futures.values():
                future.cancel()
            run.finish(feeder)

    async def aclose(self) -> None:
        """Stop taking URLs and wait for every download started."""
        self._closing = True
        self._poke()
        if self._task is not None:
            await self._task
