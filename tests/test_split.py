"""Large files fetched as byte ranges (--split): exact bytes on every engine, pieces retried
alone, a rerun fetching only the missing ranges, and one stream whenever ranges fail."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import manyget
from _counting import LoopbackServer
from manyget import AttemptKind, RetryPolicy, Status
from manyget._results import Attempt
from manyget._server import Faults, Server
from manyget._server._resources import bytes_chunks
from manyget._split import (
    AUTO_MOST,
    SLOW,
    Split,
    merge,
    missing,
    most_ranges,
    piece_size,
    split_rest,
    splits,
)

pytestmark = pytest.mark.timeout(120)

KIB, MIB = 1 << 10, 1 << 20
FAST = RetryPolicy(retries=3, backoff=0.01, max_wait=1.0)
ONCE = RetryPolicy(retries=0)
SPLIT = {"split": 4, "min_split_size": 256 * KIB}


def served(size: int, salt: int = 0) -> bytes:
    return (
        b"".join(bytes_chunks(size, 0, size, salt=salt))
        if salt
        else b"".join(bytes_chunks(size, 0, size))
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def fetched(url: str, tmp_path: Path, size: int, **options: Any) -> manyget.Result:
    """The one result of downloading ``url`` with ``options``: OK, and the file exact."""
    report = manyget.download([url], tmp_path, **options)
    (result,) = report.results
    assert result.status is Status.OK, result.error
    assert (tmp_path / str(size)).read_bytes() == served(size)
    return result


# The pure part.


def test_merge_and_missing() -> None:
    """Ranges join where they touch; what is missing is the rest of [0, length)."""
    assert merge([(5, 7), (0, 2), (2, 3), (6, 9), (4, 4)]) == [(0, 3), (5, 9)]
    assert missing(10, [(0, 3), (5, 9)]) == [(3, 5), (9, 10)]
    assert missing(10, []) == [(0, 10)]
    assert missing(10, [(0, 10)]) == []


def test_which_files_split_and_piece_size() -> None:
    """Only files of two pieces or more split; pieces are about four rounds of N."""
    assert not splits(None, 4, MIB)
    assert not splits(2 * MIB - 1, 4, MIB)
    assert splits(2 * MIB, 4, MIB)
    assert not splits(100 * MIB, 1, MIB)
    assert piece_size(1 << 30, 16, 16 * MIB) == 16 * MIB
    assert piece_size(1 << 30, 4, MIB) == 64 * MIB
    assert piece_size(3 * MIB, 4, 256 * KIB) == 256 * KIB


def test_split_hands_out_what_is_missing() -> None:
    """A split starts from the ranges already done and never hands out more than N."""
    split = Split(None, 4 * MIB, '"v"', 1, [(0, MIB)], most=2, least=MIB)
    assert list(split.pieces) == [(MIB, 2 * MIB), (2 * MIB, 3 * MIB), (3 * MIB, 4 * MIB)]
    assert split.take() == (MIB, 2 * MIB)
    assert split.take() == (2 * MIB, 3 * MIB)
    assert not split.wants()  # two at once at most
    split.wrote(MIB, 2 * MIB)
    split.active -= 1
    assert split.wants()
    assert split.have == 2 * MIB
    split.failed = Attempt(http_status=None, kind=AttemptKind.READ, error="x")
    assert not split.wants()


def test_pieces_go_to_the_least_busy_source_and_a_failed_mirror_is_left_out() -> None:
    """Sources are taken least busy first (the first on a tie); a mirror that failed a
    piece is asked no more and its range is handed out again; the first URL's failure is
    not a mirror's (refuse says False)."""
    sources = [("http://a/f", "http://a"), ("http://b/f", "http://b")]
    split = Split(None, 8 * MIB, '"v"', 1, [], most=4, least=MIB, sources=sources)
    assert split.held == {"http://a": 1}
    assert split.sources_by_load() == sources
    first = split.take("http://a/f")
    assert split.sources_by_load() == sources[::-1]
    split.take("http://b/f")
    assert (split.on_host("http://a"), split.on_host("http://b")) == (1, 1)
    assert split.refuse("http://b/f", 3 * MIB, 4 * MIB)
    split.release("http://b/f")
    assert split.sources_by_load() == sources[:1]
    assert split.pieces[0] == (3 * MIB, 4 * MIB)
    assert not split.refuse("http://a/f", *first)


