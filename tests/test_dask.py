"""The dask engine: the engine contract on a LocalCluster of 2 worker processes, a worker
killed mid-run, the client killed with kill -9 and rerun with the journal on a separate
`dask scheduler` with two `dask worker` processes, and `executor=client.get_executor()`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import manyget
from _counting import CountingServer, body_of
from manyget import Status
from manyget._journal import DEFAULT_NAME
from manyget._server import POP20_CC, Server
from test_engines import (
    assert_flags_saved,
    flag_urls,
    test_all_194_flags_byte_identical,
    test_big_file_streams_to_disk,
    test_download_from_a_worker_thread,
    test_download_inside_running_event_loop,
    test_mixed_list_counts_and_goes_on,
    test_no_temporary_files_left,
    test_pop20_byte_identical,
)
from test_journal import counting, test_every_engine_records_and_rerun_skips_without_looking
from test_store import body, moto, need_module, objects, s3
from test_transport import test_every_engine_meets_the_edge_the_same_way

pytestmark = pytest.mark.timeout(180)

__all__ = [  # the contract tests every engine passes, collected here for dask
    "counting",
    "moto",
    "s3",
    "test_all_194_flags_byte_identical",
    "test_big_file_streams_to_disk",
    "test_download_from_a_worker_thread",
    "test_download_inside_running_event_loop",
    "test_every_engine_meets_the_edge_the_same_way",
    "test_every_engine_records_and_rerun_skips_without_looking",
    "test_mixed_list_counts_and_goes_on",
    "test_no_temporary_files_left",
    "test_pop20_byte_identical",
]


def _need_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        if os.environ.get("MANYGET_CI") == "1":
            pytest.fail("distributed is not installed, and CI must run the dask tests")
        pytest.skip("distributed is not installed (pip install manyget[dask])")


def local_cluster() -> Any:
    _need_distributed()
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """One LocalCluster of 2 worker processes for the module, found through
    DASK_SCHEDULER_ADDRESS as a user's would be."""
    with local_cluster() as started:
        before = os.environ.get("DASK_SCHEDULER_ADDRESS")
        os.environ["DASK_SCHEDULER_ADDRESS"] = started.scheduler_address
        try:
            yield started
        finally:
            if before is None:
                del os.environ["DASK_SCHEDULER_ADDRESS"]
            else:
                os.environ["DASK_SCHEDULER_ADDRESS"] = before


@pytest.fixture
def engine(cluster: Any) -> str:
    """The contract tests imported above run on the dask engine."""
    return "dask"


def worker_pids(address: str) -> dict[str, int]:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        pids: dict[str, int] = client.run(os.getpid)
        where: dict[str, str] = client.run(lambda: manyget.__file__)
    src = os.path.dirname(manyget.__file__)
    assert all(os.path.dirname(f) == src for f in where.values()), where  # this tree's code
    return pids


def rows(journal: Path) -> dict[str, str]:
    with sqlite3.connect(journal) as db:
        return dict(db.execute("SELECT name, state FROM urls"))


def test_workers_run_this_tree(cluster: Any) -> None:
    """The worker processes import manyget from the same tree as the tests."""
    assert len(worker_pids(cluster.scheduler_address)) == 2


