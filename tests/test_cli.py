"""The command line: `manyget flags` as in the book, `get`, `serve`, exit statuses."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from manyget import ENGINES
from manyget._cli import main
from manyget._server import COUNTRY_CODES, POP20_CC, Server, flag_gif

pytestmark = pytest.mark.timeout(120)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def manyget_cli(
    *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manyget", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --------------------------------------------------------------------------- flags


def test_flags_default_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`manyget flags` prints the book's initial and final report for the POP20 set."""
    code, out, _ = run_main(["flags", "-d", str(tmp_path)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert re.fullmatch(r"LOCAL site: http://127\.0\.0\.1:\d+/flags", lines[0])
    assert lines[1] == "Searching for 20 flags: from BD to VN"
    assert lines[2] == "20 concurrent connections will be used."
    assert lines[3] == "-" * 20
    assert lines[4] == " 20 flags downloaded."
    assert re.fullmatch(r"Elapsed time: \d+\.\d\ds", lines[5])
    assert len(lines) == 6
    for cc in POP20_CC:
        assert (tmp_path / f"{cc.lower()}.gif").read_bytes() == flag_gif(cc)


def test_flags_every_reports_not_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`-e` asks for all 676 codes: 194 downloaded, 482 not found, no file for those."""
    code, out, _ = run_main(["flags", "-e", "-d", str(tmp_path)], capsys)
    assert code == 0
    assert "Searching for 676 flags: from AA to ZZ" in out
    assert "194 flags downloaded." in out
    assert "482 not found." in out
    assert "error" not in out
    assert len(list(tmp_path.iterdir())) == 194


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "dask"])  # dask: test_dask.py
def test_flags_all_each_engine(
    engine: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-a` downloads the 194 flags on every engine; sequential uses one connection."""
    code, out, _ = run_main(["flags", "-a", "--engine", engine, "-d", str(tmp_path)], capsys)
    assert code == 0
    assert "Searching for 194 flags: from AD to ZW" in out
    assert "194 flags downloaded." in out
    expected = (
        "1 connection will be used."
        if engine == "sequential"
        else ("64 concurrent connections will be used.")
    )
    assert expected in out


@pytest.mark.parametrize(
    ("args", "searching"),
    [
        (["B"], "Searching for 26 flags: from BA to BZ"),
        (["br", "CN", "jp"], "Searching for 3 flags: BR, CN, JP"),
        (["-a", "-l", "5"], "Searching for 5 flags: AD, AE, AF, AG, AL"),
        (["-e", "-a", "BR"], "Searching for 676 flags: from AA to ZZ"),
        (["-a", "BR"], "Searching for 194 flags: from AD to ZW"),
        (["-l", "3"], "Searching for 3 flags: BD, BR, CD"),
        (["US"], "Searching for 1 flag: US"),
    ],
)
def test_flags_code_selection(
    args: list[str], searching: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Codes, first letters, -a, -e and -l combine with the book's precedence."""
    code, out, _ = run_main(["flags", *args, "-d", str(tmp_path)], capsys)
    assert code == 0
    assert searching in out.splitlines()


def test_flags_first_letter_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`B` asks for BA..BZ: existing countries download, the rest are not found."""
    code, out, _ = run_main(["flags", "B", "-d", str(tmp_path)], capsys)
    existing = [cc for cc in COUNTRY_CODES if cc.startswith("B")]
    assert code == 0
    assert f"{len(existing):3} flags downloaded." in out
    assert f"{26 - len(existing):3} not found." in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["XYZ"], "*** Usage error: each CC argument must be A to Z or AA to ZZ."),
        (["B1"], "*** Usage error: each CC argument must be A to Z or AA to ZZ."),
        (["-m", "0"], "*** Usage error: --max_req CONCURRENT must be >= 1"),
        (["-l", "0"], "*** Usage error: --limit N must be >= 1"),
        (["-s", "BOGUS"], "*** Usage error: --server LABEL must be one of"),
        (["-s", "ftp://x"], "*** Usage error: --server URL must be http:// or https://"),
        (["--bogus"], "*** Usage error: unrecognized option: --bogus"),
        (["--delay", "abc"], "*** Usage error: argument --delay:"),
        (["--engine", "nope"], "*** Usage error: argument --engine: invalid choice"),
        (["--error-rate", "2"], "*** Usage error: argument --error-rate:"),
    ],
)
def test_flags_usage_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad flags arguments print the book's usage error line and exit 2, downloading nothing."""
    code, out, _ = run_main(["flags", *args, "-d", str(tmp_path)], capsys)
    assert code == 2
    assert out.splitlines()[0].startswith(message)
    assert "usage: manyget flags" in out
    assert "[--error-rate P]" in out  # the usage block lists every option
    assert not any(tmp_path.iterdir())


def test_flags_delay_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The DELAY server slows every request; all flags still arrive."""
    code, out, _ = run_main(
        ["flags", "-s", "DELAY", "--delay", "0.3", "-d", str(tmp_path)], capsys
    )
    assert code == 0
    assert out.startswith("DELAY site: http://127.0.0.1:")
    assert " 20 flags downloaded." in out
    elapsed = float(re.search(r"Elapsed time: (\d+\.\d+)s", out).group(1))  # type: ignore[union-attr]
    assert elapsed >= 0.3


def test_flags_error_server_counts_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ERROR server's failures are counted, not raised; counts add up to the codes."""
    code, out, _ = run_main(
        ["flags", "-a", "-s", "ERROR", "--delay", "0.05", "-v", "-d", str(tmp_path)], capsys
    )
    assert code == 0
    ok = int(re.search(r"^\s*(\d+) flags? downloaded\.$", out, re.M).group(1))  # type: ignore[union-attr]
    errors = int(re.search(r"^\s*(\d+) errors?\.$", out, re.M).group(1))  # type: ignore[union-attr]
    assert ok + errors == 194
    assert 10 < errors < 100
    assert re.search(r"^[A-Z]{2} error: HTTP 5\d\d ", out, re.M)
    assert re.search(r"^[A-Z]{2} OK$", out, re.M)
    assert len(list(tmp_path.iterdir())) == ok


def test_flags_retries_hide_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --retries the ERROR server's transient 5xx are retried away."""
    code, out, _ = run_main(
        ["flags", "-a", "-s", "ERROR", "--delay", "0.01", "--retries", "8", "-d", str(tmp_path)],
        capsys,
    )
    assert code == 0
    assert "194 flags downloaded." in out
    assert "error" not in out


def test_flags_verbose_not_found_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-v prints one line per code: OK or not found with the URL."""
    code, out, _ = run_main(["flags", "-v", "BR", "AA", "-d", str(tmp_path)], capsys)
    assert code == 0
    assert "BR OK" in out.splitlines()
    assert re.search(r"^AA not found: http://127\.0\.0\.1:\d+/flags/aa/aa\.gif$", out, re.M)


def test_flags_custom_server_url(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-s with a base URL uses that server instead of starting one."""
    code, out, _ = run_main(["flags", "-s", server.flags_url, "BR", "-d", str(tmp_path)], capsys)
    assert code == 0
    assert out.splitlines()[0] == f"CUSTOM site: {server.flags_url}"
    assert (tmp_path / "br.gif").read_bytes() == flag_gif("BR")


# --------------------------------------------------------------------------- get


def test_get_urls_and_json(server: Server, tmp_path: Path) -> None:
    """`get` with URL arguments saves files, prints JSON records, exits 1 on a 404."""
    urls = [f"{server.flags_url}/br/br.gif", f"{server.flags_url}/aa/aa.gif"]
    proc = manyget_cli("get", *urls, "-d", str(tmp_path), "--json")
    assert proc.returncode == 1
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(r["status"] for r in records) == ["not_found", "ok"]
    assert (tmp_path / "br.gif").read_bytes() == flag_gif("BR")
    assert not (tmp_path / "aa.gif").exists()
    assert "NOT FOUND" in proc.stderr
    assert "1 downloaded, 1 not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_get_list_file_with_bad_lines(server: Server, tmp_path: Path) -> None:
    """A list with comments, CRLF and a bad line: the bad line is named, the rest run."""
    listing = tmp_path / "list.txt"
    listing.write_bytes(
        b"\xef\xbb\xbf# flags\r\n"
        + f"{server.flags_url}/br/br.gif\r\n\r\n".encode()
        + b"javascript:alert(1)\r\n"
        + f"{server.flags_url}/cn/cn.gif\r\n".encode()
    )
    dest = tmp_path / "out"
    dest.mkdir()
    proc = manyget_cli("get", "-i", str(listing), "-d", str(dest))
    assert proc.returncode == 1
    assert "line 4: unsupported scheme javascript:" in proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["br.gif", "cn.gif"]


def test_get_from_stdin(server: Server, tmp_path: Path) -> None:
    """`-i -` reads the list from standard input; all complete means exit 0."""
    stdin = "".join(f"{server.flags_url}/{cc.lower()}/{cc.lower()}.gif\n" for cc in POP20_CC)
    proc = manyget_cli("get", "-i", "-", "-d", str(tmp_path), "-q", stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert len(list(tmp_path.iterdir())) == 20


def test_get_verbose_lines(server: Server, tmp_path: Path) -> None:
    """-v prints one line per URL."""
    proc = manyget_cli("get", f"{server.flags_url}/jp/jp.gif", "-d", str(tmp_path), "-v")
    assert proc.returncode == 0
    assert re.search(r"^OK http://\S+/jp\.gif -> \S+jp\.gif", proc.stderr, re.M)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["get"], 2, "no URLs"),
        (["get", "-i", "/nonexistent/list.txt"], 2, "cannot read URL list"),
        (["get", "http://127.0.0.1:1/x", "-j", "0"], 2, "must be >= 1"),
        (["get", "http://127.0.0.1:1/x", "--engine", "warp"], 2, "invalid choice"),
        (["get", "http://127.0.0.1:1/x", "--timeout", "-1"], 2, "must be > 0"),
        (["bogus"], 2, "invalid choice"),
        (["get", "x", "-v", "-q"], 2, "not allowed with argument -v/--verbose"),
        (["get", "x", "--max-size", "5X"], 2, "not a size: '5X'"),
        (["get", "x", "--bogus=s3cret"], 2, "unrecognized option: --bogus"),
        (["get", "x", "--tokn", "s3cret"], 2, "unrecognized option: --tokn"),
        (["serve", "--port", "99999"], 2, "--port: must be 0 to 65535, got 99999"),
        (["bench", "--runs", "0"], 2, "--runs: must be >= 1"),
    ],
)
def test_get_usage_errors(args: list[str], code: int, message: str) -> None:
    """Usage errors are one line (and one pointing at --help), exit 2, no traceback, and
    never echo an argument's value (a secret may follow a mistyped option)."""
    proc = manyget_cli(*args)
    assert proc.returncode == code
    lines = proc.stderr.splitlines()
    assert message in lines[0], proc.stderr
    assert lines[0].startswith("manyget")
    assert len(lines) <= 2, proc.stderr
    assert lines[1:] in ([], [f"Try '{lines[0].split(': error')[0]} --help'."]), proc.stderr
    assert "s3cret" not in proc.stderr


def test_get_destination_not_a_folder(tmp_path: Path) -> None:
    """A destination that is a file is a local I/O error: exit 3, one line."""
    target = tmp_path / "f"
    target.write_text("")
    proc = manyget_cli("get", "http://127.0.0.1:1/x", "-d", str(target))
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"manyget: error: destination {str(target)!r} is not a folder"
    ]