def test_automatic_mode_splits_only_a_slow_stream() -> None:
    """auto: judged after half a second; split when the rest would take over SLOW
    seconds at the stream's rate and is two pieces or more."""
    assert most_ranges(0) == AUTO_MOST
    assert most_ranges(1) == 1
    assert most_ranges(16) == 16
    assert not split_rest(100 * MIB, 1 * MIB, 0.4, MIB)  # too early to judge
    assert split_rest(100 * MIB, 10 * MIB, 0.5, MIB)  # 5 s more at 20 MB/s
    assert not split_rest(100 * MIB, 400 * MIB, 0.5, MIB)  # 0.125 s more
    assert not split_rest(MIB, 1, 10.0, MIB)  # the rest is under two pieces
    assert split_rest(2 * MIB, 0, 0.5, MIB)  # nothing at all yet
    got, elapsed = 10 * MIB, 1.0  # 10 MiB/s: a rest of exactly SLOW seconds is not split
    assert not split_rest(int(SLOW * got / elapsed), got, elapsed, MIB)
    assert split_rest(int(SLOW * got / elapsed) + 1, got, elapsed, MIB)


# Every engine.


def test_a_large_file_comes_in_ranges(server: Server, engine: str, tmp_path: Path) -> None:
    """8 MiB over 4 connections: the exact bytes, no partial file or sidecar left."""
    size = 8 * MIB
    report = manyget.download(
        [f"{server.url}/bytes/{size}"], tmp_path, engine=engine, retries=FAST, **SPLIT
    )
    (result,) = report.results
    assert result.status is Status.OK, result.error
    assert (tmp_path / str(size)).read_bytes() == served(size)
    assert result.history[0].kind is AttemptKind.SPLIT
    pieces = size // piece_size(size, 4, 256 * KIB)
    assert result.attempts == 1 + pieces  # the first answer, then one request a piece
    assert [a.http_status for a in result.history[1:]] == [206] * pieces
    assert result.received == size
    assert leftovers(tmp_path) == []


def test_small_files_are_not_split(server: Server, engine: str, tmp_path: Path) -> None:
    """A body under twice --min-split-size is one ordinary request."""
    report = manyget.download(
        [f"{server.url}/bytes/{300 * KIB}"], tmp_path, engine=engine, retries=FAST, **SPLIT
    )
    (result,) = report.results
    assert result.status is Status.OK
    assert result.attempts == 1