def test_import_manyget_does_not_import_distributed() -> None:
    """Only the dask engine imports distributed: not manyget, not another engine."""
    probe = (
        "import sys, manyget\n"
        "from manyget._engines import get_engine\n"
        "for name in manyget.ENGINES:\n"
        "    if name != 'dask': get_engine(name)\n"
        "manyget.download([], '/tmp')\n"
        "print('distributed' in sys.modules, 'dask' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False False"


def test_scheduler_option_only_for_dask(tmp_path: Path) -> None:
    """scheduler= with another engine is a usage error, before any request."""
    with pytest.raises(manyget.UsageError, match="dask"):
        manyget.download([], tmp_path, engine="multi", scheduler="tcp://127.0.0.1:1")


def test_dask_executor(server: Server, cluster: Any, tmp_path: Path) -> None:
    """executor=client.get_executor(): one attempt per Dask task, through _window."""
    from distributed import Client

    with Client(cluster.scheduler_address, set_as_default=False) as client:
        executor = client.get_executor()
        report = manyget.download(flag_urls(server, POP20_CC), tmp_path, executor=executor)
    assert report.counts == {Status.OK: 20}
    assert_flags_saved(tmp_path, POP20_CC)


def test_list_read_lazily_within_a_window(server: Server, engine: str, tmp_path: Path) -> None:
    """The client reads the list only a bounded window ahead of the results (two
    batches per worker slot and the read-ahead), not the whole list."""
    pulled = 0
    n = 6000

    def urls() -> Iterator[str]:
        nonlocal pulled
        for i in range(n):
            pulled += 1
            yield f"{server.url}/bytes/16?i={i}"

    seen = ahead = 0
    for result in manyget.iter_download(urls(), tmp_path, engine=engine, per_host=64):
        seen += 1
        ahead = max(ahead, pulled - seen)
        assert result.status is Status.OK
    assert seen == n
    assert ahead <= 2 * 2 * 1000 + 2 * 64 + 64


def test_per_host_limit_holds_for_the_cluster(cluster: Any, tmp_path: Path) -> None:
    """Batches on both workers at once: each gets its share of per_host, so the server
    never sees more than per_host requests at once from the whole cluster."""
    with CountingServer() as srv:
        urls = srv.urls(160, delay=0.03)
        report = manyget.download(urls, tmp_path, engine="dask", per_host=2, concurrency=16)
        assert report.counts == {Status.OK: 160}
        assert srv.peak == 2


def test_a_killed_worker_loses_nothing(tmp_path: Path) -> None:
    """A worker killed (SIGKILL) mid-run: its batch runs again elsewhere; every URL is
    reported once, every file is complete and correct, and the journal agrees."""
    n = 400
    with local_cluster() as own, CountingServer() as srv:
        urls = srv.urls(n, delay=0.04)
        reports: list[manyget.Report] = []
        dest = tmp_path / "d"

        def run() -> None:
            reports.append(
                manyget.download(
                    urls, dest, engine="dask", scheduler=own.scheduler_address, journal=True
                )
            )

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(tmp_path.glob("d/*.bin"))) < 40:
            time.sleep(0.02)
        victim = sorted(worker_pids(own.scheduler_address).values())[0]
        os.kill(victim, signal.SIGKILL)
        thread.join(timeout=120)
        assert reports, "the run did not end"
    report = reports[0]
    assert report.failed == 0
    assert report.total == n
    assert len({r.url for r in report.results}) == n
    for i in range(n):
        assert (dest / f"{i}.bin").read_bytes() == body_of(f"{i}.bin", 1000)
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == sorted(
        f"{i}.bin" for i in range(n)
    )
    assert not [p for p in dest.iterdir() if p.name.endswith((".part", ".part.json"))]
    recorded = rows(dest / DEFAULT_NAME)
    assert len(recorded) == n
    assert set(recorded.values()) <= {"ok", "skipped"}


def test_closing_stops_the_batches(cluster: Any, tmp_path: Path) -> None:
    """Closing the iterator early stops the batches on the workers before it returns:
    no file appears afterwards, partial files stay hidden, and a rerun completes all.
    (Results come back a batch at a time, so this uses slow URLs, unlike the contract
    test of the other engines.)"""
    n = 200
    with CountingServer() as srv:
        urls = srv.urls(n, delay=0.05)
        results = manyget.iter_download(urls, tmp_path, engine="dask", concurrency=4)
        first = [next(results) for _ in range(5)]
        results.close()
        assert all(r.status is Status.OK for r in first)
        visible = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
        assert 5 <= len(visible) < n
        time.sleep(0.5)
        assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == visible
        hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert all(name.endswith((".part", ".part.json")) for name in hidden)
        again = manyget.download(urls, tmp_path, engine="dask")
    assert again.ok
    for i in range(n):
        assert (tmp_path / f"{i}.bin").read_bytes() == body_of(f"{i}.bin", 1000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def started_processes(env: dict[str, str] | None = None) -> Iterator[str]:
    """A `dask scheduler` and two `dask worker` processes on loopback (the workers with
    ``env`` as their environment); its address."""
    _need_distributed()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address]
    children = [
        subprocess.Popen(
            [*scheduler, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], **quiet
        )
    ]
    try:
        for _ in range(2):
            options = ["--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"]
            children.append(subprocess.Popen([*worker, *options], env=env, **quiet))
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, set_as_default=False, timeout=5) as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield address
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)


@pytest.fixture
def dask_processes() -> Iterator[str]:
    """A `dask scheduler` and two `dask worker` processes on loopback; its address."""
    with started_processes() as address:
        yield address


def idle(address: str) -> None:
    """Wait until no task runs on the cluster (a killed client's batches have stopped)."""
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not any(client.run(lambda dask_worker: len(dask_worker.state.executing)).values()):
                return
            time.sleep(0.1)
    raise AssertionError("the cluster stayed busy")


