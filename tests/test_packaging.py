"""manyget as a user installs and starts it: ``python -m manyget``, ``--version`` against the
package metadata, and ``pipx install .`` giving a working command."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_python_dash_m_and_version_match_the_metadata() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "manyget", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == f"manyget {version('manyget')}"
    assert out.stderr == ""


def test_pipx_install_gives_a_working_manyget(tmp_path: Path) -> None:
    """``pipx install .`` into a private pipx home: the command it links runs the demo
    against the embedded server, in a folder of its own."""
    if importlib.util.find_spec("pipx") is None:  # the dev extra installs it
        if os.environ.get("MANYGET_CI") == "1":
            pytest.fail("pipx is not installed, and CI must run this test")
        pytest.skip("pipx is not installed")
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "home"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    env.pop("PYTHONPATH", None)  # the installed copy, not this checkout's src/
    subprocess.run(
        [sys.executable, "-m", "pipx", "install", "--python", sys.executable, str(ROOT)],
        env=env,
        capture_output=True,
        timeout=300,
        check=True,
    )
    command = tmp_path / "bin" / "manyget"
    out = subprocess.run(
        [str(command), "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"manyget {version('manyget')}"
    flags = tmp_path / "flags"
    flags.mkdir()
    out = subprocess.run(
        [str(command), "flags", "-d", str(flags)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "20 flags downloaded." in out.stdout
    assert len(list(flags.glob("*.gif"))) == 20
    # The installed package is the pipx venv's, not this checkout.
    where = subprocess.run(
        [str(tmp_path / "home" / "venvs" / "manyget" / "bin" / "python"), "-c",
         "import manyget; print(manyget.__file__)"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert str(tmp_path) in where.stdout