def test_cut_pieces_are_retried_alone_from_where_they_stopped(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """Requests 1-3 are cut at half (the first answer, then two pieces): each piece asks
    only for its rest, so exactly the file's size crosses the wire for the pieces."""
    size = 2 * MIB
    url = f"{server.url}/faults/flaky/cut-{engine}/3/{size}?truncate=1"
    result = fetched(url, tmp_path, size, engine=engine, retries=FAST, **SPLIT)
    assert result.received == size
    kinds = [a.kind for a in result.history]
    assert kinds.count(AttemptKind.READ) == 2


def test_a_rerun_fetches_only_the_missing_ranges(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """Two pieces fail for good: the partial file and its sidecar stay, never under the
    final name; the rerun asks only for the ranges missing and completes the file."""
    size = 2 * MIB
    url = f"{server.url}/faults/flaky/rerun-{engine}/3/{size}?truncate=1"
    first = manyget.download([url], tmp_path, engine=engine, retries=ONCE, **SPLIT)
    (failed,) = first.results
    assert failed.status is Status.ERROR
    assert not (tmp_path / str(size)).exists()
    assert leftovers(tmp_path) == [f".{size}.part", f".{size}.part.json"]
    sidecar = json.loads((tmp_path / f".{size}.part.json").read_text())
    done = sum(b - a for a, b in sidecar["ranges"])
    assert failed.kept == done
    assert 0 < done < size
    second = manyget.download([url], tmp_path, engine=engine, retries=ONCE, **SPLIT)
    (result,) = second.results
    assert result.status is Status.OK, result.error
    assert result.received == size - done
    assert (tmp_path / str(size)).read_bytes() == served(size)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("route", ["ignore-range", "bad-content-range"])
def test_broken_ranges_fall_back_to_one_stream(
    server: Server, engine: str, tmp_path: Path, route: str
) -> None:
    """A server that advertises ranges but answers 200, or the wrong Content-Range:
    the file starts over as one stream and is exact."""
    size = 2 * MIB
    report = manyget.download(
        [f"{server.url}/faults/{route}/{size}"], tmp_path, engine=engine, retries=FAST, **SPLIT
    )
    (result,) = report.results
    assert result.status is Status.OK, result.error
    assert (tmp_path / str(size)).read_bytes() == served(size)
    assert AttemptKind.SPLIT in [a.kind for a in result.history[1:]]
    assert leftovers(tmp_path) == []


def test_a_file_that_changes_is_never_mixed(server: Server, engine: str, tmp_path: Path) -> None:
    """Every request gets a new version: If-Range refuses the old one, so the file is
    one version from its first byte to its last, never pieces of two."""
    size = 2 * MIB
    url = f"{server.url}/faults/etag-changes/mix-{engine}/{size}"
    report = manyget.download([url], tmp_path, engine=engine, retries=FAST, **SPLIT)
    (result,) = report.results
    assert result.status is Status.OK, result.error
    got = (tmp_path / str(size)).read_bytes()
    # Which version depends on how many requests the pieces made before the fallback.
    assert any(got == served(size, salt) for salt in range(64))


@pytest.fixture
def mirror() -> Iterator[Server]:
    """A second server: the same /bytes/ bodies and ETags on another port (another host)."""
    with Server(faults=Faults()) as srv:
        yield srv


def peak_connections(srv: Server, stop: threading.Event, peaks: list[int]) -> None:
    while not stop.wait(0.01):
        peaks.append(srv.open_connections)


def test_mirrors_serve_pieces_too(
    server: Server, mirror: Server, engine: str, tmp_path: Path
) -> None:
    """A list line's mirror (another host, the same file and ETag) takes pieces beside
    the first URL: both hosts are used, and the file is exact."""
    size = 4 * MIB
    drip = f"/faults/drip/{size}?interval=0.05&chunk=32768"
    stop, peaks = threading.Event(), [0]
    watcher = threading.Thread(target=peak_connections, args=(mirror, stop, peaks))
    watcher.start()
    try:
        report = manyget.download(
            [f"{server.url}{drip}\t{mirror.url}{drip}"], tmp_path, engine=engine,
            retries=FAST, **SPLIT,
        )  # fmt: skip
    finally:
        stop.set()
        watcher.join()
    (result,) = report.results
    assert result.status is Status.OK, result.error
    assert (tmp_path / str(size)).read_bytes() == served(size)
    if engine != "sequential":  # (one transfer at a time: the first URL's slot is free)
        assert max(peaks) >= 1  # the mirror served pieces
    assert result.received == size


def test_the_rest_of_a_slow_piece_is_stolen(
    server: Server, mirror: Server, engine: str, tmp_path: Path
) -> None:
    """The first URL streams at 6.5 MB/s, its mirror at 0.3 MB/s: once no piece is left
    to hand out, a free connection takes the second half of the mirror's running piece
    (and again while a piece has two of --min-split-size left), so the file does not wait
    for the slow one. One transfer at a time (sequential) never leaves a piece to the
    mirror: there the file only has to be exact. The processes engine's pieces run in
    its workers, and are cut from the parent's copy of where they are."""
    size = 8 * MIB
    fast = f"{server.url}/faults/drip/{size}?interval=0.01&chunk=65536"
    slow = f"{mirror.url}/faults/drip/{size}?interval=0.05&chunk=16384"
    result = fetched(
        f"{fast}\t{slow}", tmp_path, size, engine=engine, retries=FAST, split=2,
        min_split_size=128 * KIB,
    )  # fmt: skip
    pieces = size // piece_size(size, 2, 128 * KIB)
    if engine == "sequential":
        assert result.attempts == 1 + pieces
    else:  # the first answer, one request a piece, and at least one taken over
        assert result.attempts > 1 + pieces
    assert leftovers(tmp_path) == []


class CappedServer(LoopbackServer):
    """One file, ``/f``, with ranges and an ETag, sent in 64 KiB steps 5 ms apart; a
    request that would make more than ``cap`` at once is answered 503, as servers that
    limit each client's connections do."""

    def __init__(self, size: int, cap: int) -> None:
        from http.server import BaseHTTPRequestHandler

        body = served(size)
        self.active = self.peak = self.refused = 0
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            counted = False  # this answer counts against the cap

            def do_GET(self) -> None:
                with lock:
                    busy = outer.active >= cap
                    outer.refused += busy
                    if not busy:
                        outer.active += 1
                        outer.peak = max(outer.peak, outer.active)
                if busy:
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.counted = True
                try:
                    self._send()
                except OSError:
                    self.close_connection = True
                finally:
                    self._leave()

            def _leave(self) -> None:
                """No longer counted: before the last bytes go out, so a client that has
                them all never finds this answer still counted (a lone piece refused)."""
                if self.counted:
                    self.counted = False
                    with lock:
                        outer.active -= 1

            def _send(self) -> None:
                first, last = 0, size - 1
                asked = self.headers.get("Range")
                if asked:
                    a, b = asked.removeprefix("bytes=").split("-")
                    first, last = int(a), int(b) if b else size - 1
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(last + 1 - first))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", '"v1"')
                self.end_headers()
                for at in range(first, last + 1, 65536):
                    if at + 65536 > last:
                        self._leave()
                    else:
                        time.sleep(0.005)
                    self.wfile.write(body[at : min(last + 1, at + 65536)])

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._listen(Handler)
        self.url = f"http://127.0.0.1:{self.port}/f"


def test_a_server_that_refuses_more_connections_gets_fewer(engine: str, tmp_path: Path) -> None:
    """Four ranges asked, two connections allowed: a piece answered 503 while others of
    its file run is not a failure (no retry spent, even with none allowed): the file
    goes on with one connection fewer each time, and is exact."""
    size = 4 * MIB
    with CappedServer(size, cap=2) as srv:
        report = manyget.download(
            [srv.url], tmp_path, engine=engine, retries=ONCE, split=4, per_host=4,
            min_split_size=256 * KIB,
        )  # fmt: skip
    (result,) = report.results
    assert result.status is Status.OK, result.error
    assert (tmp_path / "f").read_bytes() == served(size)
    if engine != "sequential":  # (one transfer at a time never meets the cap)
        assert srv.refused >= 1
    assert srv.peak <= 2
    assert leftovers(tmp_path) == []


def test_a_running_piece_is_cut_at_about_its_middle(tmp_path: Path) -> None:
    """steal: the running piece of the file with the most bytes left, cut on 64 KiB at
    about its middle, when two pieces of ``least`` remain; only a look with take=False."""
    from manyget._fetch._part import RUNNING, SplitFile

    handle = SplitFile(f"{tmp_path}/", "f.bin")
    handle.open("http://x/f.bin", 8 * MIB, '"v"')
    key = (handle.tmp, handle.inode)
    RUNNING[key] = {0: [0, 8 * MIB]}  # left by an earlier run, say: opening forgets it
    handle.close()
    handle.open("http://x/f.bin", 8 * MIB, '"v"')
    try:
        assert key not in RUNNING
        RUNNING[key] = {0: [MIB, 2 * MIB], 2 * MIB: [2 * MIB + 1, 8 * MIB]}
        RUNNING[("/elsewhere/.f.bin.part", handle.inode)] = {0: [0, 64 * MIB]}  # not ours
        middle = 5 * MIB  # 2 MiB + 1 + (6 MiB - 1) // 2, on 64 KiB
        assert handle.steal(MIB, take=False) == (2 * MIB, middle, 8 * MIB)
        assert RUNNING[key][2 * MIB][1] == 8 * MIB  # only looked
        assert handle.steal(MIB) == (2 * MIB, middle, 8 * MIB)
        assert RUNNING[key][2 * MIB][1] == middle
        assert handle.steal(2 * MIB) is None  # no piece has 4 MiB left now
    finally:
        RUNNING.pop(key, None)
        RUNNING.pop(("/elsewhere/.f.bin.part", handle.inode), None)
        handle.close()


def test_another_processs_pieces_are_cut_through_their_copies(tmp_path: Path) -> None:
    """The processes engine: a worker's running pieces are copied into the parent's
    RUNNING (Mirror.update), cut there by steal like its own, the cut goes back to the
    worker (Mirror.cuts, then cut_rows there), and a report that has not seen the cut
    yet does not undo it; ended pieces and a worker's empty report leave nothing."""
    from manyget._fetch._part import RUNNING, Mirror, SplitFile, cut_rows, running_rows

    handle = SplitFile(f"{tmp_path}/", "f.bin")
    handle.open("http://x/f.bin", 8 * MIB, '"v"')
    key = (handle.tmp, handle.inode)
    mirror = Mirror()
    try:
        mirror.update(1, [(handle.tmp, handle.inode, 0, MIB, 8 * MIB)])
        assert mirror.cuts() == {}
        cut = 4 * MIB + 512 * KIB  # 1 MiB + 7 MiB / 2
        assert handle.steal(MIB) == (0, cut, 8 * MIB)
        assert mirror.cuts() == {1: [(handle.tmp, handle.inode, 0, cut)]}
        assert mirror.cuts() == {}  # told once
        mirror.update(1, [(handle.tmp, handle.inode, 0, 2 * MIB, 8 * MIB)])  # not seen yet
        assert RUNNING[key][0] == [2 * MIB, cut, cut]
        assert mirror.cuts() == {}
        # In the worker: its own entry, the cut applied, then reported.
        worker_slot = [2 * MIB, 8 * MIB]
        RUNNING[key][0] = worker_slot
        cut_rows([(handle.tmp, handle.inode, 0, cut)])
        assert worker_slot == [2 * MIB, cut]
        assert (handle.tmp, handle.inode, 0, 2 * MIB, cut) in running_rows()
        mirror.update(1, [])  # the worker's pieces ended
        assert key not in RUNNING or 0 not in RUNNING[key] or RUNNING[key][0] is worker_slot
        RUNNING.pop(key, None)
        mirror.update(2, [(handle.tmp, handle.inode, 0, 0, 8 * MIB)])
        mirror.forget(2, handle.tmp, handle.inode, 0)
        assert key not in RUNNING
    finally:
        RUNNING.pop(key, None)
        handle.close()


@pytest.mark.parametrize("route", ["dead", "another-version"])
def test_a_mirror_that_fails_a_piece_is_left_out(
    server: Server, mirror: Server, engine: str, tmp_path: Path, route: str
) -> None:
    """A mirror that refuses connections, or holds another version of the file (If-Range
    gets it whole), is asked no more: its pieces go to the first URL, the file is exact
    and of the first URL's version."""
    size = 4 * MIB
    if route == "dead":
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            other = f"http://127.0.0.1:{closed.getsockname()[1]}/bytes/{size}"
    else:
        other = f"{mirror.url}/faults/etag-changes/m-{engine}/{size}"
    line = f"{server.url}/faults/drip/{size}?interval=0.01&chunk=65536\t{other}"
    report = manyget.download([line], tmp_path, engine=engine, retries=ONCE, **SPLIT)
    (result,) = report.results
    assert result.status is Status.OK, result.error
    assert (tmp_path / str(size)).read_bytes() == served(size)
    assert result.received == size  # the ranges went on: no restart as one stream
    assert leftovers(tmp_path) == []


AUTO = {"min_split_size": 256 * KIB}  # split= left to its default: automatic


def test_automatic_mode_splits_the_rest_of_a_slow_stream(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """By default a file streams; this one drips at 640 KiB/s, so after half a second its
    stream stops, what it wrote is kept as the first range, and the rest comes as ranges:
    exactly the file's size crosses the wire, and the file is exact."""
    size = 4 * MIB
    url = f"{server.url}/faults/drip/{size}?interval=0.05&chunk=32768"
    result = fetched(url, tmp_path, size, engine=engine, retries=FAST, **AUTO)
    first = result.history[0]
    assert (first.kind, first.http_status) == (AttemptKind.SPLIT, 200)
    assert 0 < first.kept < size  # the stream's bytes: the first range
    assert {a.http_status for a in result.history[1:]} == {206}
    assert result.received == size
    assert leftovers(tmp_path) == []


def test_automatic_mode_splits_the_rest_of_a_slow_resumed_stream(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """A partial file of one stream (a run killed mid-file with --split 1) is resumed as
    usual; the resumed stream is slow, so its rest is split too: exactly the bytes the
    partial file lacks cross the wire, and the file is exact."""
    size = 4 * MIB
    url = f"{server.url}/faults/drip/{size}?interval=0.05&chunk=32768"
    command = [sys.executable, "-m", "manyget", "get", "-q", "--split", "1", "-d", str(tmp_path)]
    proc = subprocess.Popen([*command, url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part = tmp_path / f".{size}.part"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < MIB):
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    kept = part.stat().st_size
    assert MIB <= kept < size
    result = fetched(url, tmp_path, size, engine=engine, retries=FAST, **AUTO)
    first = result.history[0]
    assert (first.kind, first.http_status) == (AttemptKind.SPLIT, 206)
    assert result.received == size - kept
    assert leftovers(tmp_path) == []


def streams_once(server: Server, tmp_path: Path, size: int, **options: Any) -> None:
    """``size`` bytes from /bytes/ with ``options``: one request, exact, never split."""
    url = f"{server.url}/bytes/{size}"
    result = fetched(url, tmp_path, size, retries=FAST, **AUTO, **options)
    assert [a.kind for a in result.history] == [AttemptKind.OK]


def test_automatic_mode_leaves_a_fast_stream_alone(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """A file that streams fast is one request, never split."""
    streams_once(server, tmp_path, 8 * MIB, engine=engine)


def test_automatic_mode_does_not_split_a_capped_stream(server: Server, tmp_path: Path) -> None:
    """Under --limit-rate a stream is slow because it is told to be: never split."""
    streams_once(server, tmp_path, 4 * MIB, limit_rate=MIB)


def test_split_options_are_checked() -> None:
    """--split below 1 and --min-split-size below 64 KiB: one line, exit 2."""
    for args in (["--split", "0"], ["--split", "x"], ["--min-split-size", "1K"]):
        proc = subprocess.run(
            [sys.executable, "-m", "manyget", "get", *args, "http://127.0.0.1:9/x"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, args
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr


def test_kill_9_mid_file_then_a_rerun_fetches_the_rest(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """kill -9 while pieces drip in: nothing under the final name; the sidecar's ranges
    are on disk, and the rerun receives exactly the bytes they lack."""
    size = 2 * MIB
    url = f"{server.url}/faults/drip/{size}?interval=0.05&chunk=65536"
    command = [sys.executable, "-m", "manyget", "get", "-q", "--engine", engine]
    command += ["--split", "2", "--min-split-size", "256K", "-d", str(tmp_path), url]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sidecar = tmp_path / f".{size}.part.json"
    done = 0
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and done < 512 * KIB:
            time.sleep(0.05)
            try:
                done = sum(b - a for a, b in json.loads(sidecar.read_text())["ranges"])
            except (OSError, ValueError):
                continue
    finally:
        proc.kill()
        proc.wait(timeout=30)
    done = sum(b - a for a, b in json.loads(sidecar.read_text())["ranges"])  # as left
    assert 512 * KIB <= done < size
    assert not (tmp_path / str(size)).exists()
    report = manyget.download([url], tmp_path, engine=engine, retries=FAST, **SPLIT)
    (result,) = report.results
    assert result.status is Status.OK, result.error
    assert result.received == size - done
    assert (tmp_path / str(size)).read_bytes() == served(size)


def test_byte_progress_has_one_row_per_split_file() -> None:
    """The complete ranges and the pieces in flight (here a worker's) make one row."""
    from manyget._fetch._curl import Inflight

    inflight = Inflight()
    inflight.split_progress("big", 600, 1000)
    inflight.remote[1] = [("big", 150, 1000), ("other", 5, 10)]
    assert sorted(inflight.snapshot(0)) == [("big", 750, 1000), ("other", 5, 10)]
    inflight.split_progress("big", -1, 1000)
    assert sorted(inflight.snapshot(0)) == [("big", 150, 1000), ("other", 5, 10)]


def test_disk_full_mid_file_stops_the_run(server: Server, engine: str, tiny_disk: Path) -> None:
    """A 2 MiB file split onto a 1 MiB disk: exit 3, one error, nothing under the name."""
    size = 2 * MIB
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-d", str(tiny_disk), "--engine", engine,
         "--split", "4", "--min-split-size", "256K", f"{server.url}/bytes/{size}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tiny_disk / str(size)).exists()


def test_a_piece_and_its_stolen_rest_on_one_worker(
    server: Server, mirror: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one worker process, the slow piece and the rest taken from it run side by
    side in it, and both end the same byte: each ending is matched to its own piece."""
    monkeypatch.setattr(os, "cpu_count", lambda: 1)  # the parent sizes its pool by it
    size = 8 * MIB
    fast = f"{server.url}/faults/drip/{size}?interval=0.01&chunk=65536"
    slow = f"{mirror.url}/faults/drip/{size}?interval=0.05&chunk=16384"
    result = fetched(
        f"{fast}\t{slow}", tmp_path, size, engine="processes", retries=FAST, split=2,
        min_split_size=128 * KIB,
    )  # fmt: skip
    assert result.attempts > 1 + size // piece_size(size, 2, 128 * KIB)
    assert leftovers(tmp_path) == []