def test_client_killed_then_rerun_with_the_journal(dask_processes: str, tmp_path: Path) -> None:
    """Through --scheduler on a separate scheduler and two workers: the client killed with
    SIGKILL mid-run, then rerun with the journal, fetches no completed file twice and
    leaves nothing missing."""
    n = 300
    dest = tmp_path / "d"
    dest.mkdir()
    with CountingServer() as srv:
        listing = tmp_path / "list.txt"
        listing.write_text("\n".join(srv.urls(n, delay=0.04)) + "\n")
        args = ["get", "-q", "-i", str(listing), "-d", str(dest), "--journal"]
        args += ["--engine", "dask", "--scheduler", dask_processes, "-j", "8"]
        child = subprocess.Popen(
            [sys.executable, "-m", "manyget", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        journal = dest / DEFAULT_NAME
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if len(rows(journal)) >= 40:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        completed = {p.name for p in dest.iterdir() if p.name.endswith(".bin")}
        recorded = rows(journal)
        assert 40 <= len(recorded) < n
        assert set(recorded) <= completed  # a record never says done for a missing file
        idle(dask_processes)
        done = subprocess.run(
            [sys.executable, "-m", "manyget", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        for name in completed:
            assert srv.counts[f"/f/{name}"] == 1, name
    for i in range(n):
        assert (dest / f"{i}.bin").read_bytes() == body_of(f"{i}.bin", 1000)
    final = rows(journal)
    assert len(final) == n
    assert set(final.values()) <= {"ok", "skipped"}


def test_jobs_travel_as_tuples_with_every_field() -> None:
    """A job shipped to a worker as a tuple comes back equal, every field included (a
    field added to Job must be added to the tuple too)."""
    _need_distributed()
    import dataclasses

    from manyget._engines._dask import _fields
    from manyget._jobs import Job, plan_lines

    entry = "http://a/b\tsha256=" + "a" * 64 + "\theader=X: y\thttp://c/b"
    job = next(j for j in plan_lines([(1, entry)]) if isinstance(j, Job))
    assert len(_fields(job)) == len(dataclasses.fields(Job))
    assert Job(*_fields(job)) == job


def test_results_travel_as_tuples_with_every_field() -> None:
    """A result packed on a worker comes back equal on the client: a mirror's URL, the
    history of every attempt and each field (one added to Result or Attempt must be
    added to the tuples too)."""
    _need_distributed()
    import dataclasses

    from manyget._engines._dask import pack, unpack
    from manyget._jobs import Job
    from manyget._results import Attempt, AttemptKind, Result

    job = Job(url="http://a/x", name="x", index=7, host="http://a:80")
    first = Attempt(http_status=503, kind=AttemptKind.STATUS, retry_after=2.0, kept=10)
    last = Attempt(
        http_status=200, nbytes=16, received=6, complete=True, saved_as="y", http_version="2"
    )
    result = Result(
        url="http://mirror/x", path="/d/y", status=Status.OK, http_status=200, bytes=16,
        received=6, kept=0, seconds=0.5, attempts=2, error=None, history=(first, last),
    )  # fmt: skip
    assert len(pack(job, result)) == len(dataclasses.fields(Result)) + 1  # and the index
    assert len(pack(job, result)[-1][0]) == len(dataclasses.fields(Attempt))
    assert unpack(job, pack(job, result)) == result
    same = dataclasses.replace(result, url=job.url)
    assert pack(job, same)[1] is None  # the job's own URL is not sent back
    assert unpack(job, pack(job, same)) == same


def test_workers_upload_to_the_object_store(
    server: Server, moto: str, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an s3:// destination each worker stages and uploads its own files: the
    workers alone can reach the store (the client's AWS endpoint is a closed port, and
    overwrite= spares it the listing), and the results name the objects. A 404 and a cut
    body leave no object, and the workers' staging folders are gone."""
    need_module("s3fs")
    worker_tmp = tmp_path / "worker-tmp"
    worker_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(worker_tmp)}  # s3's fixture set the AWS variables
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    sizes = [0, 1, 70000, 300001, *range(1000, 1040)]
    urls = [f"{server.url}/bytes/{n}" for n in sizes]
    urls += [f"{server.url}/faults/status/404", f"{server.url}/faults/truncate/50000"]
    dest = f"s3://{s3.bucket}/dask"
    with started_processes(env) as address:
        monkeypatch.setenv("AWS_ENDPOINT_URL", dead)  # the client's: nothing listens
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        report = manyget.download(
            urls, dest, engine="dask", scheduler=address, retries=0, overwrite=True
        )
    by_url = {r.url: r for r in report.results}
    assert report.counts[Status.OK] == len(sizes), report.summary()
    assert by_url[urls[-2]].status is Status.NOT_FOUND
    assert (by_url[urls[-1]].status, by_url[urls[-1]].kept) == (Status.ERROR, 0)
    stored = objects(s3, f"{s3.bucket}/dask")
    assert sorted(stored) == sorted(str(n) for n in sizes)
    for n in sizes:
        assert stored[str(n)] == body(n)
        assert by_url[f"{server.url}/bytes/{n}"].path == f"{dest}/{n}"
    assert list(worker_tmp.glob("manyget-staging-*")) == []
