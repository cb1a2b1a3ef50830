"""The library's log (`logging.getLogger("manyget")`) and `manyget get --log-file`."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

import manyget
from manyget import Status
from manyget._server import Server

pytestmark = pytest.mark.timeout(60)


def test_log_file_records_each_attempt_retry_and_redirect(server: Server, tmp_path: Path) -> None:
    """--log-file: timestamped lines for every attempt, the retry with its reason and wait,
    the redirect, the run's start and end; URL credentials masked."""
    log = tmp_path / "run.log"
    dest = tmp_path / "d"
    dest.mkdir()
    base = server.url.replace("http://", "http://alice:s3cret@")
    urls = [f"{server.url}/status/503", f"{base}/faults/redirect/1/100", f"{server.url}/bytes/10"]
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-q", "-d", str(dest), "--retries", "1",
         "--retry-max-wait", "0.05", "--log-file", str(log), *urls],
        capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the 503
    text = log.read_text()
    lines = text.splitlines()
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO) ")
    assert all(stamp.match(line) for line in lines), text
    assert "run started: manyget" in lines[0]
    assert "run ended: 2 downloaded, 1 failed" in lines[-1]
    assert re.search(r"attempt 1 at \S+/status/503: HTTP 503 \(status\); retry in ", text)
    assert re.search(r"attempt 2 at \S+/status/503: HTTP 503 \(status\); giving up", text)
    assert "redirect http://***@127.0.0.1" in text
    assert re.search(r"attempt 1 at \S+/bytes/10: ok, HTTP 200, 10 bytes", text)
    assert "s3cret" not in text


def test_library_logs_at_debug_and_never_warns_of_a_404(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 404 is a result, not a warning: at WARNING the library says nothing; at DEBUG
    each attempt is there."""
    url = f"{server.url}/status/404"
    with caplog.at_level(logging.WARNING, logger="manyget"):
        report = manyget.download([url], tmp_path)
    assert report.counts == {Status.NOT_FOUND: 1}
    assert [r for r in caplog.records if r.name.startswith("manyget")] == []
    with caplog.at_level(logging.DEBUG, logger="manyget"):
        manyget.download([url], tmp_path)
    messages = [r.getMessage() for r in caplog.records if r.name == "manyget"]
    assert any("attempt 1 at" in m and "HTTP 404" in m for m in messages), messages


def test_library_installs_no_handler() -> None:
    """Importing and running manyget leaves the logging configuration to the program."""
    probe = (
        "import logging, manyget\n"
        "manyget.download([], '.')\n"
        "print(logging.getLogger('manyget').handlers, logging.getLogger().handlers)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    assert out.strip() == "[] []"


def test_unwritable_log_file_is_a_usage_error(tmp_path: Path) -> None:
    """A log file that cannot be opened: one line, exit 2, nothing fetched."""
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-d", str(tmp_path), "--log-file",
         str(tmp_path / "no" / "such" / "run.log"), "http://127.0.0.1:1/x"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("manyget: error: cannot write log file")
    assert len(proc.stderr.splitlines()) == 1
