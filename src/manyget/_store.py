"""Object-storage destinations: ``s3://bucket/prefix``, ``gs://...``, ``memory://...``, any
fsspec URL.

Theory of operation: nothing about downloading changes. Each run downloads into a local
*staging* folder with the usual machinery (partial files, resume, checksums, the atomic
publish), and a :class:`Stage` sits between the engine's batches and whoever reports the
results. A result with a published file is handed to a small pool of upload threads
(:data:`UPLOAD_THREADS`, with room for twice as many waiting: when it is full, taking the
next batch waits, which holds the engine back rather than filling the staging disk). A
thread uploads the file so that the object appears only when complete (S3: one PUT, or a
multipart upload completed only after its last part and aborted on failure; other stores:
``open(autocommit=False)`` then ``commit()``, or ``discard()`` on failure), removes the
local copy, and only then is the result reported, its ``path`` the object's URL. An upload
that fails is that URL's failure (``Status.ERROR``, with the store's reason), never an
exception of the run.

"Already there" costs one listing per run, not a request per file: the prefix is listed
once at the start into a mapping of names to sizes. A job whose name is in it is handed to
the engine marked with a problem, so it takes the engine's no-request path and comes back
in the engine's batches like any answer (in order, with the usual back-pressure, through
every engine and the futures' ``accept`` hook); the stage turns that answer into
``Status.SKIPPED`` with the object's URL. Objects are skipped by name: their content is not
read again (a ``sha256=`` is checked when a file is downloaded, not against an object).

The staging folder is a private temporary folder per run, removed when the run ends
(partial files in it go too: a failed download restarts from zero next run), or, with
``staging=``, a folder of the caller's that persists: partial files resume there, and a
file downloaded but not yet uploaded when a run stopped is uploaded by the next run
without a request.

fsspec and the store's own package (s3fs for S3) are the ``s3`` extra, imported only for
such a destination; ``import manyget`` loads neither.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import re
import shutil
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._exceptions import DestinationError
from ._jobs import Job, _Pending
from ._results import Result, Status

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from ._engines._drive import Batch
    from ._hosts import Feeder
    from ._options import Config
    from ._policy import Settings

__all__ = [
    "UPLOAD_THREADS",
    "Remote",
    "Stage",
    "Store",
    "is_url",
    "local_path",
    "open_store",
    "reopen",
]

UPLOAD_THREADS = 8  # uploads at once; as many more may wait for a thread
_PART = 8 << 20  # S3: a file of 2 parts or more goes up as a multipart upload of 8 MiB parts
_STORED = "manyget: the object is already stored"  # the problem that marks such a job
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")  # two letters at least: never C:// or D://
_EXTRA = "pip install 'manyget[s3]'"


def is_url(dest: str | os.PathLike[str]) -> bool:
    """Whether ``dest`` names an object store (``s3://...``) rather than a local folder;
    ``file://`` URLs are local folders."""
    text = os.fspath(dest)
    return isinstance(text, str) and _URL.match(text) is not None and not local_path(text)


def local_path(dest: str) -> str | None:
    """The folder a ``file://`` URL names; None for anything else."""
    if not dest.lower().startswith("file://"):
        return None
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(dest)
    if parts.netloc not in ("", "localhost"):
        return None  # another machine's file: left to fsspec, which will refuse it
    return unquote(parts.path) or "/"


@dataclass(frozen=True, slots=True)
class Store:
    """An object-store destination: ``url`` as given (without a trailing ``/``), its
    fsspec file system ``fs`` and ``root`` path, the persistent ``staging`` folder
    (None: a private temporary folder per run), and the ``options`` ``fs`` was made with
    (so another process, a Dask worker, can open the same store: :meth:`remote`)."""

    url: str
    fs: Any
    root: str
    staging: Path | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def object_url(self, name: str) -> str:
        return f"{self.url}/{name}"

    def holds(self, path: str) -> bool:
        """Whether ``path`` (a result's) is an object of this store, not a local file."""
        return path.startswith(f"{self.url}/")

    def remote(self) -> Remote:
        """What a Dask worker needs to open this store with :func:`reopen`: plain values,
        not the file system (whose client, sessions and credentials are the worker's)."""
        staging = None if self.staging is None else str(self.staging)
        return (self.url, self.options, staging)

    def _key(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def listing(self) -> dict[str, int]:
        """Every object directly under the prefix, by name, with its size: one listing
        (paged by the store), so skipping what is there costs no request per file."""
        fs = self.fs
        prefix = f"{self.root.rstrip('/')}/".lstrip("/")
        stored: dict[str, int] = {}

        def keep(entry: Mapping[str, Any]) -> None:
            name = str(entry.get("name", "")).lstrip("/")
            if entry.get("type") == "file" and name.startswith(prefix):
                stored[name[len(prefix) :]] = int(entry.get("size") or 0)

        fs.invalidate_cache(self.root)
        try:
            if "s3" in _protocols(fs):
                _pages(fs, self.root, keep)
            else:
                for entry in fs.ls(self.root, detail=True):
                    keep(entry)
        except FileNotFoundError:
            self._check_bucket()  # an empty prefix: nothing stored yet, if the bucket exists
        except Exception as exc:  # the store's client has its own exception types
            raise DestinationError(f"cannot list {self.url}: {_reason(exc)}") from None
        finally:
            fs.invalidate_cache(self.root)  # the listing is ours now: keep no second copy
        return stored

    def _check_bucket(self) -> None:
        split = getattr(self.fs, "split_path", None)
        if split is None:  # a store without buckets (memory://): any prefix will do
            return
        try:
            bucket = split(self.root)[0]
            there = self.fs.exists(bucket)
        except Exception as exc:
            raise DestinationError(f"cannot list {self.url}: {_reason(exc)}") from None
        if not there:
            raise DestinationError(f"destination {self.url}: bucket {bucket!r} does not exist")

    def upload(self, local: str, name: str) -> None:
        """Store file ``local`` as object ``name`` so that it is visible only once whole."""
        fs, key = self.fs, self._key(name)
        protocols = _protocols(fs)
        if "s3" in protocols:
            # s3fs: one PUT below two parts, otherwise a multipart upload that is
            # completed only after its last part and aborted on an error.
            fs.put_file(local, key, chunksize=_PART)
        elif "memory" in protocols:
            with open(local, "rb") as f:
                fs.pipe_file(key, f.read())  # one assignment in the store's mapping
        else:
            _put_uncommitted(fs, local, key)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _pages(fs: Any, root: str, keep: Callable[[Mapping[str, Any]], None]) -> None:
    """s3fs: list ``root`` page by page, keeping only what ``keep`` takes from each entry
    (``ls`` would hold every entry's full record, about 1 KB each, and cache a copy)."""
    from fsspec.asyn import sync

    bucket, key, _ = fs.split_path(root)
    prefix = f"{key.rstrip('/')}/" if key else ""

    async def walk() -> None:
        async for entry in fs._iterdir(bucket, prefix=prefix, delimiter="/"):
            keep(entry)

    sync(fs.loop, walk)


def _put_uncommitted(fs: Any, local: str, key: str) -> None:
    """Copy ``local`` to ``key`` through a file opened with ``autocommit=False``: the
    object appears at ``commit()``; any failure discards it."""
    target = fs.open(key, "wb", autocommit=False)
    try:
        with open(local, "rb") as source:
            shutil.copyfileobj(source, target, 1 << 20)
        target.close()
        target.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            target.discard()
        raise


def _reason(exc: BaseException) -> str:
    """An exception of a store's client as one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


Remote = tuple[str, tuple[tuple[str, Any], ...], str | None]  # see Store.remote
_reopened: dict[Remote, Store] = {}
_reopen_lock = threading.Lock()


def reopen(remote: Remote) -> Store:
    """The :class:`Store` of :meth:`Store.remote`'s values, opened once per process (a
    Dask worker runs many batches of a run; each would otherwise make a new client)."""
    with _reopen_lock:
        store = _reopened.get(remote)
        if store is None:
            url, options, staging = remote
            store = _reopened[remote] = open_store(url, staging, dict(options))
        return store


def open_store(
    url: str,
    staging: str | os.PathLike[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Store:
    """The :class:`Store` for destination ``url``; DestinationError (with the package to
    install, when that is what is missing) if it cannot be used."""
    url = url.rstrip("/")
    scheme = url.partition("://")[0].lower()
    s3 = scheme in ("s3", "s3a")
    try:
        import fsspec
    except ImportError:
        what = "fsspec and s3fs" if s3 else "fsspec"
        hint = _EXTRA if s3 else f"pip install fsspec (and the package for {scheme}://)"
        raise DestinationError(f"destination {url} needs {what}: {hint}") from None
    options = dict(storage_options or {})
    options.setdefault("skip_instance_cache", True)  # the environment as it is now
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        if s3:
            raise DestinationError(f"destination {url} needs s3fs: {_EXTRA}") from None
        raise DestinationError(f"destination {url}: {_reason(exc)}") from None
    except (ValueError, TypeError) as exc:  # an unknown protocol, a bad storage option
        raise DestinationError(f"destination {url}: {_reason(exc)}") from None
    folder = None if staging is None else Path(staging)
    given = tuple(sorted((storage_options or {}).items()))
    return Store(url=url, fs=fs, root=str(root), staging=folder, options=given)


class Stage:
    """One run's uploads: the run's staging folder and :attr:`settings` (the run's
    settings with that folder as the destination; :meth:`configure` for its options),
    the listing of what is stored, and the pool.

    :meth:`mark` goes over the jobs before the engine; :meth:`put` takes each result the
    engine concludes and returns the one to report now, or None when its upload will
    hand it to ``report`` (from an upload thread); :meth:`stream` does both for a
    stream of batches; :meth:`close` waits for the uploads and removes a temporary
    staging folder. A Dask worker makes its own stage for each batch (``listing=False``:
    the client listed the store once and marked the jobs), so the files never cross the
    cluster: a worker uploads what it downloaded, and its results name objects.
    """

    def __init__(self, store: Store, settings: Settings, *, listing: bool = True) -> None:
        import tempfile
        import weakref

        self.store = store
        self.temporary = store.staging is None
        self.folder = (
            Path(tempfile.mkdtemp(prefix="manyget-staging-"))
            if store.staging is None
            else store.staging
        )
        if self.temporary:  # removed even if the run never starts or ends
            weakref.finalize(self, shutil.rmtree, self.folder, True)
        self.settings = settings = dataclasses.replace(settings, dest=self.folder)
        try:
            self._stored = {} if settings.overwrite or not listing else store.listing()
        except BaseException:
            self._remove_folder()
            raise
        self._marked: dict[int, int] = {}  # job index -> the size of its stored object
        self._done: queue.SimpleQueue[tuple[Job, Result]] = queue.SimpleQueue()
        self._report: Callable[[Job, Result], None] = self._queue
        self._room = threading.Semaphore(2 * UPLOAD_THREADS)
        self._pool: ThreadPoolExecutor | None = None
        self._uploading = 0  # handed to the pool and not yet taken back by stream()
        self._closed = False

    def configure(self, config: Config) -> Config:
        """``config`` for this stage's run: its files staged here, bound for the store."""
        return dataclasses.replace(config, settings=self.settings, store=self.store)

    def _queue(self, job: Job, result: Result) -> None:
        self._done.put((job, result))

    def set_report(self, report: Callable[[Job, Result], None]) -> None:
        """Hand finished uploads to ``report`` (on an upload thread) instead of keeping
        them for :meth:`stream`: for a caller whose engine may sit idle meanwhile."""
        self._report = report

    def mark(self, jobs: Iterator[Job | _Pending]) -> Iterator[Job | _Pending]:
        """``jobs``, those whose object is stored marked to need no request."""
        stored, marked = self._stored, self._marked
        for job in jobs:
            if stored and isinstance(job, Job) and job.problem is None:
                size = stored.pop(job.name, None)  # a name comes once a run: forget it
                if size is not None:
                    marked[job.index] = size
                    job = dataclasses.replace(job, problem=_STORED)
            yield job

    def put(self, job: Job, result: Result) -> Result | None:
        """The result to report now, or None: its file is being uploaded (waits while
        the upload pool is full)."""
        return self._put(job, result, wait=True)[1]

    def _put(self, job: Job, result: Result, *, wait: bool) -> tuple[bool, Result | None]:
        """:meth:`put`; without ``wait``, (False, None) when the upload pool is full and
        nothing was done."""
        size = self._marked.pop(job.index, None)
        if size is not None and result.error == _STORED:
            return True, Result(
                url=job.url,
                path=self.store.object_url(job.name),
                status=Status.SKIPPED,
                bytes=size,
                attempts=0,
            )
        if result.path is None:
            if result.kept and self.temporary:  # the folder goes when the run ends
                return True, dataclasses.replace(result, kept=0)
            return True, result
        if self.store.holds(result.path):  # a Dask worker uploaded it, or a journal's
            return True, result
        if not wait:
            if not self._room.acquire(blocking=False):
                return False, None
        else:
            while not self._room.acquire(timeout=0.5):  # back-pressure; Ctrl-C is seen
                pass
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="manyget-upload")
        self._uploading += 1
        try:
            self._pool.submit(self._upload, job, result)
        except BaseException:
            self._uploading -= 1
            self._room.release()
            raise
        return True, None

    def _upload(self, job: Job, result: Result) -> None:
        local = str(result.path)
        name = os.path.relpath(local, self.folder).replace(os.sep, "/")
        try:
            self.store.upload(local, name)
        except BaseException as exc:  # the store's client has its own exception types
            reason = f"upload to {self.store.object_url(name)} failed: {_reason(exc)}"
            kept = 0 if self.temporary else result.bytes  # a whole file, uploaded next run
            result = dataclasses.replace(
                result, status=Status.ERROR, path=None, error=reason, kept=kept
            )
            if not isinstance(exc, Exception):  # reported (or the run would wait for
                self._room.release()  # it forever), then passed on, never swallowed
                self._report(job, result)
                raise
        else:
            with contextlib.suppress(OSError):  # a leftover is uploaded again, not lost
                os.remove(local)
            result = dataclasses.replace(result, path=self.store.object_url(name))
        self._room.release()
        self._report(job, result)

    def stream(self, batches: Iterator[Batch], feeder: Feeder) -> Iterator[Batch]:
        """``batches`` with each result reported once its file is uploaded: finished
        uploads join the next batch, and the rest are waited for at the end."""
        try:
            for batch in batches:
                out = self._through(batch, wait=True)[0]
                self._take(out, block=False)
                if out:
                    yield out
            while self._uploading:
                out = []
                self._take(out, block=True)
                yield out
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            self.close(feeder)

    async def astream(self, batches: AsyncGenerator[Batch, None]) -> AsyncGenerator[Batch, None]:
        """:meth:`stream` for the async engine, never blocking the event loop: a result
        that must wait for room in the upload pool, and the wait for the last uploads,
        go to a thread. ``batches`` is closed with it; the caller closes the stage
        (:meth:`close`, on a thread) once the engine has stopped."""
        import asyncio

        try:
            async for batch in batches:
                out, waiting = self._through(batch, wait=False)
                for job, result in waiting:
                    now = await asyncio.to_thread(self.put, job, result)
                    if now is not None:
                        out.append((job, now))
                self._take(out, block=False)
                if out:
                    yield out
            while self._uploading:
                out = []
                await asyncio.to_thread(self._take, out, block=True)
                yield out
        finally:
            await batches.aclose()

    def _through(self, batch: Batch, *, wait: bool) -> tuple[Batch, Batch]:
        """:meth:`put` each result of ``batch``: those to report now, and (without
        ``wait``) those left for a put that may wait for room in the upload pool."""
        out: Batch = []
        waiting: Batch = []
        for job, result in batch:
            taken, now = self._put(job, result, wait=wait)
            if not taken:
                waiting.append((job, result))
            elif now is not None:
                out.append((job, now))
        return out, waiting

    def _take(self, out: Batch, *, block: bool) -> None:
        """Move finished uploads to ``out`` (with ``block``, at least one)."""
        while self._uploading:
            try:  # a short timeout: Ctrl-C is seen while we wait
                item = self._done.get(block=block, timeout=0.5 if block else None)
            except queue.Empty:
                if block:
                    continue
                return
            self._uploading -= 1
            out.append(item)
            block = False

    def close(self, feeder: Feeder | None = None, *, cancel: bool = True) -> None:
        """Wait for the uploads (with ``cancel``, only those started: the run stopped)
        and remove a temporary staging folder, with what the run's cancelled transfers
        kept there."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
        if self.temporary:
            self._remove_folder()
            if feeder is not None:
                feeder.kept_files = feeder.kept_bytes = 0

    def _remove_folder(self) -> None:
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)