# --------------------------------------------------------------------------- serve


def test_serve_foreground_until_interrupted(tmp_path: Path) -> None:
    """`manyget serve --port 0` serves flags until SIGINT, then exits 0."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "manyget", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = re.search(r"http://\S+", line).group(0)  # type: ignore[union-attr]
        with urllib.request.urlopen(f"{url}/flags/br/br.gif", timeout=10) as resp:
            assert resp.read() == flag_gif("BR")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_help_is_fast_and_lists_commands() -> None:
    """`manyget --help` names the commands and the exit statuses."""
    proc = manyget_cli("--help")
    assert proc.returncode == 0
    for word in ("get", "flags", "serve", "Exit status"):
        assert word in proc.stdout


def on_a_terminal(args: list[str]) -> tuple[int, str]:
    """Run manyget with stderr on a pseudo-terminal (100 columns); its code and screen."""
    import fcntl
    import pty
    import struct
    import termios

    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "manyget", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    return proc.returncode, b"".join(chunks).decode(errors="replace")


def test_progress_bar_knows_a_list_files_total_and_counts_failures(
    server: Server, tmp_path: Path
) -> None:
    """With -i FILE the bar has the list's total from its first frames (counted on the
    side), and shows failures, bytes and rate; failure lines scroll above it."""
    listing = tmp_path / "list.txt"
    urls = [f"{server.url}/bytes/{1000 + i}" for i in range(60)]
    urls += [f"{server.url}/status/404?{i}" for i in range(3)]
    listing.write_text("# a comment\n\n" + "\n".join(urls) + "\n")
    dest = tmp_path / "d"
    dest.mkdir()
    code, screen = on_a_terminal(["get", "-d", str(dest), "-i", str(listing), "-j", "2"])
    assert code == 1
    lines = screen.replace("\r", "\n").split("\n")
    frames = [f for f in lines if re.match(r"\d+(/\d+\+?)? files  ", f)]
    assert len(frames) >= 2
    # The total from the start (the first frame may be drawn before the count is in).
    assert all("/63 files" in f for f in frames[1:]), frames[:3]
    assert re.search(r"63/63 files  3 failed  \d+\.\d kB  ", screen), frames[-3:]
    assert screen.count("NOT FOUND http://") == 3


def test_no_control_characters_when_stderr_is_not_a_terminal(
    server: Server, tmp_path: Path
) -> None:
    """Piped stderr gets plain lines: no bar, no carriage return, no escape sequence."""
    urls = [f"{server.flags_url}/{cc.lower()}/{cc.lower()}.gif" for cc in POP20_CC]
    proc = manyget_cli("get", "-v", "-d", str(tmp_path), *urls)
    assert proc.returncode == 0
    assert "\r" not in proc.stderr
    assert "\x1b" not in proc.stderr
    assert proc.stderr.count("OK http://") == 20


def test_ticker_prints_a_plain_line_at_most_every_interval() -> None:
    """The non-terminal progress line: counts, failures, bytes and rate, no control
    characters, and none more often than asked."""
    import io

    from manyget._progress import Ticker
    from manyget._results import Result, Status

    out = io.StringIO()
    ticker = Ticker(out, every=0.0)
    ticker.started(3)
    ticker.result(Result(url="u", path="p", status=Status.OK, bytes=2000, received=2000))
    ticker.result(Result(url="v", path=None, status=Status.ERROR, error="x"))
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith("manyget: 2/3 files, 1 failed, 2.0 kB, ")
    quiet = io.StringIO()
    slow = Ticker(quiet, every=3600)
    slow.started(None)
    slow.result(Result(url="u", path="p", status=Status.OK))
    assert quiet.getvalue() == ""


def test_get_progress_bar_on_a_terminal(server: Server, tmp_path: Path) -> None:
    """On a terminal `get -v` draws a tqdm bar on stderr and prints each result through it."""
    urls = [f"{server.flags_url}/{cc.lower()}/{cc.lower()}.gif" for cc in POP20_CC]
    code, screen = on_a_terminal(["get", "-v", "-d", str(tmp_path), *urls])
    assert code == 0
    assert re.search(r"20/20 files  \d+\.\d kB  [\d.]+ [kM]?B/s  ETA 00:00", screen), screen
    assert screen.count("OK http://") == 20


def test_flags_max_req_caps_connections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-m N caps the concurrent connections reported and used."""
    code, out, _ = run_main(["flags", "-m", "5", "-d", str(tmp_path)], capsys)
    assert code == 0
    assert "5 concurrent connections will be used." in out.splitlines()
    assert " 20 flags downloaded." in out.splitlines()
    code, out, _ = run_main(["flags", "-m", "1", "BR", "CN", "-d", str(tmp_path)], capsys)
    assert "1 connection will be used." in out.splitlines()


