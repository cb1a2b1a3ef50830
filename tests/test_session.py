"""The session API: Downloader (concurrent.futures style) and the async faces."""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import manyget
from manyget import Status
from manyget._server import POP20_CC, Faults, Server, flag_gif

pytestmark = pytest.mark.timeout(120)


def stall(server: Server, seconds: float, size: int) -> str:
    """A URL answered after ``seconds`` (the size makes each URL's file name distinct)."""
    return f"{server.url}/faults/stall/{size}?seconds={seconds}"


@pytest.fixture(scope="module")
def slow_server() -> Iterator[Server]:
    """The flag server with 0.3 s of latency on every request."""
    with Server(faults=Faults(delay=(0.3, 0.3))) as srv:
        yield srv


def test_submit_returns_real_futures_with_true_states(server: Server, tmp_path: Path) -> None:
    """Futures go pending -> running -> finished; as_completed and callbacks work."""
    seen: list[str] = []
    with manyget.Downloader(tmp_path, concurrency=2, per_host=2) as d:
        futures = [d.submit(stall(server, 0.4, 1000 + i)) for i in range(4)]
        for f in futures:
            f.add_done_callback(lambda f: seen.append(f.result().url))
        time.sleep(0.2)
        states = [f._state for f in futures]
        assert states[:2] == ["RUNNING", "RUNNING"]
        assert states[2:] == ["PENDING", "PENDING"]  # no free slot yet: not started
        done = list(concurrent.futures.as_completed(futures, timeout=30))
    assert len(done) == 4
    assert all(f.done() and f.result().status is Status.OK for f in futures)
    assert sorted(seen) == sorted(f.result().url for f in futures)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1000", "1001", "1002", "1003"]


def test_cancelled_before_start_is_never_fetched(server: Server, tmp_path: Path) -> None:
    """A future cancelled while pending is skipped; cancel() fails on a running one."""
    with manyget.Downloader(tmp_path, concurrency=1) as d:
        first = d.submit(stall(server, 0.5, 2000))
        second = d.submit(f"{server.url}/bytes/2001")
        time.sleep(0.2)
        assert not first.cancel()  # running
        assert second.cancel()
    assert first.result().status is Status.OK
    assert second.cancelled()
    assert not (tmp_path / "2001").exists()


def test_map_yields_in_input_order_like_executor_map(server: Server, tmp_path: Path) -> None:
    """The book's loiter experiment: later URLs finish first, results still come in order."""
    urls = [stall(server, s, 3000 + i) for i, s in enumerate([0.8, 0.6, 0.4, 0.2, 0.0])]
    finished_at: dict[str, float] = {}
    with manyget.Downloader(tmp_path, concurrency=5, per_host=5) as d:
        start = time.monotonic()
        for result in d.map(urls):
            finished_at[result.url] = time.monotonic() - start
            assert result.status is Status.OK
        order = list(finished_at)
    assert order == urls
    # The first result was awaited until the slowest finished; the rest were waiting.
    assert finished_at[urls[0]] >= 0.8
    assert finished_at[urls[-1]] - finished_at[urls[0]] < 0.2


def test_as_completed_and_download_report(server: Server, tmp_path: Path) -> None:
    """as_completed yields in completion order; download() gives a Report."""
    urls = [stall(server, s, 4000 + i) for i, s in enumerate([0.6, 0.0, 0.3])]
    with manyget.Downloader(tmp_path, per_host=3) as d:
        got = [r.url for r in d.as_completed(urls)]
        report = d.download([f"{server.url}/bytes/4100", f"{server.url}/status/404"])
    assert got == [urls[1], urls[2], urls[0]]
    assert report.counts == {Status.OK: 1, Status.NOT_FOUND: 1}


