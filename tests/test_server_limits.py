"""The server under load and hostile clients (issue 15): one test per defect, over raw sockets.

Where a test must measure the server's memory or give it a small descriptor limit, the server
is ``manyget serve`` in a child process on 127.0.0.1; otherwise a ``Server`` with short limits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import manyget
from manyget._server import Server, ServerLimits

SHORT = ServerLimits(header_timeout=0.5, keep_alive_timeout=0.5, send_timeout=0.5)
SRC = str(Path(manyget.__file__).resolve().parent.parent)


# --------------------------------------------------------------------------- helpers


def request(path: str, *, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode()


def exchange(host: str, port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection; what comes back until close or ``timeout``."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def status_of(data: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    return int(match[1]) if match else 0


class Child:
    """``manyget serve`` in a child process, its stderr in a file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path, port: int) -> None:
        self.proc = proc
        self.log = log
        self.port = port

    def rss_kib(self, field: str = "VmRSS") -> int:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        assert match is not None
        return int(match[1])

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def child_server(tmp_path: Path, *args: str, nofile: int | None = None) -> Iterator[Child]:
    log = tmp_path / f"serve-{time.monotonic_ns()}.log"

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    env = {**os.environ, "PYTHONPATH": SRC}
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "manyget", "serve", "--port", "0", *args],
            stderr=err,
            stdout=subprocess.DEVNULL,
            env=env,
            preexec_fn=limit,
        )
    try:
        deadline = time.monotonic() + 10
        port = 0
        while not port:
            match = re.search(r"serving on http://127\.0\.0\.1:(\d+)", log.read_text())
            if match:
                port = int(match[1])
            elif proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"manyget serve did not start: {log.read_text()}")
            else:
                time.sleep(0.02)
        yield Child(proc, log, port)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def short_server() -> Iterator[Server]:
    with Server(limits=SHORT) as srv:
        yield srv


# --------------------------------------------------------------------------- 1 and 8: memory


@pytest.mark.timeout(20)
def test_pipelined_requests_never_read_hold_a_few_mb(tmp_path: Path) -> None:
    """7,000 pipelined GET /bytes/65536 from a client that never reads hold a few MB, not 450."""
    with child_server(tmp_path) as child:
        assert exchange(
            "127.0.0.1", child.port, request("/bytes/10", extra="Connection: close\r\n")
        )
        before = child.rss_kib()
        greedy = []
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", child.port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(request("/bytes/65536") * 7000)
            greedy.append(sock)
        time.sleep(1.5)
        grown = child.rss_kib("VmHWM") - before
        # The server still answers everyone else at once.
        start = time.monotonic()
        reply = exchange(
            "127.0.0.1", child.port, request("/bytes/5", extra="Connection: close\r\n")
        )
        assert status_of(reply) == 200
        assert time.monotonic() - start < 1.0
        for sock in greedy:
            sock.close()
    assert grown < 16 * 1024, f"peak RSS grew {grown} KiB"


