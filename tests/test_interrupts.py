"""Real signals to a real `manyget get` subprocess: clean stop, partial summary, exit status."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from manyget import ENGINES
from manyget._server import COUNTRY_CODES, Faults, Server

LOCAL_ENGINES = [e for e in ENGINES if e != "dask"]  # dask: tests/test_dask.py
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def slow_server() -> Iterator[Server]:
    """Every request waits 30 s before its answer: downloads are surely in flight."""
    with Server(faults=Faults(delay=(30.0, 30.0))) as srv:
        yield srv


def start_get(server: Server, engine: str, dest: Path, *extra: str) -> subprocess.Popen[str]:
    urls = [f"{server.flags_url}/{cc.lower()}/{cc.lower()}.gif" for cc in COUNTRY_CODES[:40]]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "manyget",
            "get",
            "-d",
            str(dest),
            "--engine",
            engine,
            "-j",
            "8",
            *extra,
            *urls,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str], signum: int, *, after: float = 1.5) -> tuple[int, str]:
    time.sleep(after)  # start-up, worker processes, first requests sent
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


@pytest.mark.parametrize("engine", LOCAL_ENGINES)
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_run_cleanly(
    slow_server: Server, engine: str, signum: int, status: int, tmp_path: Path
) -> None:
    """SIGINT exits 130 and SIGTERM 143 within seconds, with a summary and no traceback."""
    start = time.monotonic()
    code, err = stop(start_get(slow_server, engine, tmp_path), signum)
    assert code == status, err
    assert time.monotonic() - start < 15
    assert "manyget: interrupted" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_second_ctrl_c_exits_at_once(slow_server: Server, tmp_path: Path) -> None:
    """A second Ctrl-C while the first is being handled ends the process at once."""
    proc = start_get(slow_server, "threads", tmp_path)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "Traceback" not in err


@pytest.mark.parametrize("engine", LOCAL_ENGINES)
def test_kill_9_then_rerun_completes_everything(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """After kill -9 mid-run, a rerun resumes partial files, skips complete ones, and every
    file ends byte-identical."""
    from manyget._server._resources import bytes_chunks

    size = 6_000_000
    # 64 KiB every 10 ms: about 6 MB/s, so the first files are mid-body when killed.
    urls = [f"{server.url}/faults/drip/{size}?interval=0.01&chunk=65536&n={i}" for i in range(3)]
    cmd = [
        sys.executable,
        "-m",
        "manyget",
        "get",
        "-d",
        str(tmp_path),
        "--engine",
        engine,
        "-j",
        "2",
        "-q",
        *urls,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
        p.name.endswith(".part") and p.stat().st_size > 1_000_000 for p in tmp_path.iterdir()
    ):
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=20)
    # Worker processes of the killed run notice their parent is gone and stop within a
    # second or so; wait until no partial file is locked any more.
    for part in tmp_path.glob(".*.part"):
        with part.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # blocks while an orphan still writes
            fcntl.flock(handle, fcntl.LOCK_UN)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert any(name.endswith(".part") for name in before), before
    rerun = subprocess.run(
        [*cmd, "--json"], capture_output=True, text=True, timeout=90, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    expected = b"".join(bytes_chunks(size, 0, size))
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files if p.name.startswith(".")] == []
    assert len(files) == 3
    for path in files:
        assert path.read_bytes() == expected
    statuses = [json.loads(line)["status"] for line in rerun.stdout.splitlines()]
    assert statuses.count("skipped") == sum(1 for n in before if not n.startswith("."))
    resumed = [json.loads(line) for line in rerun.stdout.splitlines()]
    assert any(r["http_status"] == 206 for r in resumed)


def test_symlink_planted_in_dest_is_not_followed(server: Server, tmp_path: Path) -> None:
    """A symlink planted at a partial file's name is never written through."""
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / ".br.gif.part").symlink_to(outside)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "manyget",
            "get",
            "-d",
            str(dest),
            "--retries",
            "0",
            f"{server.flags_url}/br/br.gif",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert outside.read_bytes() == b"precious"
    assert proc.returncode == 1
    assert not (dest / "br.gif").exists()


