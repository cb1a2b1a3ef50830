"""The fault routes under /faults/: every fault happens exactly as the route table says.

Real loopback sockets only: ``http.client`` where a client's view matters, raw sockets where
the exact bytes on the wire (or a reset) are the point.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator

import pytest

from manyget._server import Server, _fault_routes
from manyget._server._fault_routes import RAW_RESPONSES, gzip_body, gzip_chunks, zeros_crc32
from manyget._server._resources import bytes_chunks

pytestmark = pytest.mark.timeout(30)

Response = tuple[int, dict[str, str], bytes]
GiB = 1 << 30


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def fs() -> Iterator[Server]:
    """One server for the tests that need no connection count of their own."""
    with Server() as srv:
        yield srv


def content(size: int, salt: int = 0) -> bytes:
    return b"".join(bytes_chunks(size, 0, size, salt))


def connect(server: Server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(server.host, server.port, timeout=10)


def fetch(
    conn: http.client.HTTPConnection, path: str, method: str = "GET", **headers: str
) -> Response:
    conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def get(server: Server, path: str, method: str = "GET", **headers: str) -> Response:
    conn = connect(server)
    try:
        return fetch(conn, path, method, **headers)
    finally:
        conn.close()


def request_bytes(path: str, method: str = "GET", version: str = "1.1", **headers: str) -> bytes:
    fields = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return f"{method} {path} HTTP/{version}\r\nHost: x\r\n{fields}\r\n".encode("latin-1")


def raw(server: Server, data: bytes) -> tuple[bytes, str]:
    """Send ``data``, read until the server ends the connection: (bytes, "eof" or "reset")."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                return b"".join(chunks), "reset"
            if not chunk:
                return b"".join(chunks), "eof"
            chunks.append(chunk)


