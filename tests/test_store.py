"""Object-storage destinations: downloads staged locally, then uploaded so that an object
appears only when complete (moto's S3 server on loopback; memory:// for the stage itself)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import manyget
from manyget import Status
from manyget._server import Server
from manyget._server._resources import bytes_chunks

pytestmark = pytest.mark.timeout(120)


def need_module(name: str) -> None:
    """Skip without ``name`` on a developer's machine; fail under CI, which installs it."""
    try:
        importlib.import_module(name)
    except ImportError:
        if os.environ.get("MANYGET_CI") == "1":
            pytest.fail(f"{name} is not installed, and CI must run this test")
        pytest.skip(f"{name} is not installed")


def body(n: int) -> bytes:
    """What the test server's /bytes/{n} serves."""
    return b"".join(bytes_chunks(n, 0, n))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- servers


class CutProxy:
    """A loopback relay to ``upstream`` that cuts, after ``limit`` bytes of its body, any
    request whose body is longer: an upload that breaks off half-way, the store never
    receiving the rest (a socket-level fault a well-behaved server cannot produce)."""

    def __init__(self, upstream: tuple[str, int], limit: int, delay: float = 0.0) -> None:
        self.upstream = upstream
        self.limit = limit
        self.delay = delay  # seconds each request waits before it goes on
        self.cut = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)

        def back() -> None:
            try:
                while data := server.recv(65536):
                    client.sendall(data)
            except OSError:
                pass

        threading.Thread(target=back, daemon=True).start()
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                if self.delay:
                    time.sleep(self.delay)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    key, _, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value)
                server.sendall(head + b"\r\n\r\n")
                cut = length > self.limit
                left = self.limit if cut else length
                while left:
                    if not buf:
                        buf = client.recv(65536)
                        if not buf:
                            return
                    part, buf = buf[:left], buf[left:]
                    server.sendall(part)
                    left -= len(part)
                if cut:
                    self.cut += 1
                    return
        except OSError:
            pass
        finally:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole module: its endpoint."""
    need_module("moto.server")
    need_module("s3fs")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        srv.stop()


@pytest.fixture
def s3(moto: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh bucket on moto, the environment pointing AWS clients at it (as a user's
    would: AWS_ENDPOINT_URL and the usual credentials); an s3fs file system to check."""
    for name, value in {
        "AWS_ENDPOINT_URL": moto,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.bucket = bucket
    return fs


def objects(fs: Any, path: str) -> dict[str, bytes]:
    """Every object under ``path``, by name, read back from the store."""
    fs.invalidate_cache()
    try:
        names = fs.ls(path)
    except FileNotFoundError:
        return {}
    return {name.rsplit("/", 1)[-1]: fs.cat_file(name) for name in names}


@pytest.fixture
def staging_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where private staging folders go in this test (to see that they are removed)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


# --------------------------------------------------------------------------- S3 (moto)


def test_s3_round_trip_every_engine(
    server: Server, s3: Any, engine: str, staging_root: Path
) -> None:
    """Every engine: objects complete and byte-identical; none for a 404 or a cut body."""
    sizes = [0, 1, 4096, 70000, 300001, *list(range(1000, 1020))]
    urls = [f"{server.url}/bytes/{n}" for n in sizes]
    urls += [f"{server.url}/faults/status/404", f"{server.url}/faults/truncate/50000"]
    dest = f"s3://{s3.bucket}/run/{engine}"
    report = manyget.download(urls, dest, engine=engine, retries=0, per_host=8)
    by_url = {r.url: r for r in report.results}
    assert report.counts[Status.OK] == len(sizes)
    assert by_url[urls[-2]].status is Status.NOT_FOUND
    assert by_url[urls[-1]].status is Status.ERROR
    assert by_url[urls[-1]].kept == 0  # the temporary staging folder is gone
    stored = objects(s3, f"{s3.bucket}/run/{engine}")
    assert sorted(stored) == sorted(str(n) for n in sizes)
    for n in sizes:
        assert sha(stored[str(n)]) == sha(body(n))
        assert by_url[f"{server.url}/bytes/{n}"].path == f"{dest}/{n}"
    assert list(staging_root.glob("manyget-staging-*")) == []


def test_s3_rerun_skips_what_is_stored_without_a_request(
    server: Server, s3: Any, tmp_path: Path
) -> None:
    """A rerun lists the prefix once and skips stored names: no request reaches a host."""
    dest = f"s3://{s3.bucket}/again/"
    names = [str(n) for n in range(2000, 2040)]
    first = manyget.download([f"{server.url}/bytes/{n}" for n in names], dest)
    assert first.ok
    assert first.counts[Status.OK] == len(names)
    # The same names on a port where nothing listens: any request would fail.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    again = manyget.download([f"http://127.0.0.1:{port}/{n}" for n in names], dest)
    assert again.counts[Status.SKIPPED] == len(names), again.summary()
    for result in again.results:
        assert result.path == f"s3://{s3.bucket}/again/{result.url.rsplit('/', 1)[-1]}"
    assert sorted(r.bytes for r in again.results) == sorted(int(n) for n in names)
    overwrite = manyget.download([f"http://127.0.0.1:{port}/{names[0]}"], dest, overwrite=True)
    assert overwrite.counts[Status.ERROR] == 1  # overwrite: fetched again, not skipped


@pytest.mark.parametrize("multipart", [False, True], ids=["put", "multipart"])
def test_s3_upload_cut_midway_leaves_no_object(
    server: Server, s3: Any, moto: str, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    """An upload that breaks off half-way is that URL's failure; no object, none partial."""
    host, port = moto.removeprefix("http://").split(":")
    big = 17 << 20 if multipart else 200_000  # 17 MiB: three parts of at most 8 MiB
    limit = (4 << 20) if multipart else 100_000
    proxy = CutProxy((host, int(port)), limit)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    try:
        urls = [f"{server.url}/bytes/{n}" for n in (3000, 3001, big)]
        with manyget.Downloader(
            f"s3://{s3.bucket}/cut",
            storage_options={"config_kwargs": {"retries": {"max_attempts": 1}}},
        ) as d:
            d.store.fs.retries = 1  # s3fs's own retries: one try is enough here
            results = {r.url: r for r in d.iterate(urls)}
    finally:
        proxy.close()
    assert proxy.cut >= 1
    failed = results[urls[-1]]
    assert failed.status is Status.ERROR
    assert failed.path is None
    assert failed.error is not None
    assert failed.error.startswith(f"upload to s3://{s3.bucket}/cut/{big} failed: ")
    assert results[urls[0]].ok
    assert results[urls[1]].ok
    stored = objects(s3, f"{s3.bucket}/cut")
    assert sorted(stored) == ["3000", "3001"]
    assert stored["3000"] == body(3000)
    import boto3

    client = boto3.client("s3", endpoint_url=moto)
    assert not client.list_multipart_uploads(Bucket=s3.bucket).get("Uploads")  # aborted


def test_s3_cli_round_trip_and_bad_destinations(server: Server, s3: Any, tmp_path: Path) -> None:
    """`manyget get -d s3://...` with the usual AWS environment; a missing bucket is one
    line and exit status 3 before any request."""
    urls = [f"{server.url}/bytes/{n}" for n in (4000, 4001)]
    done = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-d", f"s3://{s3.bucket}/cli", *urls],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(objects(s3, f"{s3.bucket}/cli")) == ["4000", "4001"]
    missing = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-d", "s3://no-such-bucket-here/x", *urls],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 3
    assert missing.stderr.strip().splitlines() == [
        "manyget: error: destination s3://no-such-bucket-here/x: bucket "
        "'no-such-bucket-here' does not exist"
    ]


def test_s3_journal_records_objects_and_a_rerun_skips_them(
    server: Server, s3: Any, tmp_path: Path
) -> None:
    """With an object-store destination the journal belongs to the store's URL and records
    each object's URL; a rerun skips what it records as done, and reports the objects."""
    import sqlite3

    dest = f"s3://{s3.bucket}/journal"
    journal = tmp_path / "j.sqlite"
    urls = [f"{server.url}/bytes/{n}" for n in (5000, 5001, 5002)]
    urls.append(f"{server.url}/faults/status/404")
    argv = [sys.executable, "-m", "manyget", "get", "-q", "-d", dest, "--journal", str(journal)]
    first = subprocess.run([*argv, *urls], capture_output=True, text=True, timeout=60)
    assert first.returncode == 1, first.stderr  # the 404
    with sqlite3.connect(journal) as db:
        rows = dict(db.execute("SELECT name, path FROM urls WHERE state = 'ok'"))
        (recorded,) = db.execute("SELECT value FROM meta WHERE key = 'dest'").fetchone()
    assert recorded == dest
    assert rows == {n: f"{dest}/{n}" for n in ("5000", "5001", "5002")}
    # The rerun skips the three from the journal, and fetches the 404 again.
    again = manyget.download(urls, dest, journal=journal, retries=0)
    by_url = {r.url: r for r in again.results}
    for n in ("5000", "5001", "5002"):
        result = by_url[f"{server.url}/bytes/{n}"]
        assert (result.status, result.attempts, result.path) == (Status.SKIPPED, 0, f"{dest}/{n}")
    assert by_url[urls[-1]].status is Status.NOT_FOUND
    status = subprocess.run(
        [sys.executable, "-m", "manyget", "status", str(journal)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 1, status.stderr  # the 404 is recorded as failed
    assert f"destination {dest}" in status.stdout
    # A bare --journal would go to the private staging folder, gone after the run.
    bare = subprocess.run([*argv[:-1], *urls], capture_output=True, text=True, timeout=60)
    assert bare.returncode == 2
    assert bare.stderr.strip().splitlines() == [
        "manyget: error: --journal needs a FILE with an object-store destination "
        "(or --staging DIR, which then holds it)"
    ]


# --------------------------------------------------------------------------- memory://


def memory_fs() -> Any:
    import fsspec

    need_module("fsspec")
    return fsspec.filesystem("memory")


@pytest.fixture
def mem() -> Iterator[str]:
    """A fresh memory:// prefix, removed afterwards."""
    fs = memory_fs()
    root = f"/t{uuid.uuid4().hex[:12]}"
    yield root
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_results_arrive_only_after_upload(
    server: Server, mem: str, staging_root: Path
) -> None:
    """Each result names its object, which is there and whole when the result arrives."""
    fs = memory_fs()
    urls = [f"{server.url}/bytes/{n}" for n in range(5000, 5060)]
    for result in manyget.iter_download(urls, f"memory:/{mem}", concurrency=16):
        assert result.status is Status.OK
        assert result.path == f"memory:/{mem}/{result.url.rsplit('/', 1)[-1]}"
        assert fs.cat_file(f"{mem}/{result.url.rsplit('/', 1)[-1]}") == body(result.bytes)
    assert list(staging_root.glob("manyget-staging-*")) == []


def test_memory_futures_resolve_when_uploaded(server: Server, mem: str) -> None:
    """Downloader.submit: a lone future resolves once uploaded, though the engine is idle."""
    with manyget.Downloader(f"memory:/{mem}") as d:
        result = d.submit(f"{server.url}/bytes/5100").result(timeout=10)
        assert result.path == f"memory:/{mem}/5100"
        assert memory_fs().cat_file(f"{mem}/5100") == body(5100)


def test_memory_failed_upload_is_that_urls_failure(server: Server, mem: str) -> None:
    """An upload the store refuses fails that URL alone, with the store's reason."""
    fs = memory_fs()
    fs.mkdir(f"{mem}/5201")  # a folder: no object can have that name
    urls = [f"{server.url}/bytes/{n}" for n in (5200, 5201, 5202)]
    report = manyget.download(urls, f"memory:/{mem}")
    by_url = {r.url: r for r in report.results}
    assert by_url[urls[1]].status is Status.ERROR
    assert by_url[urls[1]].error is not None
    assert by_url[urls[1]].error.startswith(f"upload to memory:/{mem}/5201 failed: ")
    assert by_url[urls[0]].ok
    assert by_url[urls[2]].ok
    assert not fs.isfile(f"{mem}/5201")


def test_memory_persistent_staging_resumes_and_uploads_next_run(
    server: Server, mem: str, tmp_path: Path
) -> None:
    """With staging=DIR, a cut body resumes there, and a file whose upload failed is
    uploaded by the next run without a request."""
    fs = memory_fs()
    staging = tmp_path / "staging"
    fs.mkdir(f"{mem}/5301")  # a folder: the upload of 5301 fails this time
    urls = [f"{server.url}/faults/truncate/60000", f"{server.url}/bytes/5301"]
    first = manyget.download(urls, f"memory:/{mem}", staging=staging, retries=0)
    assert [r.status for r in first.results].count(Status.ERROR) == 2
    assert (staging / "5301").stat().st_size == 5301  # kept whole, for the next run
    assert (staging / ".60000.part").exists()  # half the body, for a resume
    fs.rm(f"{mem}/5301", recursive=True)
    second = manyget.download(urls, f"memory:/{mem}", staging=staging, retries=0)
    by_url = {r.url: r for r in second.results}
    assert by_url[urls[0]].status is Status.OK
    assert by_url[urls[0]].received == 30000  # only the rest
    assert by_url[urls[1]].status is Status.SKIPPED  # no request: uploaded from staging
    assert fs.cat_file(f"{mem}/60000") == body(60000)
    assert fs.cat_file(f"{mem}/5301") == body(5301)
    assert sorted(os.listdir(staging)) == []


def test_generic_store_discards_a_failed_upload(tmp_path: Path) -> None:
    """Stores without their own rule write with autocommit=False: commit, or discard."""
    need_module("fsspec")
    from fsspec.implementations.local import LocalFileSystem

    from manyget._store import Store

    store = Store(url="x://t", fs=LocalFileSystem(), root=str(tmp_path / "out"))
    (tmp_path / "out").mkdir()
    source = tmp_path / "source"
    source.write_bytes(b"a" * 100_000)
    store.upload(str(source), "whole")
    assert (tmp_path / "out" / "whole").read_bytes() == b"a" * 100_000
    with pytest.raises(IsADirectoryError):
        store.upload(str(tmp_path), "broken")  # the target is open when reading fails
    assert sorted(os.listdir(tmp_path / "out")) == ["whole"]


# --------------------------------------------------------------------------- faces


def test_s3_async_api_uploads_without_blocking_the_loop(
    server: Server, s3: Any, moto: str, monkeypatch: pytest.MonkeyPatch, staging_root: Path
) -> None:
    """adownload into S3 with every request to the store taking 1 s (24 files, room for
    16 in the upload pool): every object whole, every result naming it, and a 50 ms
    ticker on the same loop keeps ticking while the store is opened and listed, the
    pool is full and the last uploads are waited for. (Any of those on the loop stops
    it for about a second; moto answering in this process, with 8 upload threads, may
    hold it up for a third of one.)"""
    import asyncio
    import itertools

    host, port = moto.removeprefix("http://").split(":")
    proxy = CutProxy((host, int(port)), 1 << 30, delay=1.0)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    dest = f"s3://{s3.bucket}/async"
    urls = [f"{server.url}/bytes/{n}" for n in range(9000, 9024)]

    async def main() -> tuple[manyget.Report, list[float]]:
        stop, ticks = asyncio.Event(), [time.monotonic()]

        async def tick() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
                ticks.append(time.monotonic())

        ticker = asyncio.create_task(tick())
        try:
            return await manyget.adownload(urls, dest, concurrency=16), ticks
        finally:
            stop.set()
            await ticker

    try:
        report, ticks = asyncio.run(main())
    finally:
        proxy.close()
    assert report.counts == {Status.OK: 24}, report.summary()
    assert sorted(str(r.path) for r in report.results) == [
        f"{dest}/{n}" for n in range(9000, 9024)
    ]
    stored = objects(s3, f"{s3.bucket}/async")
    assert {name: sha(data) for name, data in stored.items()} == {
        str(n): sha(body(n)) for n in range(9000, 9024)
    }
    assert ticks[-1] - ticks[0] > 3  # the listing, then 24 uploads 8 at a time
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.6
    assert list(staging_root.glob("manyget-staging-*")) == []


def test_memory_async_downloader_names_objects_and_skips_stored_ones(
    server: Server, mem: str, tmp_path: Path
) -> None:
    """AsyncDownloader into a store: results name objects; a second session skips them
    (listed once, no request); an unusable store fails every fetch, then aclose."""
    import asyncio

    dest = f"memory:/{mem}"
    urls = [f"{server.url}/bytes/{n}" for n in (9100, 9101, 9102)]

    async def fetch_all() -> list[manyget.Result]:
        async with manyget.AsyncDownloader(dest) as d:
            return list(await asyncio.gather(*(d.fetch(u) for u in urls)))

    first = asyncio.run(fetch_all())
    assert [r.path for r in first] == [f"{dest}/{n}" for n in (9100, 9101, 9102)]
    assert memory_fs().cat_file(f"{mem}/9101") == body(9101)
    again = asyncio.run(fetch_all())
    assert [r.status for r in again] == [Status.SKIPPED] * 3
    assert [r.path for r in again] == [r.path for r in first]

    async def unusable() -> None:
        d = manyget.AsyncDownloader(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/p")
        with pytest.raises(manyget.DestinationError):
            await d.fetch(urls[0])
        with pytest.raises(manyget.DestinationError):
            await d.aclose()

    need_module("s3fs")
    with socket.socket() as closed:  # an endpoint where nothing listens
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_MAX_ATTEMPTS": "1", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        asyncio.run(unusable())


def test_import_loads_no_store_client() -> None:
    """`import manyget`, and a local run's setup, import neither fsspec nor s3fs."""
    code = (
        "import sys, manyget; manyget.Downloader(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fsspec', 's3fs')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, tempfile.mkdtemp()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("missing", ["fsspec", "s3fs"])
def test_missing_extra_is_one_line_and_exit_3(missing: str, tmp_path: Path) -> None:
    """s3:// without the s3 extra: one line naming what to install, exit status 3."""
    code = (
        f"import sys; sys.modules[{missing!r}] = None; "  # as if it were not installed
        "from manyget._cli import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "get", "-d", "s3://b/p", "http://127.0.0.1:9/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    needs = "fsspec and s3fs" if missing == "fsspec" else "s3fs"
    assert done.stderr.strip().splitlines() == [
        f"manyget: error: destination s3://b/p needs {needs}: pip install 'manyget[s3]'"
    ]


def test_file_url_is_a_local_folder(server: Server, tmp_path: Path) -> None:
    """file:///path is the local folder, with no upload stage."""
    report = manyget.download([f"{server.url}/bytes/10"], f"file://{tmp_path}")
    assert report.ok
    assert (tmp_path / "10").read_bytes() == body(10)


def test_s3_ctrl_c_stops_cleanly_and_leaves_only_whole_objects(
    server: Server, s3: Any, tmp_path: Path
) -> None:
    """Ctrl-C mid-run: exit 130 without a traceback, the finished files stored, no object
    for those in flight, and the temporary staging folder removed."""
    import signal

    fast = [f"{server.url}/bytes/{n}" for n in range(6000, 6010)]
    slow = [f"{server.url}/faults/stall/{n}?seconds=30" for n in range(6100, 6104)]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "manyget", "get", "-d", f"s3://{s3.bucket}/int", *fast, *slow],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    try:
        deadline = time.monotonic() + 30
        while len(objects(s3, f"{s3.bucket}/int")) < len(fast) and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert sorted(objects(s3, f"{s3.bucket}/int")) == [str(n) for n in range(6000, 6010)]
    assert list(tmp.glob("manyget-staging-*")) == []


def test_s3_futures_all_resolve_when_uploads_queue_up(
    server: Server, s3: Any, moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaving a Downloader waits for every upload, queued ones included."""
    host, port = moto.removeprefix("http://").split(":")
    proxy = CutProxy((host, int(port)), 1 << 30, delay=0.2)  # uploads slower than downloads
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    try:
        with manyget.Downloader(f"s3://{s3.bucket}/queued") as d:
            futures = [d.submit(f"{server.url}/bytes/{n}") for n in range(8000, 8040)]
    finally:
        proxy.close()
    assert all(f.done() for f in futures)
    assert [f.result().path for f in futures] == [
        f"s3://{s3.bucket}/queued/{n}" for n in range(8000, 8040)
    ]
    assert len(objects(s3, f"{s3.bucket}/queued")) == 40


@pytest.mark.parametrize("engine", ["multi", "asyncio"])
def test_s3_upload_reported_while_a_long_download_runs(
    server: Server, s3: Any, moto: str, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    """A file's result comes once uploaded, not when another, slower download ends."""
    host, port = moto.removeprefix("http://").split(":")
    proxy = CutProxy((host, int(port)), 1 << 30, delay=0.5)  # every upload takes 0.5 s
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    urls = [f"{server.url}/faults/stall/7000?seconds=8", f"{server.url}/bytes/7001"]
    try:
        results = manyget.iter_download(urls, f"s3://{s3.bucket}/long", engine=engine)
        start = time.monotonic()
        first = next(results)
        assert first.url == urls[1]
        assert first.path == f"s3://{s3.bucket}/long/7001"
        assert time.monotonic() - start < 5
        assert [r.url for r in results] == [urls[0]]
    finally:
        proxy.close()


def test_s3_cli_staging_dir_resumes_a_cut_body(server: Server, s3: Any, tmp_path: Path) -> None:
    """`--staging DIR` keeps a cut body's partial file; the rerun fetches only the rest."""
    staging = tmp_path / "staging"
    url = f"{server.url}/faults/truncate/80000"
    command = [sys.executable, "-m", "manyget", "get", "-d", f"s3://{s3.bucket}/st"]
    command += ["--staging", str(staging), "--retries", "0", "--json", url]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 1, first.stderr
    assert (staging / ".80000.part").stat().st_size == 40000
    assert objects(s3, f"{s3.bucket}/st") == {}
    second = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert second.returncode == 0, second.stderr
    record = json.loads(second.stdout)
    assert record["path"] == f"s3://{s3.bucket}/st/80000"
    assert record["received"] == 40000
    assert objects(s3, f"{s3.bucket}/st") == {"80000": body(80000)}
    assert list(staging.iterdir()) == []