def test_destination_must_exist(tmp_path: Path) -> None:
    """A -d folder that does not exist fails before any request, creating nothing."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "manyget",
            "get",
            "-d",
            str(tmp_path / "no" / "such"),
            "http://127.0.0.1:1/x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3
    assert "does not exist" in proc.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("engine", LOCAL_ENGINES)
def test_disk_full_stops_run_with_exit_3(server: Server, engine: str, tiny_disk: Path) -> None:
    """ENOSPC stops the run: summary printed, exit 3, complete files intact, nothing torn."""
    from manyget._server._resources import bytes_chunks

    size = 300_000
    urls = [f"{server.url}/bytes/{size}?n={i}" for i in range(8)]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "manyget",
            "get",
            "-d",
            str(tiny_disk),
            "--engine",
            engine,
            "-j",
            "2",
            *urls,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert "No space left on device" in proc.stderr
    assert "manyget: stopped; so far:" in proc.stderr
    assert "Traceback" not in proc.stderr
    expected = b"".join(bytes_chunks(size, 0, size))
    finals = [p for p in tiny_disk.iterdir() if not p.name.startswith(".")]
    assert 1 <= len(finals) < 8
    for path in finals:
        assert path.read_bytes() == expected


def test_read_only_destination_fails_before_any_request(tiny_disk: Path) -> None:
    """A destination that cannot be written fails at once with exit 3 and one line."""
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-d", str(tiny_disk), "http://127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"manyget: error: destination {str(tiny_disk)!r} is not writable"
    ]


@pytest.mark.parametrize("engine", LOCAL_ENGINES)
def test_two_processes_never_share_a_file(server: Server, engine: str, tmp_path: Path) -> None:
    """A second manyget on the same destination reports the file busy; bytes never mix."""
    from manyget._server._resources import bytes_chunks

    size = 4_000_000  # about 2 s at 64 KiB every 30 ms: the second run starts mid-body
    url = f"{server.url}/faults/drip/{size}?interval=0.03&chunk=65536"
    cmd = [
        sys.executable,
        "-m",
        "manyget",
        "get",
        "-d",
        str(tmp_path),
        "--engine",
        engine,
        "--retries",
        "0",
        url,
    ]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        part = tmp_path / f".{size}.part"
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size):
            time.sleep(0.02)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        _, first_err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == 0, first_err
    assert second.returncode == 1
    assert "busy: another process is writing" in second.stderr
    assert (tmp_path / str(size)).read_bytes() == b"".join(bytes_chunks(size, 0, size))


@pytest.mark.parametrize("engine", LOCAL_ENGINES)
def test_ctrl_c_summary_counts_partial_files_kept(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """The Ctrl-C summary says how many partial files and bytes are kept for a resume."""
    url = f"{server.url}/faults/drip/4000000?interval=0.05&chunk=100000"
    proc = subprocess.Popen(
        [sys.executable, "-m", "manyget", "get", "-d", str(tmp_path), "--engine", engine, url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    code, err = stop(proc, signal.SIGINT, after=1.0)
    assert code == 130, err
    assert "1 partial file" in err, err
    assert "kept for a resume" in err
    kept = (tmp_path / ".4000000.part").stat().st_size
    assert 0 < kept < 4_000_000


def test_a_stop_landing_inside_an_attempts_end_leaves_the_loop_closable(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's SIGTERM (SystemExit) that lands while an ended transfer is being
    finished: the loop's close, which cancels what still runs, passes over that one
    instead of ending it twice (it failed an assertion, printing a traceback)."""
    from manyget._engines._multi import MultiLoop
    from manyget._fetch._body import Body
    from manyget._jobs import plan
    from manyget._options import configure

    settings = configure(tmp_path, {}).settings
    loop = MultiLoop(settings, 2)
    job = next(iter(plan([f"{server.url}/bytes/5000"])))
    loop.start(job)

    def stopped(*args: object, **kwargs: object) -> None:
        raise SystemExit(143)  # as _exit_on_sigterm does, here inside Body.finish

    def wait_until_stopped() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            loop.wait(0.1)

    monkeypatch.setattr(Body, "finish", stopped)
    with pytest.raises(SystemExit):
        wait_until_stopped()
    monkeypatch.undo()
    assert loop.close() == []
    assert list(tmp_path.iterdir()) == []  # nothing under a final name