def split_head(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


def wait_for_no_connections(server: Server, seconds: float = 3.0) -> float:
    """Seconds until the server holds no connection; fails after ``seconds``."""
    start = time.perf_counter()
    while server.open_connections:
        assert time.perf_counter() - start < seconds, "the server kept the connection"
        time.sleep(0.01)
    return time.perf_counter() - start


# --------------------------------------------------------------------------- switch and index

ROUTES = [
    "status",
    "flaky",
    "redirect",
    "redirect-loop",
    "redirect-to",
    "truncate",
    "reset-mid",
    "stall",
    "drip",
    "endless",
    "wrong-length",
    "no-length",
    "chunked",
    "ignore-range",
    "bad-content-range",
    "etag-changes",
    "disposition",
    "gzip",
    "raw/bad-status-line",
    "raw/bad-chunked",
    "raw/garbage",
    "raw/close-before-response",
    "raw/header-too-long",
]


def test_index_documents_every_route(fs: Server) -> None:
    """GET /faults/ serves the module docstring, which names every route."""
    status, headers, body = get(fs, "/faults/")
    assert (status, headers["content-type"]) == (200, "text/plain; charset=utf-8")
    assert body.decode() == _fault_routes.__doc__
    for route in ROUTES:
        assert re.search(rf"/faults/{route}\b", body.decode()), route
    assert get(fs, "/faults")[2] == body


def test_fault_routes_can_be_switched_off() -> None:
    """Server(fault_routes=False) answers 404 under /faults/ and serves the rest as before."""
    with Server(fault_routes=False) as server:
        assert get(server, "/faults/status/500")[0] == 404
        assert get(server, "/faults/")[0] == 404
        assert get(server, "/bytes/10")[2] == content(10)


def test_serve_enables_fault_routes_only_when_asked() -> None:
    """serve(fault_routes=True) answers /faults/ routes; serve() without it gives 404."""
    code = (
        "import sys; from manyget._server import serve;"
        "serve('127.0.0.1', 0, fault_routes=sys.argv[1] == 'on',"
        " on_ready=lambda url: print(url, flush=True))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for switch, expected in (("on", 418), ("off", 404)):
        with subprocess.Popen(
            [sys.executable, "-c", code, switch], env=env, stdout=subprocess.PIPE, text=True
        ) as proc:
            try:
                assert proc.stdout is not None
                url = urllib.parse.urlsplit(proc.stdout.readline().strip())
                conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
                assert fetch(conn, "/faults/status/418")[0] == expected
                conn.close()
            finally:
                proc.terminate()
                proc.wait(timeout=10)


@pytest.mark.parametrize(
    "path",
    [
        "/faults/nope",
        "/faults/truncate",
        "/faults/truncate/1/2",
        "/faults/truncate/1073741825",
        "/faults/truncate/-1",
        "/faults/status/abc",
        "/faults/status/204",
        "/faults/status/600",
        "/faults/flaky/k/10001/1",
        "/faults/flaky/bad%20key/1/1",
        "/faults/etag-changes/" + "k" * 65 + "/1",
        "/faults/redirect/1001/1",
        "/faults/gzip/1073741825",
        "/faults/raw/nope",
    ],
)
def test_out_of_bounds_paths_are_404(fs: Server, path: str) -> None:
    """Unknown fault routes, wrong arity and path numbers beyond the bounds answer 404."""
    assert get(fs, path)[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/faults/drip/1?interval=61",
        "/faults/drip/1?interval=0",
        "/faults/drip/1?chunk=0",
        "/faults/stall/1?seconds=x",
        "/faults/stall/1?seconds=60.5",
        "/faults/wrong-length/1?claim=-1",
        "/faults/chunked/1073741824?chunk=1",
        "/faults/flaky/k/1/1?code=200",
        "/faults/flaky/k/1/1?reset=1&truncate=1",
        "/faults/flaky/k/1/1?reset=maybe",
        "/faults/status/503?retry-after=1&retry-after-date=1",
        "/faults/status/503?retry-after=soon",
        "/faults/redirect/1/1?code=304",
        "/faults/redirect/1/1?relative=3",
        "/faults/redirect-to",
        "/faults/redirect-to?url=http://x/%0D%0ASet-Cookie:%20a=b",
        "/faults/disposition",
        "/faults/disposition?name=a%0D%0Ab",
        "/faults/raw/header-too-long?size=8388609",
    ],
)
def test_bad_query_values_are_400(fs: Server, path: str) -> None:
    """Query values that are malformed, out of bounds or would break a header answer 400."""
    assert get(fs, path)[0] == 400


def test_methods_and_head_on_fault_routes(fs: Server) -> None:
    """Other methods get 405; HEAD of a body fault gets the honest head on a live connection."""
    assert get(fs, "/faults/status/500", "POST")[0] == 405
    conn = connect(fs)
    try:
        status, headers, body = fetch(conn, "/faults/truncate/1000", "HEAD")
        assert (status, headers["content-length"], body) == (200, "1000", b"")
        status, headers, body = fetch(conn, "/faults/reset-mid/1000", "HEAD")
        assert (status, headers["content-length"], body) == (200, "1000", b"")
        assert fetch(conn, "/faults/status/502")[0] == 502
    finally:
        conn.close()


# --------------------------------------------------------------------------- statuses


def test_status_route_with_retry_after(fs: Server) -> None:
    """/faults/status/{code} adds Retry-After in seconds or as an HTTP-date ahead."""
    status, headers, body = get(fs, "/faults/status/503?retry-after=7")
    assert (status, headers["retry-after"], body) == (503, "7", b"503 Service Unavailable\n")
    status, headers, _ = get(fs, "/faults/status/429?retry-after-date=30")
    assert status == 429
    when = email.utils.parsedate_to_datetime(headers["retry-after"]).timestamp()
    assert 27 <= when - time.time() <= 32
    assert "retry-after" not in get(fs, "/faults/status/500")[1]


def test_flaky_fails_n_times_then_serves(fs: Server) -> None:
    """The first n requests for a key get the status (HEAD counts), later ones the bytes."""
    conn = connect(fs)
    try:
        path = "/faults/flaky/statuses/3/5000?code=429&retry-after=1"
        answers = [fetch(conn, path) for _ in range(2)] + [fetch(conn, path, "HEAD")]
        assert [(s, h["retry-after"]) for s, h, _ in answers] == [(429, "1")] * 3
        for _ in range(2):
            status, headers, body = fetch(conn, path)
            assert (status, body) == (200, content(5000))
            assert headers["etag"] == '"bytes-1388"'
        assert fetch(conn, "/faults/flaky/other/1/10")[0] == 503  # a new key, a new count
        assert fetch(conn, "/faults/flaky/other/1/10")[0] == 200
    finally:
        conn.close()


def test_flaky_reset_resets_before_any_byte(fs: Server) -> None:
    """With ?reset=1 the first n requests are reset without a byte, then the bytes come."""
    request = request_bytes("/faults/flaky/resets/2/100?reset=1")
    assert raw(fs, request) == (b"", "reset")
    assert raw(fs, request) == (b"", "reset")
    status, _, body = get(fs, "/faults/flaky/resets/2/100?reset=1")
    assert (status, body) == (200, content(100))


def test_flaky_truncate_then_resume(fs: Server) -> None:
    """With ?truncate=1 the first try stops halfway; a ranged retry completes the bytes."""
    conn = connect(fs)
    try:
        conn.request("GET", "/faults/flaky/cuts/1/100000?truncate=1")
        resp = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    finally:
        conn.close()
    have = info.value.partial
    assert len(have) == 50_000
    path = "/faults/flaky/cuts/1/100000?truncate=1"
    status, _, rest = get(fs, path, Range=f"bytes={len(have)}-", If_Range='"bytes-186a0"')
    assert (status, have + rest) == (206, content(100_000))


# --------------------------------------------------------------------------- redirects


def test_redirect_chain_counts_hops(fs: Server) -> None:
    """/faults/redirect/{n}/{size} takes exactly n 302 hops with absolute Locations."""
    conn = connect(fs)
    hops = 0
    path = "/faults/redirect/4/1000?x=1"
    try:
        while True:
            status, headers, _ = fetch(conn, path, Host=f"127.0.0.1:{fs.port}")
            if status != 302:
                break
            hops += 1
            location = urllib.parse.urlsplit(headers["location"])
            assert (location.scheme, location.netloc) == ("http", f"127.0.0.1:{fs.port}")
            path = f"{location.path}?{location.query}"
    finally:
        conn.close()
    assert hops == 4
    assert path == "/faults/redirect/0/1000?x=1"
    with urllib.request.urlopen(fs.url + "/faults/redirect/5/1000", timeout=10) as resp:
        assert resp.read() == content(1000)
        assert resp.geturl().endswith("/faults/redirect/0/1000")


@pytest.mark.parametrize(
    ("query", "code", "location"),
    [
        ("relative=1", 302, "/faults/redirect/2/10?relative=1"),
        ("relative=2", 302, "../2/10?relative=2"),
        ("code=307&relative=1", 307, "/faults/redirect/2/10?code=307&relative=1"),
        ("code=301", 301, "http://{host}/faults/redirect/2/10?code=301"),
    ],
)
def test_redirect_location_forms(fs: Server, query: str, code: int, location: str) -> None:
    """Locations are absolute, path-only or dot-relative as asked, with the code asked."""
    host = f"127.0.0.1:{fs.port}"
    status, headers, _ = get(fs, f"/faults/redirect/3/10?{query}", Host=host)
    assert (status, headers["location"]) == (code, location.format(host=host))


def test_redirect_loop_points_to_itself(fs: Server) -> None:
    """/faults/redirect-loop redirects to its own URL, so clients detect the loop."""
    host = f"127.0.0.1:{fs.port}"
    status, headers, _ = get(fs, "/faults/redirect-loop?a=b", Host=host)
    assert (status, headers["location"]) == (302, f"http://{host}/faults/redirect-loop?a=b")
    status, headers, _ = get(fs, "/faults/redirect-loop?relative=2")
    assert headers["location"] == "redirect-loop?relative=2"
    with pytest.raises(urllib.error.HTTPError, match="infinite loop"):
        urllib.request.urlopen(fs.url + "/faults/redirect-loop", timeout=10)


def test_redirect_to_any_url(fs: Server) -> None:
    """/faults/redirect-to sends the given URL verbatim, to another origin or scheme."""
    for url in ("file:///etc/passwd", "https://127.0.0.1:1/x?y=1", "ftp://[::1]/a b"):
        query = urllib.parse.urlencode({"url": url, "code": "308"})
        status, headers, _ = get(fs, f"/faults/redirect-to?{query}")
        assert (status, headers["location"]) == (308, url)
    with Server(fault_routes=False) as other:
        target = urllib.parse.quote(other.url + "/bytes/10")
        with urllib.request.urlopen(f"{fs.url}/faults/redirect-to?url={target}") as resp:
            assert (resp.geturl(), resp.read()) == (other.url + "/bytes/10", content(10))


# --------------------------------------------------------------------------- bodies


def test_truncate_sends_exactly_half_then_eof(fs: Server) -> None:
    """/faults/truncate/{size} announces size, sends size // 2 bytes, then a clean close."""
    data, end = raw(fs, request_bytes("/faults/truncate/100001"))
    status, headers, body = split_head(data)
    assert (status, headers["content-length"], end) == (200, "100001", "eof")
    assert body == content(100_001)[:50_000]
    status, _, rest = get(fs, "/faults/truncate/100001", Range="bytes=50000-")
    assert (status, body + rest) == (206, content(100_001))


def test_reset_mid_sends_exactly_half_then_rst(fs: Server) -> None:
    """/faults/reset-mid/{size} sends size // 2 bytes, then resets; a Range is served whole."""
    data, end = raw(fs, request_bytes("/faults/reset-mid/200001"))
    status, headers, body = split_head(data)
    assert (status, headers["content-length"], end) == (200, "200001", "reset")
    assert body == content(200_001)[:100_000]
    status, _, rest = get(fs, "/faults/reset-mid/200001", Range="bytes=100000-")
    assert (status, body + rest) == (206, content(200_001))


def test_stall_waits_before_the_first_byte(fs: Server) -> None:
    """/faults/stall sends nothing for S seconds, then the bytes; stop() cuts it short."""
    with socket.create_connection((fs.host, fs.port), timeout=10) as sock:
        start = time.perf_counter()
        sock.sendall(request_bytes("/faults/stall/10?seconds=0.3", Connection="close"))
        first = sock.recv(1)
        waited = time.perf_counter() - start
    assert first == b"H"
    assert 0.3 <= waited < 2
    server = Server().start()
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(request_bytes("/faults/stall/10?seconds=60"))
        time.sleep(0.05)
        start = time.perf_counter()
        server.stop()  # a stalled answer does not hold the server up
        assert time.perf_counter() - start < 2
        assert sock.recv(10) == b""


def test_drip_sends_a_byte_per_interval_and_stops_when_the_client_leaves() -> None:
    """/faults/drip sends the head at once, then a byte per interval; a hang-up ends it."""
    with Server() as server:
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            start = time.perf_counter()
            sock.sendall(request_bytes("/faults/drip/1000?interval=0.05"))
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            assert time.perf_counter() - start < 0.5
            status, headers, _ = split_head(head)
            assert (status, headers["content-length"]) == (200, "1000")
            got = b"".join(sock.recv(1) for _ in range(6))
            elapsed = time.perf_counter() - start
            assert got == content(1000)[:6]
            assert 0.25 <= elapsed < 2  # six intervals of 0.05 s, minus scheduling slack
            assert server.open_connections == 1
        assert wait_for_no_connections(server) < 1.0  # noticed within a couple of intervals
        status, _, body = get(server, "/faults/drip/3000?interval=0.01&chunk=1000")
        assert (status, body) == (200, content(3000))
        status, _, body = get(server, "/faults/drip/3000?interval=0.01&chunk=7", Range="bytes=-20")
        assert (status, body) == (206, content(3000)[-20:])


def test_endless_streams_until_the_client_closes() -> None:
    """/faults/endless has no length, streams /bytes/1GiB, and stops when the client leaves."""
    with Server() as server:
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(request_bytes("/faults/endless"))
            data = b""
            while len(data) < 4 << 20:
                data += sock.recv(1 << 20)
            status, headers, body = split_head(data)
            assert (status, headers["connection"]) == (200, "close")
            assert "content-length" not in headers
            assert "transfer-encoding" not in headers
            assert body == b"".join(bytes_chunks(GiB, 0, len(body)))
        wait_for_no_connections(server)
        conn = connect(server)
        try:
            conn.request("GET", "/faults/endless?chunked=1")
            resp = conn.getresponse()
            assert resp.getheader("transfer-encoding") == "chunked"
            assert resp.read(300_000) == b"".join(bytes_chunks(GiB, 0, 300_000))
        finally:
            conn.close()
        wait_for_no_connections(server)


def test_wrong_length_longer_claim_comes_up_short(fs: Server) -> None:
    """claim > size: Content-Length claims N, exactly size bytes follow, then a close."""
    data, end = raw(fs, request_bytes("/faults/wrong-length/1000?claim=1100"))
    status, headers, body = split_head(data)
    assert (status, headers["content-length"], body, end) == (200, "1100", content(1000), "eof")
    assert "connection" not in headers
    conn = connect(fs)
    try:
        conn.request("GET", "/faults/wrong-length/1000")  # default claim: size + 1
        resp = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        assert (resp.getheader("content-length"), info.value.partial) == ("1001", content(1000))
    finally:
        conn.close()


def test_wrong_length_shorter_claim_overruns(fs: Server) -> None:
    """claim < size: all size bytes follow, then a close; reusing the connection fails."""
    data, end = raw(fs, request_bytes("/faults/wrong-length/100?claim=10"))
    status, headers, body = split_head(data)
    assert (status, headers["content-length"], body, end) == (200, "10", content(100), "eof")
    conn = connect(fs)
    try:
        assert fetch(conn, "/faults/wrong-length/100?claim=10")[2] == content(100)[:10]
        # http.client drops its read buffer between responses, so it meets the close.
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            fetch(conn, "/bytes/1")
    finally:
        conn.close()
    conn = connect(fs)
    try:  # an honest claim keeps the connection
        assert fetch(conn, "/faults/wrong-length/100?claim=100")[2] == content(100)
        assert fetch(conn, "/bytes/1")[2] == content(1)
    finally:
        conn.close()


def test_no_length_is_delimited_by_the_close(fs: Server) -> None:
    """/faults/no-length has no Content-Length; the close ends the body; ranges still work."""
    data, end = raw(fs, request_bytes("/faults/no-length/70000"))
    status, headers, body = split_head(data)
    assert (status, headers["connection"], body, end) == (200, "close", content(70_000), "eof")
    assert "content-length" not in headers
    data, _ = raw(fs, request_bytes("/faults/no-length/70000", Range="bytes=10-19"))
    status, headers, body = split_head(data)
    assert (status, headers["content-range"], body) == (
        206,
        "bytes 10-19/70000",
        content(70_000)[10:20],
    )
    assert "content-length" not in headers
    assert get(fs, "/faults/no-length/70000")[2] == content(70_000)


def test_chunked_frames_are_exact(fs: Server) -> None:
    """/faults/chunked frames chunks of exactly B bytes, a shorter last one and 0 CRLF CRLF."""
    data, _ = raw(fs, request_bytes("/faults/chunked/2500?chunk=1000", Connection="close"))
    status, headers, body = split_head(data)
    assert (status, headers["transfer-encoding"]) == (200, "chunked")
    assert "content-length" not in headers
    payload = content(2500)
    assert body == (
        b"3e8\r\n" + payload[:1000] + b"\r\n"
        b"3e8\r\n" + payload[1000:2000] + b"\r\n"
        b"1f4\r\n" + payload[2000:] + b"\r\n"
        b"0\r\n\r\n"
    )
    data, _ = raw(fs, request_bytes("/faults/chunked/0", Connection="close"))
    assert split_head(data)[2] == b"0\r\n\r\n"
    conn = connect(fs)
    try:  # http.client decodes it, on a connection that stays usable
        assert fetch(conn, "/faults/chunked/300001")[2] == content(300_001)
        status, _, part = fetch(conn, "/faults/chunked/300001?chunk=1", Range="bytes=5-9")
        assert (status, part) == (206, content(300_001)[5:10])
        assert fetch(conn, "/bytes/1")[2] == content(1)
    finally:
        conn.close()
    data, end = raw(fs, request_bytes("/faults/chunked/100", version="1.0"))
    status, headers, body = split_head(data)
    assert ("transfer-encoding" in headers, body, end) == (False, content(100), "eof")


# --------------------------------------------------------------------------- ranges


def test_ignore_range_always_sends_everything(fs: Server) -> None:
    """/faults/ignore-range advertises ranges yet answers 200 with the whole body."""
    status, headers, body = get(fs, "/faults/ignore-range/5000", Range="bytes=100-")
    assert (status, headers["accept-ranges"], body) == (200, "bytes", content(5000))
    assert "content-range" not in headers


def test_bad_content_range_answers_the_wrong_span(fs: Server) -> None:
    """/faults/bad-content-range answers any Range with 206 for bytes 0-(size-1)."""
    status, headers, body = get(fs, "/faults/bad-content-range/1000", Range="bytes=100-199")
    assert (status, headers["content-range"], body) == (206, "bytes 0-999/1000", content(1000))
    assert headers["content-length"] == "1000"
    assert get(fs, "/faults/bad-content-range/1000")[:3:2] == (200, content(1000))


def test_etag_changes_on_every_request(fs: Server) -> None:
    """Each request gets a new ETag, Last-Modified and body; If-Range then means 200."""
    path = "/faults/etag-changes/k1/10000"
    answers = [get(fs, path) for _ in range(3)]
    assert [h["etag"] for _, h, _ in answers] == ['"k1-2710-0"', '"k1-2710-1"', '"k1-2710-2"']
    assert len({h["last-modified"] for _, h, _ in answers}) == 3
    assert [b for _, _, b in answers] == [content(10_000, salt) for salt in range(3)]
    assert len({b for _, _, b in answers}) == 3
    old = answers[2][1]["etag"]
    status, headers, body = get(fs, path, Range="bytes=5000-", If_Range=old)
    assert (status, headers["etag"], body) == (200, '"k1-2710-3"', content(10_000, 3))
    assert get(fs, path, "HEAD")[1]["etag"] == '"k1-2710-4"'  # HEAD counts too
    status, headers, body = get(fs, path, Range="bytes=5000-")
    assert (status, body) == (206, content(10_000, 5)[5000:])
    assert get(fs, "/faults/etag-changes/k2/10")[1]["etag"] == '"k2-a-0"'


def test_unsatisfiable_range_is_416(fs: Server) -> None:
    """A range at or past the end answers 416, on /bytes and on the fault routes alike."""
    assert get(fs, "/bytes/100", Range="bytes=100-")[0] == 416
    status, headers, _ = get(fs, "/faults/truncate/100", Range="bytes=100-")
    assert (status, headers["content-range"]) == (416, "bytes */100")


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    "name",
    [
        b"../../etc/passwd",
        b"/etc/passwd",
        b'a"b\\c;d',
        b"tab\tbell\x07esc\x1b[31mnul\x00del\x7f",
        "\u202egnp.exe".encode(),
        "caf\u00e9 \u65e5\u672c.txt".encode(),
        b"\xff\xfe not utf-8",
        b"x" * 5000,
    ],
)
def test_disposition_sends_the_name_verbatim(fs: Server, name: bytes) -> None:
    """Content-Disposition carries the decoded name byte for byte, between quotes."""
    query = urllib.parse.quote(name, safe="")
    data, _ = raw(
        fs, request_bytes(f"/faults/disposition?size=10&name={query}", Connection="close")
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert b'\r\nContent-Disposition: attachment; filename="' + name + b'"\r\n' in head + b"\r\n"
    assert body == content(10)


def test_disposition_star_form_percent_encodes(fs: Server) -> None:
    """?star=1 sends filename*=UTF-8'' with every byte but attr-chars encoded, CR LF too."""
    name = urllib.parse.quote("caf\u00e9\r\n../x y!.txt")
    status, headers, body = get(fs, f"/faults/disposition?star=1&name={name}")
    expected = "attachment; filename*=UTF-8''caf%C3%A9%0D%0A..%2Fx%20y!.txt"
    assert (status, headers["content-disposition"], body) == (200, expected, content(1024))
    status, headers, _ = get(fs, "/faults/disposition?star=1&name=a&fallback=b.txt")
    assert headers["content-disposition"] == "attachment; filename=\"b.txt\"; filename*=UTF-8''a"
    assert get(fs, "/faults/disposition?name=a+b")[1]["content-disposition"].endswith('"a b"')


# --------------------------------------------------------------------------- gzip


def test_zeros_crc32_matches_zlib() -> None:
    """The O(log n) CRC-32 of n zero bytes agrees with zlib.crc32."""
    for n in (0, 1, 7, 8, 4095, 1 << 20, (3 << 20) + 12345):
        assert zeros_crc32(n) == zlib.crc32(bytes(n)), n


def test_gzip_bomb_is_stored_as_sent(fs: Server) -> None:
    """/faults/gzip sends gzip of size zero bytes whatever Accept-Encoding asks, ranges too."""
    size = 64 << 20
    status, headers, body = get(fs, f"/faults/gzip/{size}", Accept_Encoding="identity")
    assert (status, headers["content-encoding"]) == (200, "gzip")
    assert body == gzip_body(size)
    assert int(headers["content-length"]) == len(body) < size // 500
    assert zlib.decompress(body, wbits=31) == bytes(size)
    status, _, part = get(fs, f"/faults/gzip/{size}", Range="bytes=1000-")
    assert (status, part) == (206, body[1000:])
    for odd in (0, 1, 12345):
        assert zlib.decompress(get(fs, f"/faults/gzip/{odd}")[2], wbits=31) == bytes(odd)


def test_gzip_bomb_of_a_gibibyte_is_cheap(fs: Server) -> None:
    """A 1 GiB bomb is about 1 MiB on the wire and served at once, its trailer right."""
    start = time.perf_counter()
    status, headers, body = get(fs, f"/faults/gzip/{GiB}")
    assert time.perf_counter() - start < 2
    assert status == 200
    assert len(body) == int(headers["content-length"]) < 2 << 20
    assert struct.unpack("<II", body[-8:]) == (zeros_crc32(GiB), GiB)
    head = zlib.decompressobj(wbits=31).decompress(body, 1 << 20)
    assert head == bytes(1 << 20)
    assert b"".join(gzip_chunks(GiB, 500_000, 600_000)) == body[500_000:600_000]


# --------------------------------------------------------------------------- raw responses


@pytest.mark.parametrize("kind", sorted(RAW_RESPONSES))
def test_raw_responses_are_exact(fs: Server, kind: str) -> None:
    """Each raw route writes exactly its bytes, then closes cleanly."""
    assert raw(fs, request_bytes(f"/faults/raw/{kind}")) == (RAW_RESPONSES[kind], "eof")
    assert raw(fs, request_bytes(f"/faults/raw/{kind}", "HEAD")) == (RAW_RESPONSES[kind], "eof")


def test_raw_responses_as_documented(fs: Server) -> None:
    """The raw bytes are those in the route table, and clients refuse them."""
    assert (
        RAW_RESPONSES["bad-status-line"] == b"HTTP/1.1 abc Whatever\r\nContent-Length: 2\r\n\r\nok"
    )
    assert RAW_RESPONSES["bad-chunked"].endswith(b"\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n")
    assert RAW_RESPONSES["close-before-response"] == b""
    for kind in ("bad-status-line", "garbage", "close-before-response", "bad-chunked"):
        with pytest.raises(http.client.HTTPException):
            get(fs, f"/faults/raw/{kind}")


def test_raw_header_too_long(fs: Server) -> None:
    """header-too-long sends an X-Long field of B bytes (256 KiB by default)."""
    data, end = raw(fs, request_bytes("/faults/raw/header-too-long?size=1000"))
    expected = b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 1000 + b"\r\nContent-Length: 2\r\n\r\nok"
    assert (data, end) == (expected, "eof")
    data, _ = raw(fs, request_bytes("/faults/raw/header-too-long"))
    assert (
        hashlib.sha256(data).digest()
        == hashlib.sha256(
            b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 262_144 + b"\r\nContent-Length: 2\r\n\r\nok"
        ).digest()
    )
    with pytest.raises(http.client.LineTooLong):
        get(fs, "/faults/raw/header-too-long")
