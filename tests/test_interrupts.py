"""Real signals to a real `manyget get` subprocess: clean stop, partial summary, exit status."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from manyget import ENGINES
from manyget._server import COUNTRY_CODES, Faults, Server

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


@pytest.mark.parametrize("engine", list(ENGINES))
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