def test_submit_from_many_threads_with_back_pressure(server: Server, tmp_path: Path) -> None:
    """Eight threads submit 400 URLs at once: every future resolves; the queue stays bounded."""
    futures: list[concurrent.futures.Future[manyget.Result]] = []
    lock = threading.Lock()
    peak = 0
    with manyget.Downloader(tmp_path, concurrency=4, queue_size=8) as d:

        def submit_many(t: int) -> None:
            nonlocal peak
            for i in range(50):
                f = d.submit(f"{server.url}/bytes/{5000 + t * 100 + i}")
                with lock:
                    futures.append(f)
                    peak = max(peak, d._queue.qsize())

        threads = [threading.Thread(target=submit_many, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(futures) == 400
    assert all(f.result().status is Status.OK for f in futures)
    assert peak <= 8
    assert len(list(tmp_path.iterdir())) == 400


def test_shutdown_cancel_futures(server: Server, tmp_path: Path) -> None:
    """shutdown(cancel_futures=True) cancels what has not started; the running one ends."""
    d = manyget.Downloader(tmp_path, concurrency=1)
    running = d.submit(stall(server, 0.3, 6000))
    queued = [d.submit(f"{server.url}/bytes/{6001 + i}") for i in range(5)]
    time.sleep(0.1)
    d.shutdown(wait=True, cancel_futures=True)
    assert running.result().status is Status.OK
    assert all(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError):
        d.submit(f"{server.url}/bytes/6100")


def test_submit_name_and_sha256(server: Server, tmp_path: Path) -> None:
    """submit(name=) saves under that (cleaned) name; a wrong sha256 publishes nothing."""
    with manyget.Downloader(tmp_path) as d:
        named = d.submit(f"{server.flags_url}/br/br.gif", name="brazil.gif")
        wrong = d.submit(f"{server.flags_url}/cn/cn.gif", sha256="0" * 64)
    assert named.result().path == str(tmp_path / "brazil.gif")
    assert (tmp_path / "brazil.gif").read_bytes() == flag_gif("BR")
    assert wrong.result().status is Status.ERROR
    assert "sha256 mismatch" in (wrong.result().error or "")
    assert not (tmp_path / "cn.gif").exists()


def test_sequential_session_reports_one_connection(tmp_path: Path) -> None:
    """The session knows its engine's real concurrency: sequential is one."""
    assert manyget.Downloader(tmp_path, engine="sequential", concurrency=20).concurrency == 1
    assert manyget.Downloader(tmp_path, engine="threads", concurrency=20).concurrency == 20


async def _ticker(stop: asyncio.Event, ticks: list[float]) -> None:
    while not stop.is_set():
        ticks.append(time.monotonic())
        await asyncio.sleep(0.05)


def test_adownload_never_blocks_the_loop(slow_server: Server, tmp_path: Path) -> None:
    """A 50 ms ticker keeps ticking while adownload fetches 20 delayed flags."""
    urls = [f"{slow_server.flags_url}/{cc.lower()}/{cc.lower()}.gif" for cc in POP20_CC]

    async def main() -> tuple[manyget.Report, list[float], float]:
        stop = asyncio.Event()
        ticks: list[float] = []
        ticker = asyncio.create_task(_ticker(stop, ticks))
        start = time.monotonic()
        report = await manyget.adownload(urls, tmp_path, per_host=20)
        elapsed = time.monotonic() - start
        stop.set()
        await ticker
        return report, ticks, elapsed

    report, ticks, elapsed = asyncio.run(main())
    assert report.counts == {Status.OK: 20}
    assert elapsed >= 0.3
    assert len(ticks) >= 0.5 * elapsed / 0.05  # a blocked loop would tick once or twice
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.25


def test_aiter_download_and_async_downloader(slow_server: Server, tmp_path: Path) -> None:
    """aiter_download yields as completed; AsyncDownloader.fetch shares one session."""
    urls = [f"{slow_server.flags_url}/{cc.lower()}/{cc.lower()}.gif" for cc in POP20_CC[:5]]

    async def main() -> tuple[list[manyget.Result], list[manyget.Result]]:
        streamed = [r async for r in manyget.aiter_download(urls, tmp_path / "a")]
        (tmp_path / "b").mkdir()
        async with manyget.AsyncDownloader(tmp_path / "b", per_host=5) as d:
            fetched = await asyncio.gather(*(d.fetch(u) for u in urls))
        return streamed, list(fetched)

    streamed, fetched = asyncio.run(main())
    assert sorted(r.url for r in streamed) == sorted(urls)
    assert [r.url for r in fetched] == urls
    assert all(r.status is Status.OK for r in [*streamed, *fetched])
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(
        f"{cc.lower()}.gif" for cc in POP20_CC[:5]
    )


def test_async_api_refuses_other_engines(tmp_path: Path) -> None:
    """The async API runs the asyncio engine on the caller's loop, and says so."""
    with pytest.raises(manyget.UsageError, match="asyncio engine"):
        manyget.AsyncDownloader(tmp_path, engine="threads")


def test_map_submits_before_it_returns(server: Server, tmp_path: Path) -> None:
    """Like Executor.map, the downloads start when map() is called, not at the first next()."""
    urls = [stall(server, 0.5, 7000 + i) for i in range(3)]
    with manyget.Downloader(tmp_path, per_host=3) as d:
        results = d.map(urls)
        time.sleep(0.7)  # the caller does other work meanwhile
        start = time.monotonic()
        got = [r.url for r in results]
        waited = time.monotonic() - start
    assert got == urls
    assert waited < 0.4  # a lazy map would only start now and wait 0.5 s more


def test_map_timeout_counts_from_the_call(server: Server, tmp_path: Path) -> None:
    """map(timeout=) raises TimeoutError once the time since the call has run out."""
    with manyget.Downloader(tmp_path) as d:
        results = d.map([stall(server, 2.0, 7100)], timeout=0.3)
        time.sleep(0.4)
        with pytest.raises(TimeoutError):
            next(results)
        d.shutdown(cancel_futures=True)


def test_async_as_completed_window(server: Server, tmp_path: Path) -> None:
    """AsyncDownloader.as_completed yields every result of a list longer than its window."""
    urls = [f"{server.url}/bytes/{8000 + i}" for i in range(150)]

    async def main() -> list[manyget.Result]:
        async with manyget.AsyncDownloader(tmp_path, concurrency=4) as d:
            return [r async for r in d.as_completed(urls)]

    results = asyncio.run(main())
    assert sorted(r.url for r in results) == sorted(urls)
    assert len(list(tmp_path.iterdir())) == 150


def test_sync_asyncio_engine_works_inside_a_running_loop(server: Server, tmp_path: Path) -> None:
    """download(engine="asyncio") called from a coroutine (a notebook cell) cannot run a
    second loop on that thread; its private loop gets a thread of its own and it works."""

    async def cell() -> manyget.Report:
        return manyget.download(
            [f"{server.url}/flags/{cc.lower()}/{cc.lower()}.gif" for cc in POP20_CC[:5]],
            tmp_path,
            engine="asyncio",
        )

    report = asyncio.run(cell())
    assert report.counts[Status.OK] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{cc.lower()}.gif" for cc in POP20_CC[:5]
    )
