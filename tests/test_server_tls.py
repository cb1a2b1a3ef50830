"""The embedded server over TLS: HTTPS fixtures for redirect-downgrade and certificate tests.

Real loopback sockets and a throw-away certificate from the ``openssl`` tool; the module is
skipped where that tool is missing.
"""

from __future__ import annotations

import http.client
import io
import logging
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from manyget._server import Server, flag_gif, make_test_certificate, tls_context
from manyget._server._resources import bytes_chunks

if shutil.which("openssl") is None:
    pytest.skip("the openssl command-line tool is not installed", allow_module_level=True)

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key, made once for the module."""
    return make_test_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(tls_files: tuple[Path, Path]) -> Iterator[Server]:
    """One HTTPS server for the read-only tests of this module."""
    with Server(tls=tls_context(*tls_files)) as srv:
        yield srv


@pytest.fixture(scope="module")
def trusting(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts the test certificate and nothing else."""
    return ssl.create_default_context(cafile=tls_files[0])


def https(server: Server, context: ssl.SSLContext) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection(server.host, server.port, timeout=10, context=context)


def tls_socket(server: Server, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A TLS socket that reports an EOF without close_notify instead of hiding it."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    return context.wrap_socket(sock, server_hostname=server.host, suppress_ragged_eofs=False)


def exchange(sock: ssl.SSLSocket, path: str) -> tuple[bytes, bytes, BaseException | None]:
    """Send one GET, read until the connection ends: (head, body, the error that ended it)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    data = bytearray()
    error: BaseException | None = None
    try:
        while chunk := sock.recv(1 << 16):
            data += chunk
    except (ssl.SSLEOFError, ConnectionResetError) as exc:
        error = exc
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head, body, error


# --------------------------------------------------------------------------- tests


def test_certificate_files_and_context(tls_files: tuple[Path, Path]) -> None:
    """make_test_certificate writes PEM files that tls_context loads as a server context."""
    cert, key = tls_files
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY-----" in key.read_bytes()
    assert tls_context(cert, key).protocol == ssl.PROTOCOL_TLS_SERVER


def test_flag_over_https_is_byte_identical(tls_server: Server, trusting: ssl.SSLContext) -> None:
    """A flag fetched over HTTPS by a client trusting the certificate is the flag, unchanged."""
    assert tls_server.url.startswith("https://127.0.0.1:")
    url = tls_server.flags_url + "/br/br.gif"
    with urllib.request.urlopen(url, context=trusting, timeout=10) as resp:
        assert resp.status == 200
        assert resp.read() == flag_gif("BR")


def test_untrusted_certificate_fails_verification(
    tls_server: Server, trusting: ssl.SSLContext
) -> None:
    """A client without the certificate gets SSLCertVerificationError; the server carries on."""
    untrusting = ssl.create_default_context()
    with pytest.raises(urllib.error.URLError) as info:
        urllib.request.urlopen(tls_server.flags_url + "/br/br.gif", context=untrusting, timeout=10)
    assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
    with urllib.request.urlopen(tls_server.url + "/status/200", context=trusting, timeout=10):
        pass


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_certificate_names_cover_loopback(tls_files: tuple[Path, Path], host: str) -> None:
    """The certificate verifies for 127.0.0.1, ::1 and localhost; ALPN settles on HTTP/1.1."""
    try:
        server = Server(host, tls=tls_context(*tls_files)).start()
    except OSError:
        pytest.skip(f"cannot listen on {host}")
    with server:
        assert server.url == f"https://{'[::1]' if host == '::1' else host}:{server.port}"
        context = ssl.create_default_context(cafile=tls_files[0])
        context.set_alpn_protocols(["h2", "http/1.1"])
        for name in (host, "localhost"):
            raw = socket.create_connection((host, server.port), timeout=10)
            with context.wrap_socket(raw, server_hostname=name) as sock:
                assert sock.version() in ("TLSv1.2", "TLSv1.3")
                assert sock.selected_alpn_protocol() == "http/1.1"


def test_redirect_to_http_is_sent_as_is(
    tls_server: Server, trusting: ssl.SSLContext, server: Server
) -> None:
    """/faults/redirect-to over HTTPS answers 302 with a plain-http Location, unfollowed."""
    target = f"http://127.0.0.1:{server.port}/flags/br/br.gif"
    conn = https(tls_server, trusting)
    try:
        conn.request("GET", "/faults/redirect-to?url=" + target)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 302
        assert resp.getheader("Location") == target
    finally:
        conn.close()


def test_redirect_chain_keeps_https(tls_server: Server, trusting: ssl.SSLContext) -> None:
    """The server's own absolute redirects over TLS point at https://, never downgrade."""
    conn = https(tls_server, trusting)
    try:
        conn.request("GET", "/faults/redirect/1/10")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 302
        assert resp.getheader("Location") == f"{tls_server.url}/faults/redirect/0/10"
    finally:
        conn.close()


def test_body_faults_over_tls(tls_server: Server, trusting: ssl.SSLContext) -> None:
    """Truncation ends in a TLS close, reset-mid in a bare reset, each after exactly half."""
    for size in (1000, 4_000_000):
        with tls_socket(tls_server, trusting) as sock:
            head, body, error = exchange(sock, f"/faults/truncate/{size}")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == b"".join(bytes_chunks(size, 0, size // 2))
        assert error is None
        with tls_socket(tls_server, trusting) as sock:
            head, body, error = exchange(sock, f"/faults/reset-mid/{size}")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert body == b"".join(bytes_chunks(size, 0, size // 2))
        assert error is not None


def test_pycurl_needs_the_certificate(tls_server: Server, tls_files: tuple[Path, Path]) -> None:
    """libcurl fetches over HTTP/1.1 with CAINFO set, and fails with error 60 without it."""
    pycurl = pytest.importorskip("pycurl")
    url = tls_server.flags_url + "/br/br.gif"

    def perform(cainfo: Path | None) -> tuple[int, bytes]:
        buffer = io.BytesIO()
        curl = pycurl.Curl()
        try:
            curl.setopt(pycurl.URL, url)
            curl.setopt(pycurl.WRITEDATA, buffer)
            curl.setopt(pycurl.TIMEOUT, 10)
            if cainfo is not None:
                curl.setopt(pycurl.CAINFO, str(cainfo))
            curl.perform()
            assert curl.getinfo(pycurl.INFO_HTTP_VERSION) == pycurl.CURL_HTTP_VERSION_1_1
            return curl.getinfo(pycurl.RESPONSE_CODE), buffer.getvalue()
        finally:
            curl.close()

    assert perform(tls_files[0]) == (200, flag_gif("BR"))
    with pytest.raises(pycurl.error) as info:
        perform(None)
    assert info.value.args[0] == pycurl.E_SSL_CACERT == 60


def test_stop_closes_tls_connections_and_handshakes(
    tls_files: tuple[Path, Path], trusting: ssl.SSLContext
) -> None:
    """stop() closes keep-alive TLS connections and half-done handshakes, and is idempotent."""
    server = Server(tls=tls_context(*tls_files)).start()
    idle = https(server, trusting)
    stuck = socket.create_connection((server.host, server.port), timeout=10)
    try:
        stuck.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and no more
        # Accepted in order: once idle is answered, stuck is in its handshake.
        idle.request("GET", "/flags/br/br.gif")
        assert idle.getresponse().read() == flag_gif("BR")
        assert server.open_connections == 1  # a connection counts once its handshake is done
        start = time.perf_counter()
        server.stop()
        server.stop()
        assert time.perf_counter() - start < 5
        assert idle.sock is not None
        assert idle.sock.recv(10) == b""  # closed without close_notify, a ragged EOF
        assert stuck.recv(10) == b""
    finally:
        idle.close()
        stuck.close()
        server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=2).close()


def test_client_side_context_is_refused() -> None:
    """Server(tls=...) rejects a client-side context at once, not at every handshake."""
    with pytest.raises(ValueError, match="server-side"):
        Server(tls=ssl.create_default_context())


def test_missing_openssl_is_a_runtime_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the openssl tool, make_test_certificate says so with a RuntimeError."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="openssl"):
        make_test_certificate(tmp_path)


def test_client_close_notify_mid_answer_is_quiet(
    tls_server: Server, trusting: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that ends TLS while its answer is pending costs no warning, no connection."""
    with tls_socket(tls_server, trusting) as sock:
        sock.sendall(b"GET /faults/stall/10?seconds=0.2 HTTP/1.1\r\nHost: test\r\n\r\n")
        sock.unwrap().close()  # close_notify, the closest TLS has to a half-close
    deadline = time.monotonic() + 5
    while tls_server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tls_server.open_connections == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
