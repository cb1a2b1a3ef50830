"""The config file: defaults for `manyget get`, checked like the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from manyget._server import Server

pytestmark = pytest.mark.timeout(60)


def manyget(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manyget", *args],
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
        env=env,
    )


def environ(tmp_path: Path, text: str | None, *, xdg: bool = False) -> dict[str, str]:
    """An environment whose config file holds ``text`` (none when None)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MANYGET_CONFIG", "XDG_CONFIG_HOME")}
    env["HOME"] = str(tmp_path / "home")
    if text is not None:
        if xdg:
            folder = tmp_path / "xdg" / "manyget"
            env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
        else:
            folder = tmp_path / "elsewhere"
            env["MANYGET_CONFIG"] = str(folder / "config.toml")
        folder.mkdir(parents=True)
        (folder / "config.toml").write_text(text)
    return env


def test_config_file_gives_defaults_and_the_command_line_wins(
    server: Server, tmp_path: Path
) -> None:
    """dest and headers come from the file (XDG_CONFIG_HOME respected); -d on the command
    line wins over the file's dest."""
    from_file, from_args = tmp_path / "from_file", tmp_path / "from_args"
    from_file.mkdir()
    from_args.mkdir()
    text = f'[get]\ndest = "{from_file}"\nheader = ["X-From-Config: yes"]\nper-host = 2\n'
    env = environ(tmp_path, text, xdg=True)
    url = f"{server.url}/faults/headers"
    proc = manyget("get", "-q", url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "x-from-config: yes" in (from_file / "headers").read_text()
    proc = manyget("get", "-q", "-d", str(from_args), url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert (from_args / "headers").exists()
    ignored = tmp_path / "ignored"
    ignored.mkdir()
    proc = manyget("get", "-q", "--no-config", "-d", str(ignored), url, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "x-from-config" not in (ignored / "headers").read_text()


def test_manyget_config_says_where_each_setting_comes_from(tmp_path: Path) -> None:
    """`manyget config` prints every setting of get with its source, secrets hidden."""
    env = environ(tmp_path, '[get]\njobs = 4\nhttp = "1.1"\nuser = "alice:s3cret"\n')
    proc = manyget("config", env=env)
    assert proc.returncode == 0, proc.stderr
    config = env["MANYGET_CONFIG"]
    lines = proc.stdout.splitlines()
    assert lines[0] == f"# config file: {config}"
    assert f"jobs = 4  # config {config}" in lines
    assert f"http = '1.1'  # config {config}" in lines
    assert "per-host = None  # default" in lines
    assert f"user = '(set)'  # config {config}" in lines
    assert "s3cret" not in proc.stdout
    proc = manyget("config", env=environ(tmp_path / "none", None))
    assert proc.stdout.splitlines()[0] == "# no config file: built-in defaults"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[get]\njobs = 0\n", "key 'jobs': must be >= 1, got 0"),
        ("[get]\nbogus = 1\n", "unknown key 'bogus' (not an option of get)"),
        ("[get]\nengine = 'warp'\n", "key 'engine': must be one of"),
        ("[get]\noverwrite = 'yes'\n", "key 'overwrite': must be true or false"),
        ("[get]\nhttp = '9'\n", "key 'http': must be one of"),
        ("jobs = 4\n", "unknown key 'jobs' (use a [get] table)"),
        ("[get\n", "not valid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    """A bad config file: exit 2, one line naming the file and the key, nothing fetched."""
    env = environ(tmp_path, text)
    proc = manyget("get", "-d", str(tmp_path), "http://127.0.0.1:1/x", env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"manyget: error: config {env['MANYGET_CONFIG']}: {message}")
    assert len(proc.stderr.splitlines()) == 1


def test_missing_manyget_config_is_an_error(tmp_path: Path) -> None:
    """MANYGET_CONFIG naming no file is a usage error, not silently ignored."""
    env = environ(tmp_path, None)
    env["MANYGET_CONFIG"] = str(tmp_path / "nope.toml")
    proc = manyget("get", "-d", str(tmp_path), "http://127.0.0.1:1/x", env=env)
    assert proc.returncode == 2
    assert "MANYGET_CONFIG names" in proc.stderr


def test_insecure_from_the_config_file_says_so(server: Server, tmp_path: Path) -> None:
    """--insecure set in the config file is never silent: the warning names the file."""
    env = environ(tmp_path, "[get]\ninsecure = true\n")
    proc = manyget("get", "-q", "-d", str(tmp_path), f"{server.url}/bytes/5", env=env)
    assert proc.returncode == 0, proc.stderr
    assert f"warning: --insecure (set in {env['MANYGET_CONFIG']})" in proc.stderr
