"""The public entry points ``download`` and ``iter_download``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING

from ._engines import DEFAULT_ENGINE, get_engine
from ._exceptions import DestinationError, DiskFull, UsageError
from ._hosts import HostGate
from ._jobs import Job, _Pending, plan
from ._policy import RetryPolicy, Settings, Timeouts
from ._progress import Bar, Observer
from ._results import Report, Result, Tally

if TYPE_CHECKING:
    from concurrent.futures import Executor

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PER_HOST",
    "download",
    "iter_download",
    "prepare_dest",
    "run_jobs",
]

DEFAULT_CONCURRENCY = 64
DEFAULT_PER_HOST = 8  # polite: a server sees at most 8 connections from us

ProgressArg = bool | Observer | Sequence[Observer]


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


def _observers(progress: ProgressArg) -> list[Observer]:
    if progress is True:
        return [Bar()]
    if progress is False:
        return []
    if isinstance(progress, Sequence):
        return list(progress)
    return [progress]


def iter_download(
    urls: Iterable[str],
    dest: str | os.PathLike[str] = "downloads",
    *,
    engine: str | None = None,
    executor: Executor | None = None,
    concurrency: int | None = None,
    per_host: int | None = None,
    timeout: float | Timeouts | None = None,
    retries: int | RetryPolicy | None = None,
    overwrite: bool = False,
    max_size: int | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    allow_downgrade: bool = False,
    content_disposition: bool = False,
    progress: ProgressArg = False,
) -> Iterator[Result]:
    """Download every URL into ``dest``, yielding each :class:`Result` as it completes.

    ``urls`` may be any iterable, including a generator of millions of lines: it is read
    lazily and only a bounded window of downloads is in flight. ``engine`` is one of
    ``multi`` (default), ``sequential``, ``threads``, ``processes`` or ``asyncio``;
    ``executor`` runs the downloads on any ``concurrent.futures.Executor`` instead.
    ``timeout`` is the seconds allowed to connect and, after that, between two received
    bytes. ``retries`` is a count or a :class:`RetryPolicy` (default ``RetryPolicy()``:
    3 retries of transient failures). A file already complete under ``dest`` is skipped
    (``Status.SKIPPED``) unless ``overwrite=True``. ``per_host`` caps the downloads from
    one host at once (default 8); a host that answers 429 or 503 gets no new request
    until its ``Retry-After`` has passed, while other hosts go on. ``ca_file`` adds
    trusted certificates (PEM). Redirects from https to http are refused unless
    ``allow_downgrade=True``. With ``content_disposition=True`` a file takes the name the
    server's ``Content-Disposition`` gives (cleaned like any name, never replacing
    another file); otherwise names come from the URL. A body longer than ``max_size``
    bytes is cut off while it streams and reported as an error.
    """
    if isinstance(urls, str):
        urls = [urls]
    total = len(urls) if isinstance(urls, Sized) else None
    return run_jobs(
        plan(urls),
        dest,
        total=total,
        engine=engine,
        executor=executor,
        concurrency=concurrency,
        per_host=per_host,
        timeout=timeout,
        retries=retries,
        overwrite=overwrite,
        max_size=max_size,
        ca_file=ca_file,
        allow_downgrade=allow_downgrade,
        content_disposition=content_disposition,
        progress=progress,
    )


def run_jobs(
    jobs: Iterator[Job | _Pending],
    dest: str | os.PathLike[str],
    *,
    total: int | None = None,
    engine: str | None = None,
    executor: Executor | None = None,
    concurrency: int | None = None,
    per_host: int | None = None,
    timeout: float | Timeouts | None = None,
    retries: int | RetryPolicy | None = None,
    overwrite: bool = False,
    max_size: int | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    allow_downgrade: bool = False,
    content_disposition: bool = False,
    progress: ProgressArg = False,
) -> Iterator[Result]:
    """:func:`iter_download` for planned jobs. Checks every option before returning."""
    if engine is not None and executor is not None:
        raise UsageError("give either engine= or executor=, not both")
    if concurrency is None:
        concurrency = DEFAULT_CONCURRENCY
    if concurrency < 1:
        raise UsageError(f"concurrency must be >= 1, got {concurrency}")
    if timeout is None:
        timeouts = Timeouts()
    elif isinstance(timeout, Timeouts):
        timeouts = timeout
    else:
        timeouts = Timeouts(connect=timeout, idle=timeout)
    if retries is None:
        retry = RetryPolicy()
    elif isinstance(retries, RetryPolicy):
        retry = retries
    else:
        retry = RetryPolicy(retries=retries)
    run = None if executor is not None else get_engine(engine or DEFAULT_ENGINE)
    if ca_file is not None and not os.path.isfile(ca_file):
        raise UsageError(f"certificate file {os.fspath(ca_file)!r} does not exist")
    if max_size is not None and max_size < 0:
        raise UsageError(f"max_size must be >= 0, got {max_size}")
    settings = Settings(
        dest=prepare_dest(dest),
        timeouts=timeouts,
        retry=retry,
        overwrite=overwrite,
        max_size=max_size,
        ca_file=None if ca_file is None else os.fspath(ca_file),
        allow_downgrade=allow_downgrade,
        content_disposition=content_disposition,
    )
    if per_host is None:
        per_host = DEFAULT_PER_HOST
    if per_host < 1:
        raise UsageError(f"per_host must be >= 1, got {per_host}")
    gate = HostGate(jobs, per_host, lookahead=max(1024, 16 * concurrency))
    if executor is not None:
        from ._engines._window import run_executor  # concurrent.futures: only when asked

        results = run_executor(executor, gate, settings, window=2 * concurrency)
    else:
        assert run is not None
        results = run(gate, settings, concurrency)
    return _observe(results, total, _observers(progress))


def _observe(
    results: Iterator[Result], total: int | None, observers: list[Observer]
) -> Iterator[Result]:
    tally = Tally()
    start = time.monotonic()
    for observer in observers:
        observer.started(total)
    try:
        for result in results:
            tally.add(result)
            for observer in observers:
                observer.result(result)
            yield result
            if result.history and result.history[-1].kind == "disk":
                # Every other download would fail the same way: stop here. Closing the
                # engine cancels the transfers in flight and keeps their partial files.
                raise DiskFull(f"{result.error}; the run stopped, partial files are kept")
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
        report = tally.report(time.monotonic() - start)
        for observer in observers:
            observer.finished(report)


def download(
    urls: Iterable[str],
    dest: str | os.PathLike[str] = "downloads",
    *,
    engine: str | None = None,
    executor: Executor | None = None,
    concurrency: int | None = None,
    per_host: int | None = None,
    timeout: float | Timeouts | None = None,
    retries: int | RetryPolicy | None = None,
    overwrite: bool = False,
    max_size: int | None = None,
    ca_file: str | os.PathLike[str] | None = None,
    allow_downgrade: bool = False,
    content_disposition: bool = False,
    progress: ProgressArg = False,
    keep_results: bool = True,
) -> Report:
    """Download every URL into ``dest`` and return the :class:`Report` of the run.

    Takes the same arguments as :func:`iter_download`. With ``keep_results=False`` the
    report holds only the counts, so memory stays flat for any number of URLs.
    """
    start = time.monotonic()
    tally = Tally(keep_results=keep_results)
    tally.extend(
        iter_download(
            urls,
            dest,
            engine=engine,
            executor=executor,
            concurrency=concurrency,
            per_host=per_host,
            timeout=timeout,
            retries=retries,
            overwrite=overwrite,
            max_size=max_size,
            ca_file=ca_file,
            allow_downgrade=allow_downgrade,
            content_disposition=content_disposition,
            progress=progress,
        )
    )
    return tally.report(time.monotonic() - start)
