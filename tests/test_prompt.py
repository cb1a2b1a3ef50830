"""-u USER without a password: asked for at a real terminal (a pseudo-terminal here), never
when stdin is not one, and Ctrl-D at the prompt is a one-line usage error."""

from __future__ import annotations

import base64
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manyget._server import Server

pytestmark = pytest.mark.timeout(60)


def run_at_terminal(args: list[str], typed: bytes) -> subprocess.CompletedProcess[str]:
    """``manyget ARGS`` with a pseudo-terminal as stdin (no controlling terminal, so the
    prompt goes to stderr), ``typed`` sent to it once the prompt has been asked."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "manyget", *args],
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        os.close(slave)
        slave = -1
        time.sleep(1.0)  # let it reach the prompt (typed earlier would be echoed)
        os.write(master, typed)
        out, err = proc.communicate(timeout=40)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())


def sent_authorization(folder: Path) -> str:
    """What the server's /faults/headers route saw as Authorization."""
    lines = (folder / "headers").read_text().splitlines()
    return next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("authorization:")), ""
    )


def test_password_asked_at_a_terminal(server: Server, tmp_path: Path) -> None:
    """The prompt names the user; what is typed is the password sent."""
    proc = run_at_terminal(
        ["get", "-u", "ana", "-d", str(tmp_path), f"{server.url}/faults/headers"], b"s3cret\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert "password for ana:" in proc.stderr
    assert "s3cret" not in proc.stderr + proc.stdout
    expected = base64.b64encode(b"ana:s3cret").decode()
    assert sent_authorization(tmp_path) == f"Basic {expected}"


def test_ctrl_d_at_the_prompt_is_a_usage_error(server: Server, tmp_path: Path) -> None:
    """EOF at the prompt: exit 2, one error line, no traceback, no request."""
    proc = run_at_terminal(
        ["get", "-u", "ana", "-d", str(tmp_path), f"{server.url}/faults/headers"], b"\x04"
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == ["manyget: error: no password given for 'ana' (end of input at the prompt)"]
    assert not (tmp_path / "headers").exists()


def test_no_prompt_when_stdin_is_not_a_terminal(server: Server, tmp_path: Path) -> None:
    """A script's stdin is never read for a password: the user goes with an empty one."""
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-u", "ana", "-d", str(tmp_path),
         f"{server.url}/faults/headers"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=40,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "password" not in proc.stderr
    assert sent_authorization(tmp_path) == f"Basic {base64.b64encode(b'ana:').decode()}"


def test_no_prompt_when_the_password_is_given(server: Server, tmp_path: Path) -> None:
    """-u USER:PASS at a terminal asks nothing and sends PASS."""
    proc = run_at_terminal(
        ["get", "-u", "ana:given", "-d", str(tmp_path), f"{server.url}/faults/headers"], b""
    )
    assert proc.returncode == 0, proc.stderr
    assert "password" not in proc.stderr
    assert sent_authorization(tmp_path) == f"Basic {base64.b64encode(b'ana:given').decode()}"
