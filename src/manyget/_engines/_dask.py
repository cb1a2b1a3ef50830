"""Downloads on a Dask cluster: batches of URLs, each a task running manyget's own
``multi`` engine on a worker.

Theory of operation: the client side is the same feeder as every engine, but what it
hands out is cut into batches (:data:`BATCH` jobs; the first ones smaller, so the first
request leaves at once). Each batch is one Dask task with an explicit unique key
(``pure=False``: identical batches are never merged) that runs :func:`run_batch` on a
worker: a sub-feeder over the batch's jobs driving a libcurl multi loop, with the
retries and per-host limits of the run, and its preflight (a file already complete is
skipped, a partial file resumed). It returns its results as plain tuples (:func:`pack`).
The client keeps at most two batches per worker slot in flight (back-pressure: the list is
read only as fast as the cluster downloads), so a list of 10^7 lines costs the client
the memory of those batches, not of the list.

Politeness across the cluster: a worker slot (one of a worker's threads) runs one batch
at a time, and each batch gets a share of every limit: ``concurrency``, ``per_host`` and
the rates divided by the number of slots ``S`` found when the run starts (at least 1
each). So at most ``S * max(1, per_host // S)`` transfers reach one host at once: the
per-host limit holds for the whole cluster when ``per_host >= S``, and is ``S``
otherwise (run fewer worker threads, or accept one connection per slot).

A worker that dies has its batch run again elsewhere by the scheduler. Batches are
idempotent: the rerun's preflight finds the files the first run published complete
(skipped, not fetched again) and resumes its partial files; the client sees each job's
result once, from the run that finished. Results name files under the client's
destination; the workers write to the same path, made absolute (on a real cluster: a
shared file system mounted at the same place).

With an object-store destination nothing is shared but the store: the client lists it
once and marks what is there (as for every engine), and each batch stages its files on
its worker (a private temporary folder, or ``--staging``'s path on that machine) and
uploads them from there with a :class:`~manyget._store.Stage` of its own, opened from
plain values (:meth:`~manyget._store.Store.remote`; the credentials are the worker's).
Results name the objects; the client moves no file. A batch run again after its worker
died finds the objects its first run stored through the rerun's own preflight only when
staging persists (``--staging``); otherwise it downloads them again and overwrites each
object with the same bytes, whole (an object is only ever replaced whole).

``distributed`` is imported only here, when this engine runs. Its message log is turned
off (``distributed.admin.low-level-log-length = 0``): it keeps every batch alive
otherwise, hundreds of MB for 10^6 URLs.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import distributed as _distributed  # the engine's extra: missing, get_engine says so

from .._hosts import Feeder, HostGate
from .._jobs import Job
from .._log import INFO, logger
from .._policy import Settings
from .._results import Attempt, AttemptKind, Result, Status
from ._drive import Batch

if TYPE_CHECKING:
    from .._store import Remote, Store

dask_api: Any = _distributed  # untyped in places: used through Any

__all__ = ["BATCH", "FIRST_BATCH", "connect", "run", "run_batch", "run_on"]

BATCH = 1000  # jobs per task: ~1.6 ms of scheduler overhead is then ~2 us a URL
FIRST_BATCH = 32  # the first batch is small, so the first requests leave at once
_LINGER = 0.05  # a partial batch waits this long for more input while others run
_MAX_WAIT = 0.5  # the longest the client blocks: Ctrl-C and new input are seen as often
_POLL = 0.005  # how often the client looks for finished batches while it waits
_CHECK = 0.25  # how often a batch looks whether it is still wanted
_GRACE = 10.0  # how long a closed run waits for its cancelled batches to stop


@dataclasses.dataclass(frozen=True, slots=True)
class Share:
    """A batch's share of the run's limits (see the module docstring)."""

    concurrency: int
    per_host: int
    max_rps: float | None


JobFields = tuple[Any, ...]


def _fields(job: Job) -> JobFields:
    """``job`` as a plain tuple: pickled several times faster than the frozen dataclass
    (whose pickling walks ``dataclasses.fields``), which counts on the client."""
    return (
        job.url, job.name, job.index, job.line, job.problem, job.sha256, job.host,
        job.headers, job.mirrors, job.mirror_hosts, job.resumable, job.span, job.validator,
        job.whole,
    )  # fmt: skip


Packed = tuple[Any, ...]


def pack(job: Job, result: Result) -> Packed:
    """``result`` of ``job`` as plain tuples: on the worker, packing and pickling takes
    5 us a result instead of 28 for the frozen dataclasses, and 75 bytes instead of 129
    cross the wire (measured; the client's rebuild costs what unpickling did)."""
    return (
        job.index,
        None if result.url == job.url else result.url,
        result.path, result.status.value, result.http_status, result.bytes,
        result.received, result.kept, result.seconds, result.attempts, result.error,
        tuple(
            (a.http_status, a.kind.value, a.error, a.nbytes, a.received, a.kept,
             a.retry_after, a.complete, a.saved_as, a.http_version, a.validator)
            for a in result.history
        ),
    )  # fmt: skip


_STATUSES = {status.value: status for status in Status}  # a dict: Status(v) costs ~1 us
_KINDS = {kind.value: kind for kind in AttemptKind}


def unpack(job: Job, packed: Packed) -> Result:
    """The :class:`Result` :func:`pack` made into tuples."""
    _, url, path, status, code, nbytes, received, kept, seconds, attempts, error, tried = packed
    history = tuple(
        Attempt(
            http_status=a[0], kind=_KINDS[a[1]], error=a[2], nbytes=a[3], received=a[4],
            kept=a[5], retry_after=a[6], complete=a[7], saved_as=a[8], http_version=a[9],
            validator=a[10],
        )
        for a in tried
    )  # fmt: skip
    return Result(
        url=job.url if url is None else url, path=path, status=_STATUSES[status],
        http_status=code, bytes=nbytes, received=received, kept=kept, seconds=seconds,
        attempts=attempts, error=error, history=history,
    )  # fmt: skip


def run_batch(
    pickled: bytes, settings: Settings, share: Share, prefix: str, store: Remote | None = None
) -> list[Packed]:
    """Run the jobs (a pickled list of :func:`_fields` tuples) on this worker with the
    multi engine; their results by job index, each path under ``prefix`` (the client's
    name of the destination), or the URL of the object this worker uploaded it to when
    ``store`` names an object store (see the module's docstring)."""
    from ._multi import run as run_multi

    stage = None
    if store is not None:
        from .._store import Stage, reopen

        stage = Stage(reopen(store), settings, listing=False)  # the client listed it
        settings = stage.settings
    jobs = [Job(*f) for f in pickle.loads(pickled)]
    wanted = _still_wanted()
    gate = HostGate(
        iter(jobs), share.per_host, lookahead=max(1024, len(jobs)), max_rps=share.max_rps
    )
    ours = os.path.join(settings.dest, "")
    feeder = Feeder(gate, settings.retry, share.concurrency, ours)
    if settings.split != 1:  # N ranges, or automatic
        from .._fetch import split_files

        feeder.split_with(*split_files(settings))
    out: list[Packed] = []
    batches = run_multi(feeder, settings)
    if stage is not None:
        batches = stage.stream(batches, feeder)  # each result once its object is stored
    checked = time.monotonic()
    try:
        for batch in batches:
            for job, result in batch:
                if result.path is not None and result.path.startswith(ours):
                    result = dataclasses.replace(result, path=prefix + result.path[len(ours) :])
                out.append(pack(job, result))
            if time.monotonic() - checked >= _CHECK:
                checked = time.monotonic()
                if not wanted():
                    break  # closing cancels the transfers; partial files stay for a resume
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    return out


def _still_wanted() -> Callable[[], bool]:
    """Whether the task running this batch is still wanted: a cancelled one (the client
    closed the run, or died) stops instead of downloading on with nobody to tell."""
    try:
        worker = dask_api.get_worker()
        key = worker.get_current_task()
    except ValueError:  # not on a worker (called directly)
        return lambda: True

    def wanted() -> bool:
        task = worker.state.tasks.get(key)
        return task is not None and task.state == "executing"

    return wanted


def _running_batches(run_id: str, dask_worker: Any = None) -> int:
    """On a worker: how many batches of run ``run_id`` are still executing there."""
    prefix = f"manyget-batch-{run_id}-"
    return sum(
        1
        for task in list(dask_worker.state.tasks.values())
        if str(task.key).startswith(prefix) and task.state in ("executing", "cancelled")
    )


def _lost(job: Job, exc: BaseException) -> Result:
    """The result of a job whose batch failed as a whole (every retry of it)."""
    error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Result(url=job.url, path=None, status=Status.ERROR, attempts=0, error=error)


def _configure_dask() -> None:
    import dask

    dask.config.set({"distributed.admin.low-level-log-length": 0})


def connect(address: str | None) -> tuple[Any, Any]:
    """A client of the scheduler at ``address`` (or ``DASK_SCHEDULER_ADDRESS``); without
    one, of a new LocalCluster on 127.0.0.1 sized to the cores. Returns (client, cluster
    or None): the caller closes both."""
    _configure_dask()
    Client, LocalCluster = dask_api.Client, dask_api.LocalCluster
    address = address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    if address is not None:
        return Client(address, set_as_default=False), None
    cluster = LocalCluster(
        host="127.0.0.1",
        n_workers=os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",  # None still binds 8787
    )
    return Client(cluster, set_as_default=False), cluster


def _slots(client: Any) -> int:
    return max(1, int(sum(client.nthreads().values())))


def drive_cluster(
    client: Any, feeder: Feeder, settings: Settings, store: Store | None = None
) -> Iterator[Batch]:
    """Hand ``feeder``'s jobs to the cluster of ``client`` in batches; yield results
    (with ``store``, the workers upload to it: see the module's docstring)."""
    slots = _slots(client)
    concurrency = feeder.capacity
    share = Share(
        concurrency=max(1, math.ceil(concurrency / slots)),
        per_host=max(1, feeder.gate.per_host // slots),
        max_rps=None if feeder.gate.max_rps is None else feeder.gate.max_rps / slots,
    )
    remote = dataclasses.replace(
        settings,
        dest=Path(os.path.abspath(settings.dest)),
        rate=settings.rate / slots if settings.rate else None,
        host_rate=settings.host_rate / slots if settings.host_rate else None,
    )
    prefix = os.path.join(settings.dest, "")
    remote_store = None if store is None else store.remote()
    window = 2 * slots  # batches in flight: one running and one waiting per slot
    feeder.gate.per_host = 1 << 30  # per-host limits hold inside each batch (shares)
    feeder.capacity = window * BATCH
    run_id = uuid.uuid4().hex[:12]
    numbers = itertools.count()
    inflight: dict[Any, list[Job]] = {}
    finished = dask_api.as_completed(loop=client.loop)  # batches as they finish

    def submit(jobs: list[Job]) -> None:
        key = f"manyget-batch-{run_id}-{next(numbers)}"  # unique: never merged, never reused
        # Pickled here, so the batch is one bytes object to Dask: a list of tuples would
        # be walked element by element by every submit, looking for futures in it (about
        # 1.1 million calls per 100,000 URLs, the client's largest cost).
        batch = pickle.dumps([_fields(job) for job in jobs], protocol=pickle.HIGHEST_PROTOCOL)
        future = client.submit(
            run_batch, batch, remote, share, prefix, remote_store, key=key, pure=False
        )
        inflight[future] = jobs
        finished.add(future)

    size = FIRST_BATCH
    pending: list[Job] = []  # the batch being filled
    pending_since = 0.0
    clock = time.monotonic
    try:
        while True:
            now = clock()
            known: Batch = []
            while len(inflight) < window and len(known) < BATCH:
                item = feeder.next(now)
                if item is None:
                    break
                job = item[0]
                early = feeder.known(job) if feeder.known is not None else None
                if early is not None:  # the journal holds it as done
                    known.append((job, feeder.skipped(job, early, now)))
                    continue
                if not pending:
                    pending_since = now
                pending.append(job)
                if len(pending) >= size:
                    submit(pending)
                    pending = []
                    size = min(BATCH, 2 * size)
            if known:
                yield known
            # A partial batch goes when nothing else runs, the list is done, or it has
            # waited long enough for more input.
            due = not inflight or feeder.exhausted or now - pending_since >= _LINGER
            if pending and due and len(inflight) < window:
                submit(pending)
                pending = []
            if not inflight:
                if feeder.finished:
                    return
                time.sleep(min(_MAX_WAIT, feeder.wait(now) or _LINGER))
                continue
            # as_completed's own wait has no timeout, and the input must be watched too:
            # look at it every few milliseconds (a batch takes a fraction of a second).
            deadline = now + (_LINGER if pending else _MAX_WAIT)
            while not finished.has_ready() and clock() < deadline:
                time.sleep(_POLL)
            now = clock()
            for future in finished.next_batch(block=False):
                yield _collect(future, inflight.pop(future), feeder, now)
    finally:
        for job in pending:
            feeder.lost(job, clock())
        if inflight:  # the run stopped early: stop the batches, and wait until they have
            _stop(client, list(inflight), run_id)


def _stop(client: Any, futures: list[Any], run_id: str) -> None:
    """Cancel ``futures`` and wait (a bounded time) until no batch of the run executes,
    so no transfer of this run goes on writing once it has returned."""
    for future in futures:
        future.cancel()
    deadline = time.monotonic() + _GRACE
    while time.monotonic() < deadline:
        try:
            busy = client.run(_running_batches, run_id)
        except Exception:  # the cluster is gone: nothing runs there any more
            return
        if not any(busy.values()):
            return
        time.sleep(0.05)


def _collect(future: Any, jobs: list[Job], feeder: Feeder, now: float) -> Batch:
    by_index = {job.index: job for job in jobs}
    out: Batch = []
    try:
        results: list[Packed] = future.result()
    except Exception as exc:  # the batch failed as a whole: every job in it
        return [(job, feeder.skipped(job, _lost(job, exc), now)) for job in jobs]
    finally:
        future.release()
    for packed in results:
        job = by_index.pop(packed[0])
        out.append((job, feeder.skipped(job, unpack(job, packed), now)))
    for job in by_index.values():  # not reported: cannot happen, but never lose a job
        out.append((job, feeder.skipped(job, _lost(job, RuntimeError("no result")), now)))
    return out


def run_on(
    address: str | None, feeder: Feeder, settings: Settings, store: Store | None = None
) -> Iterator[Batch]:
    """Fetch jobs on the Dask cluster at ``address`` (None: see :func:`connect`), its
    workers uploading to ``store`` when the destination is one."""
    client, cluster = connect(address)
    log = logger(INFO)
    if log is not None:  # --log-file, or the "manyget" logger at INFO
        log.info(
            "dask scheduler %s, dashboard %s", client.scheduler.address, client.dashboard_link
        )
    try:
        yield from drive_cluster(client, feeder, settings, store)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
    """Fetch jobs on a Dask cluster (``DASK_SCHEDULER_ADDRESS``, or a LocalCluster)."""
    return run_on(None, feeder, settings)
