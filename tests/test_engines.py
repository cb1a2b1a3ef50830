"""One behavioural contract, every engine: real server, real sockets, real files."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pytest

import manyget
from manyget import Status
from manyget._server import COUNTRY_CODES, POP20_CC, Server, flag_gif

pytestmark = pytest.mark.timeout(120)


def flag_urls(server: Server, codes: list[str] | tuple[str, ...]) -> list[str]:
    return [f"{server.flags_url}/{cc.lower()}/{cc.lower()}.gif" for cc in codes]


def assert_flags_saved(dest: Path, codes: list[str] | tuple[str, ...]) -> None:
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted(f"{cc.lower()}.gif" for cc in codes)
    for cc in codes:
        assert (dest / f"{cc.lower()}.gif").read_bytes() == flag_gif(cc), cc


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing.gif"


def test_pop20_byte_identical(server: Server, engine: str, tmp_path: Path) -> None:
    """Every engine saves the 20 most populous countries' flags exactly as served."""
    report = manyget.download(flag_urls(server, POP20_CC), tmp_path, engine=engine)
    assert report.counts == {Status.OK: 20}
    assert report.bytes == sum(len(flag_gif(cc)) for cc in POP20_CC)
    assert_flags_saved(tmp_path, POP20_CC)


def test_all_194_flags_byte_identical(server: Server, engine: str, tmp_path: Path) -> None:
    """Every engine saves all 194 flags exactly as served, at concurrency 64."""
    report = manyget.download(
        flag_urls(server, COUNTRY_CODES), tmp_path, engine=engine, concurrency=64
    )
    assert report.counts == {Status.OK: 194}
    assert_flags_saved(tmp_path, COUNTRY_CODES)
    assert all(r.http_status == 200 and r.attempts == 1 for r in report.results)


def test_mixed_list_counts_and_goes_on(server: Server, engine: str, tmp_path: Path) -> None:
    """404s make no file and count NOT_FOUND; refused and invalid URLs count ERROR."""
    urls = [
        *flag_urls(server, ["BR", "AA", "CN", "ZZ"]),
        refused_url(),
        "file:///etc/passwd",
        *flag_urls(server, ["JP"]),
    ]
    report = manyget.download(urls, tmp_path, engine=engine, concurrency=4)
    assert report.counts == {Status.OK: 3, Status.NOT_FOUND: 2, Status.ERROR: 2}
    assert_flags_saved(tmp_path, ["BR", "CN", "JP"])
    by_url = {r.url: r for r in report.results}
    assert by_url[urls[1]].http_status == 404
    assert by_url[urls[1]].error == "HTTP 404 Not Found"
    assert by_url[urls[4]].http_status is None
    assert by_url[urls[4]].error
    assert by_url[urls[5]].attempts == 0
    assert by_url[urls[5]].error is not None
    assert "scheme" in by_url[urls[5]].error


def test_no_temporary_files_left(server: Server, engine: str, tmp_path: Path) -> None:
    """After a completed run only complete files are in the destination: no leftovers."""
    urls = [*flag_urls(server, COUNTRY_CODES[:30]), f"{server.url}/nope", refused_url()]
    manyget.download(urls, tmp_path, engine=engine, concurrency=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{cc.lower()}.gif" for cc in COUNTRY_CODES[:30]
    )


def test_iter_download_is_lazy_and_bounded(server: Server, engine: str, tmp_path: Path) -> None:
    """URLs are pulled as downloads finish: never more than a small window ahead."""
    pulled = 0
    concurrency = 4

    def urls() -> Iterator[str]:
        nonlocal pulled
        for i in range(300):
            pulled += 1
            yield f"{server.url}/bytes/64?i={i}"

    seen = 0
    ahead = 0
    for result in manyget.iter_download(urls(), tmp_path, engine=engine, concurrency=concurrency):
        seen += 1
        ahead = max(ahead, pulled - seen)
        assert result.status is Status.OK
    assert seen == 300
    # A generator is read ahead on a thread, at most 2 x concurrency URLs; the
    # processes engine holds up to 2 x concurrency jobs; a few more sit in a batch.
    assert ahead <= 4 * concurrency + 4


