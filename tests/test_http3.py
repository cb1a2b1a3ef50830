"""HTTP/3 (QUIC) end to end on every engine, against hypercorn on loopback: --http3 gets
the exact bytes over HTTP/3 and says so in the results; without it, HTTP/2 over TLS."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import manyget
from manyget import RetryPolicy, Status, UsageError
from manyget._server._resources import bytes_chunks

pytestmark = pytest.mark.timeout(120)

FAST = RetryPolicy(retries=2, backoff=0.01)
SIZES = (1, 100_000, 3_000_000)
TESTS = Path(__file__).parent


def served(size: int) -> bytes:
    return b"".join(bytes_chunks(size, 0, size))


def _free_tcp_and_udp_port() -> int:
    """A port free for both TCP (HTTP/1.1 and 2) and UDP (QUIC) on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both TCP and UDP")


@pytest.fixture(scope="module")
def h3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """hypercorn serving tests/_asgi_files.py over HTTPS and QUIC: (base URL, CA file)."""
    if (
        importlib.util.find_spec("hypercorn") is None
        or importlib.util.find_spec("aioquic") is None
    ):
        if os.environ.get("MANYGET_CI") == "1":
            pytest.fail("hypercorn[h3] is not installed, and CI must run this test")
        pytest.skip("hypercorn[h3] is not installed")
    from manyget._server._tls import make_test_certificate

    home = tmp_path_factory.mktemp("h3")
    cert, key = make_test_certificate(home)
    log = home / "hypercorn.log"
    port = _free_tcp_and_udp_port()
    bind = f"127.0.0.1:{port}"
    command = [sys.executable, "-m", "hypercorn", "--bind", bind, "--quic-bind", bind,
               "--certfile", str(cert), "--keyfile", str(key), "_asgi_files:app"]  # fmt: skip
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, cwd=TESTS, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"hypercorn did not start: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.1)
        yield f"https://127.0.0.1:{port}", str(cert)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_http3_on_every_engine(h3_server: tuple[str, str], engine: str, tmp_path: Path) -> None:
    """--http3: every body exact, every answer recorded as HTTP/3."""
    base, ca = h3_server
    urls = [f"{base}/bytes/{size}" for size in SIZES]
    report = manyget.download(urls, tmp_path, engine=engine, http="3", ca_file=ca, retries=FAST)
    assert [r.status for r in report.results] == [Status.OK] * len(SIZES)
    assert {r.history[-1].http_version for r in report.results} == {"3"}
    for size in SIZES:
        assert (tmp_path / str(size)).read_bytes() == served(size)


def test_without_http3_the_same_server_speaks_http2(
    h3_server: tuple[str, str], tmp_path: Path
) -> None:
    """The default negotiates HTTP/2 by ALPN: HTTP/3 is only ever what --http3 asks for."""
    base, ca = h3_server
    report = manyget.download([f"{base}/bytes/1000"], tmp_path, ca_file=ca, retries=FAST)
    (result,) = report.results
    assert result.status is Status.OK
    assert result.history[-1].http_version == "2"


def test_cli_json_records_http3(h3_server: tuple[str, str], tmp_path: Path) -> None:
    """manyget get --http3 --json: the JSON line says http_version 3."""
    base, ca = h3_server
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "--http3", "--cacert", ca, "-d",
         str(tmp_path), "--json", f"{base}/bytes/5000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[-1])
    assert record["http_version"] == "3"
    assert (tmp_path / "5000").read_bytes() == served(5000)


def test_http3_refused_up_front_by_a_libcurl_without_it() -> None:
    """A libcurl without HTTP/3 makes --http3 one usage error, not a failure per URL."""
    import pycurl

    from manyget._options import check_http3

    features = int(pycurl.version_info()[4])
    check_http3(features | pycurl.VERSION_HTTP3)
    with pytest.raises(
        UsageError, match=r"^--http3 \(http='3'\) needs a libcurl built with HTTP/3"
    ):
        check_http3(features & ~pycurl.VERSION_HTTP3)