@pytest.mark.timeout(20)
def test_header_too_long_responses_are_streamed(tmp_path: Path) -> None:
    """Eight unread 8 MiB /faults/raw/header-too-long answers do not sit whole in memory."""
    with child_server(tmp_path, "--faults") as child:
        assert exchange(
            "127.0.0.1", child.port, request("/bytes/10", extra="Connection: close\r\n")
        )
        before = child.rss_kib()
        socks = []
        for _ in range(8):
            sock = socket.create_connection(("127.0.0.1", child.port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(request("/faults/raw/header-too-long?size=8388608"))
            socks.append(sock)
        time.sleep(1.0)
        grown = child.rss_kib("VmHWM") - before
        head = socks[0].recv(100)
        assert head.startswith(b"HTTP/1.1 200 OK\r\nX-Long: aaaa")
        for sock in socks:
            sock.close()
    assert grown < 16 * 1024, f"peak RSS grew {grown} KiB"


# --------------------------------------------------------------------------- 2: timeouts, cap


@pytest.mark.timeout(10)
def test_a_head_dripped_byte_by_byte_gets_408(short_server: Server) -> None:
    """The header timeout counts from a request's first byte: a slow drip gets 408 and close."""
    with socket.create_connection((short_server.host, short_server.port), timeout=3) as sock:
        sock.sendall(b"GET /bytes/1 HTTP/1.1\r\n")
        start = time.monotonic()
        sock.settimeout(0.1)
        data = b""
        while time.monotonic() - start < 3 and not data:
            with contextlib.suppress(OSError):
                sock.sendall(b"X")
            with contextlib.suppress(TimeoutError):
                data = sock.recv(4096)
        assert status_of(data) == 408
        assert time.monotonic() - start < 1.5


@pytest.mark.timeout(10)
def test_an_idle_connection_is_closed(short_server: Server) -> None:
    """A connection that sends nothing, before or after a request, is closed after its timeout."""
    with socket.create_connection((short_server.host, short_server.port), timeout=3) as silent:
        start = time.monotonic()
        assert silent.recv(100) == b""
        assert time.monotonic() - start < 2
    with socket.create_connection((short_server.host, short_server.port), timeout=3) as sock:
        sock.sendall(request("/bytes/1"))
        time.sleep(0.05)
        assert status_of(sock.recv(4096)) == 200
        start = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - start < 2


@pytest.mark.timeout(10)
def test_a_client_that_does_not_read_is_dropped(short_server: Server) -> None:
    """A client that takes nothing of a large answer is disconnected after the send timeout."""
    before = short_server.open_connections
    sock = socket.create_connection((short_server.host, short_server.port), timeout=3)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.sendall(request("/bytes/1073741824"))
        deadline = time.monotonic() + 3
        while short_server.open_connections <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        while short_server.open_connections > before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert short_server.open_connections == before
    finally:
        sock.close()


def _hold_connections(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(3)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"G")  # a request begun and never finished
        socks.append(sock)
    return socks


@pytest.mark.timeout(20)
@pytest.mark.parametrize("cap", ["default", "above the descriptor limit"])
def test_idle_clients_cannot_starve_the_server(tmp_path: Path, cap: str) -> None:
    """With 64 descriptors, 150 idle clients: others are answered, and the log stays quiet."""
    args = ["--header-timeout", "0.5"]
    if cap != "default":
        args += ["--max-connections", "1000"]
    with child_server(tmp_path, *args, nofile=64) as child:
        idle = _hold_connections(child.port, 150)
        try:
            start = time.monotonic()
            reply = exchange(
                "127.0.0.1", child.port, request("/bytes/3", extra="Connection: close\r\n")
            )
            assert status_of(reply) == 200
            assert time.monotonic() - start < 4
            time.sleep(0.6)  # one more round of back-offs, should there be any
        finally:
            for sock in idle:
                sock.close()
        log = child.stderr()
    lines = [line for line in log.splitlines() if "serving on" not in line]
    if cap == "default":
        assert lines == []  # the cap keeps accept() within the descriptor limit
    else:
        assert len(lines) == 1, log[:2000]
        assert "cannot accept connections" in lines[0]


# --------------------------------------------------------------------------- 3: FIFO race


@pytest.mark.timeout(20)
def test_a_fifo_swapped_in_cannot_block_the_server(tmp_path: Path) -> None:
    """A file that turns into a FIFO between requests never blocks the event loop."""
    data = tmp_path / "data"
    data.mkdir()
    target = data / "flip.bin"
    target.write_bytes(b"x" * 100)
    stop = threading.Event()

    def flip() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            spare = data / f"spare{n}"
            if n % 2:
                os.mkfifo(spare)
            else:
                spare.write_bytes(b"y" * 100)
            os.replace(spare, target)

    with child_server(tmp_path, "--data", str(data)) as child:
        flipper = threading.Thread(target=flip, daemon=True)
        flipper.start()
        try:
            answered = 0
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                head = request("/flip.bin", extra="Connection: close\r\n")
                reply = exchange("127.0.0.1", child.port, head, timeout=3)
                assert status_of(reply) in (200, 404), reply[:200]
                answered += 1
            assert answered > 100
        finally:
            stop.set()
            flipper.join()
            # An old server blocked in open() waits for a writer: give it one so it dies cleanly.
            with contextlib.suppress(OSError):
                os.close(os.open(target, os.O_WRONLY | os.O_NONBLOCK))


# --------------------------------------------------------------------------- 4: long targets


@pytest.mark.timeout(10)
def test_long_targets_and_deep_paths_get_414_at_once(tmp_path: Path) -> None:
    """A 60 KB target or a path of 200 segments is refused with 414 before any path work."""
    (tmp_path / "a").mkdir()
    with Server(data_dir=tmp_path) as server:
        start = time.monotonic()
        for _ in range(10):
            reply = exchange(server.host, server.port, request("/" + "a/" * 30_000 + "x"))
            assert status_of(reply) == 414
        assert time.monotonic() - start < 1.0
        assert status_of(exchange(server.host, server.port, request("/a" * 200))) == 414
        assert status_of(exchange(server.host, server.port, request("/a%2F" * 200))) == 414
    with Server() as server:
        assert status_of(exchange(server.host, server.port, request("/" + "b" * 9000))) == 414


# --------------------------------------------------------------------------- 5: huge numbers


@pytest.mark.timeout(10)
def test_huge_numbers_are_answered_not_raised(
    short_server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Content-Length or Range with 5,000 digits: 400 or the range ignored, never a traceback."""
    digits = "9" * 5000
    reply = exchange(
        short_server.host,
        short_server.port,
        request("/bytes/10", extra=f"Content-Length: {digits}\r\n"),
    )
    assert status_of(reply) == 400
    reply = exchange(
        short_server.host,
        short_server.port,
        request("/bytes/10", extra=f"Range: bytes={digits}-\r\nConnection: close\r\n"),
    )
    assert status_of(reply) in (200, 400)
    reply = exchange(
        short_server.host,
        short_server.port,
        request("/bytes/10", extra=f"Range: bytes=0-{digits}\r\nConnection: close\r\n"),
    )
    assert status_of(reply) in (200, 206, 400)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --------------------------------------------------------------------------- 6: unreadable file


@pytest.mark.timeout(10)
def test_an_unreadable_file_gets_403(tmp_path: Path) -> None:
    """A file the server may not open gets 403 before any status line, small or large."""
    data = Path(tempfile.mkdtemp(prefix="manyget-403-"))
    try:
        data.chmod(0o755)
        (data / "open.txt").write_bytes(b"hello")
        for name, size in (("small.bin", 10), ("large.bin", 1 << 20)):
            (data / name).write_bytes(b"z" * size)
            (data / name).chmod(0)
        with Server(data_dir=data) as server:
            # Root may open any file; run as nobody meanwhile (seteuid is undone just below).
            as_root = os.geteuid() == 0
            if as_root:
                os.seteuid(65534)
            try:
                replies = {
                    name: exchange(
                        server.host,
                        server.port,
                        request(f"/{name}", extra="Connection: close\r\n"),
                    )
                    for name in ("open.txt", "small.bin", "large.bin")
                }
            finally:
                if as_root:
                    os.seteuid(0)
        assert status_of(replies["open.txt"]) == 200
        assert status_of(replies["small.bin"]) == 403
        assert status_of(replies["large.bin"]) == 403
        assert replies["large.bin"].count(b"HTTP/1.1 ") == 1
    finally:
        shutil.rmtree(data)


# --------------------------------------------------------------------------- 7: log floods


@pytest.mark.timeout(15)
def test_clients_leaving_mid_body_do_not_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """Clients that reset mid-body: no "socket.send() raised exception.", one DEBUG line each."""
    caplog.set_level(logging.DEBUG)
    rounds = 40
    with Server(limits=SHORT) as server:
        for _ in range(rounds):
            sock = socket.create_connection((server.host, server.port), timeout=3)
            sock.sendall(request("/bytes/100000000"))
            sock.recv(65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        deadline = time.monotonic() + 5
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.open_connections == 0
    texts = [r.getMessage() for r in caplog.records]
    assert not [t for t in texts if "socket.send() raised exception" in t]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([r for r in caplog.records if r.name.startswith("manyget")]) <= rounds


# --------------------------------------------------------------------------- 9: smaller ones


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "head",
    [
        b"GET /bytes/1 HTTP/1.1\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\nHost: x\n\n",
        b"GET /bytes/1 HTTP/1.1\rHost: x\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
    ],
    ids=["no-host", "two-hosts", "host-space", "host-slash", "bare-lf", "bare-cr", "mixed-lf"],
)
def test_bad_host_or_line_endings_get_400(short_server: Server, head: bytes) -> None:
    """Missing, repeated or malformed Host and bare LF or CR line ends: 400 and close, at once."""
    start = time.monotonic()
    reply = exchange(short_server.host, short_server.port, head, timeout=3)
    assert status_of(reply) == 400
    assert time.monotonic() - start < 0.4  # answered, not timed out


@pytest.mark.timeout(10)
def test_good_hosts_and_http_1_0_without_host_are_served(short_server: Server) -> None:
    """Host with a port, an IPv6 literal, or an HTTP/1.0 request with no Host is served."""
    for head in (
        b"GET /bytes/1 HTTP/1.1\r\nHost: example.com:8001\r\nConnection: close\r\n\r\n",
        b"GET /bytes/1 HTTP/1.1\r\nHost: [::1]:8001\r\nConnection: close\r\n\r\n",
        b"GET /bytes/1 HTTP/1.0\r\n\r\n",
    ):
        assert status_of(exchange(short_server.host, short_server.port, head)) == 200


@pytest.mark.timeout(10)
@pytest.mark.parametrize("hidden", [False, True])
def test_hidden_files_are_not_served_unless_asked(tmp_path: Path, hidden: bool) -> None:
    """Dotfiles and files in dot-folders under --data get 404 unless hidden=True."""
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("token")
    (tmp_path / ".env").write_text("secret")
    (tmp_path / "plain.txt").write_text("hi")
    (tmp_path / "link").symlink_to(tmp_path / ".git" / "config")
    expected = 200 if hidden else 404
    with Server(data_dir=tmp_path, hidden=hidden) as server:

        def status(path: str) -> int:
            head = request(path, extra="Connection: close\r\n")
            return status_of(exchange(server.host, server.port, head))

        assert status("/plain.txt") == 200
        for path in ("/.git/config", "/.env", "/%2egit/config", "/link", "/./.env"):
            assert status(path) == expected, path


@pytest.mark.timeout(20)
def test_serve_refuses_bad_limits() -> None:
    """manyget serve checks its limit options: one line of error, exit status 2."""
    env = {**os.environ, "PYTHONPATH": SRC}
    for args in (
        ["--header-timeout", "0"],
        ["--send-timeout", "inf"],
        ["--keep-alive-timeout", "x"],
        ["--max-connections", "0"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "manyget", "serve", "--port", "0", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=15,
        )
        assert done.returncode == 2, args
        lines = done.stderr.strip().splitlines()
        assert lines[0].startswith("manyget serve: error:"), args
        assert lines[1:] in ([], ["Try 'manyget serve --help'."]), args  # one line, and help
        assert "Traceback" not in done.stderr


def test_limits_are_checked() -> None:
    """ServerLimits refuses nonsense at construction and derives the cap from RLIMIT_NOFILE."""
    for bad in (
        {"header_timeout": 0},
        {"send_timeout": float("nan")},
        {"max_connections": 0},
        {"max_queued": 10},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ServerLimits(**bad)  # type: ignore[arg-type]
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft != resource.RLIM_INFINITY:
        assert ServerLimits().connection_cap() == max(1, soft - 32)
    assert ServerLimits(max_connections=7).connection_cap() == 7