def test_iter_download_stops_early(server: Server, engine: str, tmp_path: Path) -> None:
    """Closing the iterator early stops the run; only complete files carry final names,
    partial ones stay hidden for a resume, and a rerun completes everything."""
    results = manyget.iter_download(
        flag_urls(server, COUNTRY_CODES), tmp_path, engine=engine, concurrency=4
    )
    first = [next(results) for _ in range(5)]
    results.close()
    assert all(r.status is Status.OK for r in first)
    names = [p.name for p in tmp_path.iterdir()]
    visible = [n for n in names if not n.startswith(".")]
    assert 5 <= len(visible) < 194
    for name in visible:
        assert (tmp_path / name).read_bytes() == flag_gif(name[:2])
    hidden = [n for n in names if n.startswith(".")]
    assert all(n.endswith((".part", ".part.json")) for n in hidden)
    again = manyget.download(flag_urls(server, COUNTRY_CODES), tmp_path, engine=engine)
    assert again.ok
    assert_flags_saved(tmp_path, COUNTRY_CODES)


def test_download_inside_running_event_loop(server: Server, engine: str, tmp_path: Path) -> None:
    """download() works when called from a coroutine, as in a Jupyter cell."""

    async def cell() -> manyget.Report:
        return manyget.download(flag_urls(server, POP20_CC), tmp_path, engine=engine)

    report = asyncio.run(cell())
    assert report.counts == {Status.OK: 20}


def test_download_from_a_worker_thread(server: Server, engine: str, tmp_path: Path) -> None:
    """download() works from a thread that is not the main thread."""
    reports: list[manyget.Report] = []
    thread = threading.Thread(
        target=lambda: reports.append(
            manyget.download(flag_urls(server, POP20_CC), tmp_path, engine=engine)
        )
    )
    thread.start()
    thread.join(timeout=60)
    assert reports
    assert reports[0].counts == {Status.OK: 20}


@pytest.mark.parametrize("pool", [ThreadPoolExecutor, ProcessPoolExecutor])
def test_user_executor(server: Server, tmp_path: Path, pool: type) -> None:
    """Any concurrent.futures.Executor runs the downloads, as in the book."""
    with pool(max_workers=4) as executor:
        report = manyget.download(flag_urls(server, POP20_CC), tmp_path, executor=executor)
    assert report.counts == {Status.OK: 20}
    assert_flags_saved(tmp_path, POP20_CC)


def test_big_file_streams_to_disk(server: Server, engine: str, tmp_path: Path) -> None:
    """A 32 MiB body arrives whole with its exact length."""
    size = 32 * 1024 * 1024
    report = manyget.download([f"{server.url}/bytes/{size}"], tmp_path, engine=engine)
    assert report.counts == {Status.OK: 1}
    assert (tmp_path / str(size)).stat().st_size == size


def test_engine_and_executor_are_exclusive(tmp_path: Path) -> None:
    """Asking for both an engine and an executor is a usage error, before any request."""
    with ThreadPoolExecutor() as executor, pytest.raises(manyget.UsageError):
        manyget.iter_download(
            ["http://127.0.0.1:1/x"], tmp_path, engine="threads", executor=executor
        )


def test_unknown_engine(tmp_path: Path) -> None:
    """An unknown engine name is an EngineError naming the choices."""
    with pytest.raises(manyget.EngineError, match="sequential"):
        manyget.download(["http://127.0.0.1:1/x"], tmp_path, engine="warp")


def test_destination_is_a_file(tmp_path: Path) -> None:
    """A destination that is a file fails before any request, with DestinationError."""
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(manyget.DestinationError):
        manyget.download(["http://127.0.0.1:1/x"], target)


def test_processes_fork_only_a_single_threaded_parent() -> None:
    """Workers start by fork only while the parent has one thread; else via forkserver."""
    probe = (
        "import threading, time\n"
        "from manyget._engines._processes import _context\n"
        "print(_context().get_start_method())\n"
        "threading.Thread(target=time.sleep, args=(1,), daemon=True).start()\n"
        "print(_context().get_start_method())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert out == ["fork", "forkserver"]