def test_serve_faults_flag(tmp_path: Path) -> None:
    """`manyget serve --faults` serves the fault routes; without it they are 404."""
    for flag, expected in (("--faults", 503), (None, 404)):
        cmd = [sys.executable, "-m", "manyget", "serve", "--port", "0"]
        proc = subprocess.Popen([*cmd, flag] if flag else cmd, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stderr is not None
            url = re.search(r"http://\S+", proc.stderr.readline()).group(0)  # type: ignore[union-attr]
            with pytest.raises(urllib.error.HTTPError) as caught:
                urllib.request.urlopen(f"{url}/faults/status/503", timeout=10)
            caught.value.close()
            assert caught.value.code == expected
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def test_summary_says_when_the_per_host_limit_held_the_run_back(
    server: Server, tmp_path: Path
) -> None:
    """One host, 24 slow URLs, --per-host 2 with room for 64: the summary says the
    per-host limit held the run back, once, naming the option; with room it says nothing."""
    urls = [f"{server.url}/faults/stall/{3000 + i}?seconds=0.1" for i in range(24)]
    held = manyget_cli("get", "-d", str(tmp_path), "--per-host", "2", *urls)
    assert held.returncode == 0, held.stderr
    assert held.stderr.count("the per-host limit (2 at once) held this run back") == 1
    assert "--per-host N" in held.stderr
    free = tmp_path / "free"
    free.mkdir()
    fast = manyget_cli("get", "-d", str(free), "--per-host", "24", *urls)
    assert fast.returncode == 0, fast.stderr
    assert "per-host limit" not in fast.stderr


@pytest.mark.parametrize("engine", ["multi", "sequential", "threads", "processes", "asyncio"])
def test_big_files_in_flight_get_byte_bars(server: Server, engine: str, tmp_path: Path) -> None:
    """A file over 8 MB gets a byte bar of its own under the main bar while it comes in
    (capped at 10 MiB/s so that it takes a second), on every engine; small files do not."""
    code, screen = on_a_terminal(
        ["get", "-d", str(tmp_path), "--engine", engine, "--limit-rate", "10M",
         f"{server.url}/bytes/10000000", f"{server.url}/bytes/1000"]
    )  # fmt: skip
    assert code == 0, screen
    frames = screen.replace("\r", "\n").split("\n")
    bars = [f for f in frames if f.startswith("10000000:")]
    assert bars, frames
    assert any(re.search(r"\d+%\|.*\| *[\d.]+M/10\.0M", f) for f in bars), bars
    assert not any(f.startswith("1000:") for f in frames)
    assert (tmp_path / "10000000").stat().st_size == 10_000_000


def test_serve_warns_when_it_listens_on_every_interface() -> None:
    """--host 0.0.0.0 (or ::) is said plainly on start; one address is not."""
    from manyget._cli import every_interface

    for host in ("0.0.0.0", "::", "[::]", ""):
        warning = every_interface(host)
        assert warning is not None
        assert "listening on every interface" in warning
        assert "--host 127.0.0.1" in warning
    assert every_interface("127.0.0.1") is None
    assert every_interface("::1") is None


def test_serve_reproduces_the_books_slow_and_error_servers() -> None:
    """--error-status answers every failure with one status (the slow server's 418);
    --delay-rate delays only that share of requests (the ERROR server's 50%)."""
    import urllib.error

    proc = subprocess.Popen(
        [sys.executable, "-m", "manyget", "serve", "--port", "0", "--error-rate", "1",
         "--error-status", "418", "--delay", "5", "--delay-rate", "0", "--seed", "1"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        url = re.search(r"http://\S+", proc.stderr.readline()).group(0)  # type: ignore[union-attr]
        start = time.monotonic()
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{url}/flags/br/br.gif", timeout=10)
        caught.value.close()  # the error response holds the socket
        assert caught.value.code == 418
        assert time.monotonic() - start < 4  # --delay-rate 0: the 5 s delay never applies
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        if proc.stderr is not None:
            proc.stderr.close()
    bad = manyget_cli("serve", "--port", "0", "--error-status", "700")
    assert bad.returncode == 2
    assert "error_status must be 400 to 599" in bad.stderr


def test_checksums_from_the_servers_sha256sums(server: Server, tmp_path: Path) -> None:
    """--checksums URL verifies each file by name against a sha256sum list (fetched first);
    a file whose bytes do not match is never published, the others are."""
    urls = [f"{server.flags_url}/{cc}/{cc}.gif" for cc in ("br", "cn", "jp")]
    good = tmp_path / "good"
    good.mkdir()
    proc = manyget_cli("get", "-d", str(good), "--checksums", f"{server.url}/SHA256SUMS", *urls)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in good.iterdir()) == ["br.gif", "cn.gif", "jp.gif"]
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(
        f"{'0' * 64}  flags/br/br.gif\n"  # wrong on purpose
        f"{hashlib.sha256(flag_gif('CN')).hexdigest()} *cn.gif\n"
        "# a comment, then a BSD line\n"
        f"SHA256 (jp.gif) = {hashlib.sha256(flag_gif('JP')).hexdigest()}\n"
    )
    bad = tmp_path / "bad"
    bad.mkdir()
    proc = manyget_cli("get", "-d", str(bad), "--retries", "0", "--checksums", str(sums), *urls)
    assert proc.returncode == 1
    assert "sha256 mismatch" in proc.stderr
    assert sorted(p.name for p in bad.iterdir()) == ["cn.gif", "jp.gif"]
    broken = tmp_path / "broken"
    broken.write_text("not a checksum line\n")
    proc = manyget_cli("get", "-d", str(bad), "--checksums", str(broken), *urls)
    assert proc.returncode == 2
    assert "line 1: not a sha256sum line" in proc.stderr


def test_a_mirror_is_tried_when_the_first_url_fails(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """A list line with mirrors (aria2c's TAB-separated URIs): the first answers 404, the
    next is tried at once and the file is saved under the name of the line."""
    listing = tmp_path / "list.txt"
    listing.write_text(f"{server.url}/status/404\t{server.url}/bytes/77\n  out=f.bin\n")
    dest = tmp_path / "d"
    dest.mkdir()
    proc = manyget_cli("get", "-d", str(dest), "--engine", engine, "--json", "-i", str(listing))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert (record["status"], record["attempts"]) == ("ok", 2)
    assert record["url"].endswith("/bytes/77")
    assert (dest / "f.bin").stat().st_size == 77


def test_progress_total_counts_entries_not_aria2c_option_lines(
    server: Server, tmp_path: Path
) -> None:
    """The bar's total for an aria2c list counts its URLs, not their indented options."""
    listing = tmp_path / "aria2.txt"
    listing.write_text(
        "".join(
            f"{server.url}/bytes/{100 + i}\n  out=f{i}.bin\n  header=Referer: http://x/\n"
            for i in range(3)
        )
    )
    dest = tmp_path / "d"
    dest.mkdir()
    code, screen = on_a_terminal(["get", "-d", str(dest), "-i", str(listing)])
    assert code == 0, screen
    assert "3/3 files" in screen
    assert sorted(p.name for p in dest.iterdir()) == ["f0.bin", "f1.bin", "f2.bin"]
