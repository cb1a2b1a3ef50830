"""Long URL lists: memory stays flat, and downloads start before the list is read."""

from __future__ import annotations

import re
import select
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from manyget import iter_download
from manyget._server import Server

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a tmpfs at /dev/shm")
def test_200k_url_generator_keeps_memory_flat() -> None:
    """Peak RSS grows by at most 32 MB from 20,000 to 200,000 URLs (keeping results would not)."""
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "memory.py"),
            "--urls",
            "200000",
            "--max-growth-mb",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=580,
        check=False,
    )
    print(proc.stdout, proc.stderr)
    match = re.search(r"200,000 ok .*\(growth ([+-][\d.]+) MB", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 32
    assert proc.returncode == 0


@pytest.mark.timeout(60)
def test_first_result_before_the_urls_are_read(server: Server, tmp_path: Path) -> None:
    """iter_download yields its first result having read a window of the URLs, not all."""
    total = 100_000
    consumed = 0

    def urls() -> Iterator[str]:
        nonlocal consumed
        for i in range(total):
            consumed += 1
            yield f"{server.url}/bytes/16?i={i}"

    results = iter_download(urls(), tmp_path, concurrency=4)
    assert isinstance(results, Generator)
    try:
        first = next(results)
    finally:
        results.close()
    assert first.ok, first.error
    assert consumed < 2048  # the engine's window and the host gate's look-ahead at most


@pytest.mark.timeout(60)
def test_get_downloads_while_its_list_is_still_arriving(server: Server, tmp_path: Path) -> None:
    """`get -i -` fetches the lines it has while stdin is still open (no read to the end)."""
    command = [sys.executable, "-m", "manyget", "get", "-i", "-", "-d", str(tmp_path), "-q"]
    proc = subprocess.Popen(
        [*command, "-j", "4", "--per-host", "4"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stderr is not None
    lines = [f"{server.url}/bytes/16?i={i}\n" for i in range(30)]
    try:
        proc.stdin.write("".join(lines[:20]))
        proc.stdin.flush()
        deadline = time.monotonic() + 30  # a liveness bound, not a speed target
        while len(list(tmp_path.iterdir())) < 10:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "nothing downloaded while stdin was open"
            time.sleep(0.05)
        proc.stdin.write("".join(lines[20:]))
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not proc.stdin.closed:
            proc.stdin.close()
        proc.stderr.close()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("16")]) == 30


@pytest.mark.timeout(90)
def test_a_pause_in_the_input_does_not_stall_downloads(
    server: Server, tmp_path: Path, engine: str
) -> None:
    """While a piped list pauses, the download already started finishes and is reported."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "manyget", "get", "-i", "-", "-d", str(tmp_path), "-v",
         "--engine", engine],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stderr is not None
    try:
        proc.stdin.write(f"{server.url}/bytes/3000?i=1\n")
        proc.stdin.flush()  # then nothing more for now: the pipe stays open
        ready, _, _ = select.select([proc.stderr], [], [], 30)  # a liveness bound only
        assert ready, "the first download was not reported while the input paused"
        assert proc.stderr.readline().startswith("OK ")
        proc.stdin.write(f"{server.url}/bytes/3000?i=2\n")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if not proc.stdin.closed:
            proc.stdin.close()
        proc.stderr.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2
    assert names[0] == "3000"  # the second took a ~hash suffix: same name, other URL
