"""The embedded server: flags, generated GIFs, HTTP/1.1 semantics, faults, life cycle.

Everything goes over real loopback sockets: ``http.client`` for well-formed traffic, raw
sockets for what a polite client would never send.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from manyget._server import (
    COUNTRY_CODES,
    COUNTRY_NAMES,
    POP20_CC,
    Faults,
    Server,
    flag_gif,
    flag_metadata,
    parse_delay,
    serve,
)
from manyget._server._resources import bytes_chunks

pytestmark = pytest.mark.timeout(30)

Response = tuple[int, dict[str, str], bytes]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def flag_server() -> Iterator[Server]:
    """One plain server for the read-only tests of this module."""
    with Server() as srv:
        yield srv


def connect(server: Server) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(server.host, server.port, timeout=10)


def fetch(
    conn: http.client.HTTPConnection,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
) -> Response:
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


def get(server: Server, path: str, method: str = "GET", **headers: str) -> Response:
    conn = connect(server)
    try:
        return fetch(conn, path, method, {k.replace("_", "-"): v for k, v in headers.items()})
    finally:
        conn.close()


def raw(server: Server, data: bytes, *, until_close: bool = True) -> bytes:
    """Send ``data`` on a fresh socket and read until the server closes it."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            if not until_close:
                break
        return b"".join(chunks)


def split_responses(data: bytes, methods: list[str]) -> list[Response]:
    """Parse back-to-back responses to ``methods``; every one carries a Content-Length."""
    out = []
    for method in methods:
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
        length = 0 if method == "HEAD" else int(headers["content-length"])
        out.append((int(lines[0].split(" ")[1]), headers, data[:length]))
        data = data[length:]
    assert data == b""
    return out


def lzw_decode(data: bytes, min_code_size: int) -> bytearray:
    """A straightforward GIF LZW decoder, written independently of the encoder."""
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1
    out = bytearray()
    table: list[bytes] = []
    size = min_code_size + 1
    prev: bytes | None = None
    pos, total = 0, len(data) * 8
    while True:
        assert pos + size <= total, "image data ended without an end code"
        word = int.from_bytes(data[pos // 8 : pos // 8 + 3], "little")
        code = (word >> (pos % 8)) & ((1 << size) - 1)
        pos += size
        if code == clear:
            table = [bytes([i]) for i in range(clear)] + [b"", b""]
            size, prev = min_code_size + 1, None
            continue
        if code == end:
            return out
        assert table, "image data must start with a clear code"
        if prev is None:
            entry = table[code]
        else:
            if code < len(table):
                entry = table[code]
            else:
                assert code == len(table), f"code {code} beyond table of {len(table)}"
                entry = prev + prev[:1]
            table.append(prev + entry[:1])
            if len(table) == 1 << size and size < 12:
                size += 1
        out += entry
        prev = entry


def decode_gif(gif: bytes) -> tuple[int, int, bytearray]:
    """Check the GIF89a block structure and return (width, height, pixel indices)."""
    assert gif[:6] == b"GIF89a"
    width, height = int.from_bytes(gif[6:8], "little"), int.from_bytes(gif[8:10], "little")
    flags = gif[10]
    assert flags & 0x80, "a global colour table is expected"
    colors = 2 << (flags & 7)
    pos = 13 + 3 * colors
    assert gif[pos] == 0x2C, "image descriptor expected after the colour table"
    assert gif[pos + 5 : pos + 9] == gif[6:10], "the image covers the logical screen"
    assert gif[pos + 9] == 0, "no local colour table, not interlaced"
    min_code_size = gif[pos + 10]
    pos += 11
    data = bytearray()
    while gif[pos]:
        data += gif[pos + 1 : pos + 1 + gif[pos]]
        pos += 1 + gif[pos]
    assert gif[pos + 1 :] == b"\x3b", "trailer right after the data sub-blocks"
    pixels = lzw_decode(bytes(data), min_code_size)
    assert max(pixels) < colors
    return width, height, pixels


# --------------------------------------------------------------------------- countries and GIFs


def test_country_codes_are_the_books_194() -> None:
    """The code list matches the book's country_codes.txt: 194 sorted uppercase codes."""
    assert len(COUNTRY_CODES) == 194
    assert list(COUNTRY_CODES) == sorted(set(COUNTRY_CODES))
    assert all(re.fullmatch("[A-Z]{2}", cc) for cc in COUNTRY_CODES)
    assert {"VA", "TW", "SS", "BR"} <= set(COUNTRY_CODES)
    assert "DO" not in COUNTRY_CODES
    assert set(COUNTRY_NAMES) == set(COUNTRY_CODES)
    assert len(POP20_CC) == 20
    assert set(POP20_CC) <= set(COUNTRY_CODES)


def test_flag_metadata_document() -> None:
    """metadata.json is the book's document: its keys in its order, its country names and
    GEC codes, as UTF-8 JSON."""
    text = flag_metadata("br").decode("utf-8")
    assert text == '{"tld_cc": ".br", "iso_cc": "BR", "country": "Brazil", "gec_cc": "BR"}'
    assert json.loads(flag_metadata("GB"))["tld_cc"] == ".uk"
    # Names and GEC codes where the book's data differs from today's usual ones.
    book = {"CD": ("Congo (Kinshasa)", "CG"), "CZ": ("Czech Republic", "EZ"),
            "US": ("United States of America", "US"), "DE": ("Germany", "GM"),
            "KR": ("Korea, South", "KS"), "VC": ("Grenadines", "VC")}  # fmt: skip
    for cc, (country, gec) in book.items():
        doc = json.loads(flag_metadata(cc))
        assert (doc["iso_cc"], doc["country"], doc["gec_cc"]) == (cc, country, gec)
    assert "Côte" in flag_metadata("CI").decode("utf-8")
    with pytest.raises(ValueError, match="unknown country code"):
        flag_metadata("AA")


def test_every_flag_is_a_valid_gif() -> None:
    """All 194 flags decode as GIF89a with exactly width x height pixels."""
    for cc in COUNTRY_CODES:
        width, height, pixels = decode_gif(flag_gif(cc))
        assert len(pixels) == width * height, cc
        assert width > height / 2 > 0


def test_flag_sizes_spread_like_real_flags() -> None:
    """Sizes span about 1-36 KB with a mean near 12 KB, like the book's flags."""
    sizes = [len(flag_gif(cc)) for cc in COUNTRY_CODES]
    assert min(sizes) >= 700
    assert max(sizes) <= 40_000
    assert 10_000 <= statistics.mean(sizes) <= 14_000
    assert len(set(sizes)) > 150


def test_flag_gif_is_cached_case_insensitive_and_checked() -> None:
    """flag_gif returns the same cached object for any case, and refuses unknown codes."""
    assert flag_gif("br") is flag_gif("BR")
    with pytest.raises(ValueError, match="unknown country code"):
        flag_gif("ZZ")


def test_flag_gif_is_the_same_in_every_process() -> None:
    """The bytes depend only on the code, not on hash randomisation or the clock."""
    code = (
        "import hashlib; from manyget._server import flag_gif;"
        "print(hashlib.sha256(b''.join(flag_gif(c) for c in ('BR','JP','US'))).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    here = hashlib.sha256(b"".join(flag_gif(c) for c in ("BR", "JP", "US"))).hexdigest()
    assert out == here


# --------------------------------------------------------------------------- routes


def test_all_flags_served_on_one_connection(flag_server: Server) -> None:
    """All 194 GIFs and metadata documents are served, byte-identical, over one keep-alive."""
    conn = connect(flag_server)
    try:
        for cc in COUNTRY_CODES:
            status, headers, body = fetch(conn, f"/flags/{cc.lower()}/{cc.lower()}.gif")
            assert (status, headers["content-type"], body) == (200, "image/gif", flag_gif(cc))
            status, headers, body = fetch(conn, f"/flags/{cc.lower()}/metadata.json")
            assert (status, headers["content-type"]) == (200, "application/json")
            assert body == flag_metadata(cc)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/flags/aa/aa.gif",
        "/flags/BR/BR.gif",
        "/flags/br/fr.gif",
        "/flags/br/",
        "/flags",
        "/",
        "/bytes/",
        "/bytes/-1",
        "/status/999",
        "/nope",
    ],
)
def test_unknown_paths_are_404(flag_server: Server, path: str) -> None:
    """Unknown codes, wrong case and unknown routes answer 404 with a small body."""
    status, headers, body = get(flag_server, path)
    assert status == 404
    assert body == b"404 Not Found\n"
    assert headers["content-length"] == str(len(body))


def test_query_string_is_ignored_for_routing(flag_server: Server) -> None:
    """/bytes/16?i=N and flags with a query string serve the same content as without."""
    assert get(flag_server, "/bytes/16?i=1")[2] == get(flag_server, "/bytes/16?i=2")[2]
    assert get(flag_server, "/flags/jp/jp.gif?x=1")[2] == flag_gif("JP")
    assert get(flag_server, "/flags/%6ap/jp.gif")[2] == flag_gif("JP")


def test_every_response_has_the_standard_headers(flag_server: Server) -> None:
    """200s carry Content-Length, a strong ETag, Last-Modified, Accept-Ranges, Date, Server."""
    status, headers, body = get(flag_server, "/flags/br/br.gif")
    assert status == 200
    assert int(headers["content-length"]) == len(body)
    assert re.fullmatch(r'"[^"]+"', headers["etag"])
    assert headers["last-modified"] == "Thu, 20 Aug 2015 00:00:00 GMT"
    assert headers["accept-ranges"] == "bytes"
    assert headers["date"].endswith(" GMT")
    assert headers["server"] == "manyget"
    again = get(flag_server, "/flags/br/br.gif")[1]
    assert again["etag"] == headers["etag"]
    assert get(flag_server, "/flags/fr/fr.gif")[1]["etag"] != headers["etag"]


def test_head_has_headers_but_no_body(flag_server: Server) -> None:
    """HEAD answers GET's headers, no body, and the connection stays usable."""
    conn = connect(flag_server)
    try:
        status, headers, body = fetch(conn, "/flags/cn/cn.gif", "HEAD")
        assert (status, body) == (200, b"")
        assert int(headers["content-length"]) == len(flag_gif("CN"))
        assert fetch(conn, "/flags/cn/cn.gif")[2] == flag_gif("CN")
        status, headers, body = fetch(conn, "/bytes/134217728", "HEAD")
        assert (status, headers["content-length"], body) == (200, "134217728", b"")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=100-", 100, None),
        ("bytes=-10", -10, None),
        ("bytes=5-5", 5, 6),
        ("bytes=7-999999", 7, None),
        ("bytes=-999999", 0, None),
    ],
)
def test_single_ranges(flag_server: Server, spec: str, start: int, stop: int | None) -> None:
    """Range a-b, a- and -n answer 206 with the right slice and Content-Range."""
    gif = flag_gif("BR")
    status, headers, body = get(flag_server, "/flags/br/br.gif", Range=spec)
    expected = gif[start:stop]
    first = len(gif) + start if start < 0 else start
    first = max(first, 0)
    assert status == 206
    assert body == expected
    assert headers["content-range"] == f"bytes {first}-{first + len(body) - 1}/{len(gif)}"
    assert headers["content-length"] == str(len(body))


@pytest.mark.parametrize("spec", ["bytes=999999-", "bytes=-0", "bytes=999999-1000000"])
def test_unsatisfiable_range_is_416(flag_server: Server, spec: str) -> None:
    """A range past the end answers 416 with Content-Range: bytes */size."""
    status, headers, _ = get(flag_server, "/flags/br/br.gif", Range=spec)
    assert status == 416
    assert headers["content-range"] == f"bytes */{len(flag_gif('BR'))}"


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=x-"])
def test_ignored_ranges_send_everything(flag_server: Server, spec: str) -> None:
    """Multiple, foreign-unit or invalid ranges are ignored: 200 with the whole body."""
    status, _, body = get(flag_server, "/flags/br/br.gif", Range=spec)
    assert (status, body) == (200, flag_gif("BR"))


def test_if_range_and_if_none_match(flag_server: Server) -> None:
    """If-Range with a stale tag gets 200, a current one 206; If-None-Match gets 304."""
    etag = get(flag_server, "/flags/de/de.gif")[1]["etag"]
    assert get(flag_server, "/flags/de/de.gif", Range="bytes=0-0", If_Range='"old"')[0] == 200
    assert get(flag_server, "/flags/de/de.gif", Range="bytes=0-0", If_Range=etag)[0] == 206
    conn = connect(flag_server)
    try:
        status, headers, body = fetch(conn, "/flags/de/de.gif", headers={"If-None-Match": etag})
        assert (status, headers["etag"], body) == (304, etag, b"")
        assert fetch(conn, "/flags/de/metadata.json")[0] == 200
    finally:
        conn.close()


def test_if_modified_since(flag_server: Server) -> None:
    """If-Modified-Since at or after Last-Modified gets 304; before it, or unreadable, 200;
    If-None-Match, when present, decides alone (RFC 9110)."""
    headers = get(flag_server, "/flags/de/de.gif")[1]
    last = headers["last-modified"]
    assert get(flag_server, "/flags/de/de.gif", If_Modified_Since=last)[0] == 304
    later = "Fri, 01 Jan 2100 00:00:00 GMT"
    assert get(flag_server, "/flags/de/de.gif", If_Modified_Since=later)[0] == 304
    earlier = "Thu, 01 Jan 1970 00:00:00 GMT"
    assert get(flag_server, "/flags/de/de.gif", If_Modified_Since=earlier)[0] == 200
    assert get(flag_server, "/flags/de/de.gif", If_Modified_Since="yesterday")[0] == 200
    stale = {"If_None_Match": '"other"', "If_Modified_Since": later}
    assert get(flag_server, "/flags/de/de.gif", **stale)[0] == 200


def test_bytes_route_streams_128_mib(flag_server: Server) -> None:
    """/bytes/128MiB arrives complete and correct, streamed chunk by chunk."""
    n = 128 * 1024 * 1024
    expected = hashlib.sha256()
    for chunk in bytes_chunks(n, 0, n):
        expected.update(chunk)
    conn = connect(flag_server)
    try:
        conn.request("GET", f"/bytes/{n}")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("content-length") == str(n)
        got, length = hashlib.sha256(), 0
        while chunk := resp.read(1 << 20):
            got.update(chunk)
            length += len(chunk)
        assert length == n
        assert got.digest() == expected.digest()
        assert fetch(conn, "/bytes/3")[2] == b"".join(bytes_chunks(3, 0, 3))
    finally:
        conn.close()


def test_bytes_are_position_dependent(flag_server: Server) -> None:
    """Each 4 KiB block of /bytes/n differs, so a resume at a wrong offset is detectable."""
    n = 300_000
    body = get(flag_server, f"/bytes/{n}")[2]
    assert len(body) == n
    blocks = {body[i : i + 4096] for i in range(0, n - 4096, 4096)}
    assert len(blocks) == len(range(0, n - 4096, 4096))
    status, _, part = get(flag_server, f"/bytes/{n}", Range="bytes=123457-200000")
    assert (status, part) == (206, body[123457:200001])


def test_truncate_route_cuts_and_then_resumes(flag_server: Server) -> None:
    """/truncate/n stops halfway and closes; a ranged request for the rest succeeds."""
    n = 200_000
    conn = connect(flag_server)
    try:
        conn.request("GET", f"/truncate/{n}")
        resp = conn.getresponse()
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        have = info.value.partial
    finally:
        conn.close()
    assert len(have) == n // 2
    status, _, rest = get(flag_server, f"/truncate/{n}", Range=f"bytes={len(have)}-")
    assert status == 206
    assert have + rest == get(flag_server, f"/bytes/{n}")[2]


def test_status_and_reset_routes(flag_server: Server) -> None:
    """/status/{code} answers that status (with Retry-After on request); /reset resets."""
    status, headers, body = get(flag_server, "/status/503?retry-after=2")
    assert (status, headers["retry-after"], body) == (503, "2", b"503 Service Unavailable\n")
    assert get(flag_server, "/status/429")[0] == 429
    with pytest.raises(ConnectionResetError):
        get(flag_server, "/reset")


# --------------------------------------------------------------------------- connections


def test_keep_alive_reuses_the_connection(flag_server: Server) -> None:
    """Two requests travel on one TCP connection under HTTP/1.1."""
    conn = connect(flag_server)
    try:
        assert fetch(conn, "/flags/br/br.gif")[0] == 200
        first = conn.sock
        assert fetch(conn, "/flags/jp/jp.gif")[0] == 200
        assert conn.sock is first
    finally:
        conn.close()


def test_connection_close_and_http_1_0(flag_server: Server) -> None:
    """Connection: close and plain HTTP/1.0 close after one answer; 1.0 keep-alive does not."""
    closed = raw(flag_server, b"GET /bytes/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert closed.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in closed
    closed = raw(flag_server, b"GET /bytes/5 HTTP/1.0\r\n\r\n")
    assert closed.startswith(b"HTTP/1.1 200 ")
    with socket.create_connection((flag_server.host, flag_server.port), timeout=10) as sock:
        request = b"GET /bytes/5 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        for _ in range(2):
            sock.sendall(request)
            reply = sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 200 ")
            assert b"\r\nConnection: keep-alive\r\n" in reply


def test_pipelined_requests_are_answered_in_order(flag_server: Server) -> None:
    """Several requests sent in one write come back in order, HEAD and 404 included."""
    requests = (
        b"GET /flags/br/metadata.json HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /flags/aa/aa.gif HTTP/1.1\r\nHost: x\r\n\r\n"
        b"HEAD /flags/fr/metadata.json HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /flags/fr/metadata.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    answers = split_responses(raw(flag_server, requests), ["GET", "GET", "HEAD", "GET", "GET"])
    assert [a[0] for a in answers] == [200, 404, 200, 200, 200]
    assert answers[0][2] == flag_metadata("BR")
    assert answers[2][2] == b""
    assert answers[3][2] == b"".join(bytes_chunks(100_000, 0, 100_000))
    assert answers[4][2] == flag_metadata("FR")


def test_other_methods_are_405(flag_server: Server) -> None:
    """POST, PUT, DELETE get 405 with an Allow header."""
    for method in ("POST", "PUT", "DELETE"):
        status, headers, _ = get(flag_server, "/flags/br/br.gif", method)
        assert (status, headers["allow"]) == (405, "GET, HEAD")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /bytes/1 HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET bytes/1 HTTP/1.1\r\n\r\n", 400),
        (b"GET /bytes/1 HTTX/1.1\r\n\r\n", 400),
        (b"GET /bytes/1 HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET /bytes/1 HTTP/1.1\r\nHost: x\r\n folded: value\r\n\r\n", 400),
        (b"GET /bytes/1 HTTP/1.1\r\nContent-Length: nope\r\n\r\n", 400),
        (b"GET /bytes/1 HTTP/2.0\r\n\r\n", 505),
    ],
)
def test_malformed_requests_get_an_error_and_close(
    flag_server: Server, request_bytes: bytes, status: int
) -> None:
    """A malformed request line or header answers 400 (505 for HTTP/2) and closes."""
    data = raw(flag_server, request_bytes + b"GET /bytes/1 HTTP/1.1\r\n\r\n")
    assert data.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close\r\n" in data
    assert data.count(b"HTTP/1.1 ") == 1  # the request behind it is not answered


def test_oversized_header_block_is_431(flag_server: Server) -> None:
    """A header block over 64 KiB answers 431 and closes."""
    data = raw(flag_server, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 431 ")


def test_request_with_body_is_answered_then_closed(flag_server: Server) -> None:
    """A request announcing a body is answered, then the connection closes."""
    data = raw(flag_server, b"GET /bytes/2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in data


# --------------------------------------------------------------------------- data directory


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A server over a small directory, with a secret file and a symlink just outside it."""
    base = tmp_path_factory.mktemp("tree")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "hello.txt").write_bytes(b"hello world\n")
    (root / "sub" / "data.bin").write_bytes(bytes(range(256)) * 1000)
    (base / "secret.txt").write_bytes(b"secret\n")
    (root / "inside-link.txt").symlink_to(root / "hello.txt")
    (root / "outside-link.txt").symlink_to(base / "secret.txt")
    (root / "outside-dir").symlink_to(base)
    with Server(data_dir=root) as srv:
        yield srv, root


def test_data_dir_serves_files(tree: tuple[Server, Path]) -> None:
    """Files under the data directory are served with ranges and mtime Last-Modified."""
    server, root = tree
    status, headers, body = get(server, "/hello.txt")
    assert (status, body) == (200, b"hello world\n")
    assert headers["content-type"].startswith("text/plain")
    mtime = (root / "hello.txt").stat().st_mtime
    assert headers["last-modified"] == time.strftime(
        "%a, %d %b %Y %H:%M:%S GMT", time.gmtime(mtime)
    )
    data = (root / "sub" / "data.bin").read_bytes()
    assert get(server, "/sub/data.bin")[2] == data
    assert get(server, "/sub/data.bin", Range="bytes=1000-")[2] == data[1000:]
    assert get(server, "/inside-link.txt")[2] == b"hello world\n"
    assert get(server, "/flags/br/br.gif")[0] == 404


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/sub/%2E%2E/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/hello.txt%00",
        "/outside-link.txt",
        "/outside-dir/secret.txt",
        "/%2e%2e%5csecret.txt",
    ],
)
def test_data_dir_refuses_escapes(tree: tuple[Server, Path], path: str) -> None:
    """No path, encoded or through a symlink, reaches a file outside the data directory."""
    status, _, body = get(tree[0], path)
    assert status in (403, 404)
    assert b"secret" not in body


@pytest.mark.parametrize("path", ["/", "/sub", "/sub/", "/missing.txt", "//etc/passwd"])
def test_data_dir_directories_and_missing_are_404(tree: tuple[Server, Path], path: str) -> None:
    """Directories and missing files answer 404."""
    assert get(tree[0], path)[0] == 404


def test_data_dir_must_exist(tmp_path: Path) -> None:
    """A missing data directory is refused when the Server is built."""
    with pytest.raises(NotADirectoryError):
        Server(data_dir=tmp_path / "missing")


# --------------------------------------------------------------------------- faults


def test_delay_server_adds_the_delay() -> None:
    """Faults(delay=(0.5, 0.5)) holds every answer about half a second."""
    with Server(faults=Faults(delay=(0.5, 0.5))) as server:
        start = time.perf_counter()
        assert get(server, "/flags/br/br.gif")[2] == flag_gif("BR")
        assert 0.5 <= time.perf_counter() - start < 2.0


def test_delays_do_not_block_other_connections() -> None:
    """Delayed answers wait concurrently: 8 parallel requests take about one delay."""
    with Server(faults=Faults(delay=(0.4, 0.4))) as server:
        results: list[int] = []

        def one() -> None:
            results.append(get(server, "/flags/jp/jp.gif")[0])

        threads = [threading.Thread(target=one) for _ in range(8)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200] * 8
        assert time.perf_counter() - start < 1.5


def test_error_server_fails_about_a_quarter() -> None:
    """The ERROR server with a fixed seed mixes 200 and 5xx, about 25% errors."""
    faults = Faults(error_rate=0.25, delay=(0.001, 0.001), delay_rate=0.5, seed=7)
    with Server(faults=faults) as server:
        conn = connect(server)
        statuses = [fetch(conn, "/flags/br/br.gif")[0] for _ in range(200)]
        conn.close()
    errors = [s for s in statuses if s != 200]
    assert set(errors) <= {500, 502, 503}
    assert len(set(errors)) > 1
    assert 30 <= len(errors) <= 70
    assert statuses.count(200) == 200 - len(errors)
    with Server(faults=faults) as server:
        assert [get(server, "/flags/br/br.gif")[0] for _ in range(20)] == statuses[:20]


def test_faults_draw_rates() -> None:
    """Faults.draw delays about delay_rate of requests and fails about error_rate."""
    faults = Faults(error_rate=0.25, delay=(0.2, 0.8), delay_rate=0.5, seed=1)
    rng = faults.rng()
    draws = [faults.draw(rng) for _ in range(4000)]
    delayed = [d for d, _ in draws if d > 0]
    failed = [s for _, s in draws if s is not None]
    assert 0.45 < len(delayed) / 4000 < 0.55
    assert 0.22 < len(failed) / 4000 < 0.28
    assert all(0.2 <= d <= 0.8 for d in delayed)
    assert not Faults().active
    assert Faults(error_rate=0.1).active


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay": (-1.0, 1.0)},
        {"delay": (2.0, 1.0)},
        {"delay": (0.0, float("inf"))},
        {"error_rate": 1.5},
        {"delay_rate": -0.1},
        {"error_rate": float("nan")},
    ],
)
def test_faults_are_validated(kwargs: dict[str, object]) -> None:
    """Impossible delays and rates are refused when Faults is built."""
    with pytest.raises(ValueError, match="must"):
        Faults(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"), [("0.5", (0.5, 0.5)), ("0.2:0.8", (0.2, 0.8)), (" 1 ", (1.0, 1.0))]
)
def test_parse_delay_accepts(text: str, expected: tuple[float, float]) -> None:
    """parse_delay reads a fixed delay or a low:high range."""
    assert parse_delay(text) == expected


@pytest.mark.parametrize("text", ["", "x", "-1", "0.8:0.2", "1:2:3", "0.1:", "nan", "inf"])
def test_parse_delay_rejects(text: str) -> None:
    """parse_delay refuses malformed, negative, reversed and non-finite delays."""
    with pytest.raises(ValueError, match="delay"):
        parse_delay(text)


# --------------------------------------------------------------------------- life cycle


def test_server_runs_inside_a_running_event_loop() -> None:
    """A Server built and used from async code runs on its own loop and thread."""

    async def main() -> bytes:
        with Server() as server:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(
                b"GET /flags/br/metadata.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

    data = asyncio.run(main())
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(flag_metadata("BR"))


def test_stop_closes_keep_alive_connections_and_is_idempotent() -> None:
    """stop() closes idle and busy connections, refuses new ones, and can be repeated."""
    server = Server().start()
    idle = connect(server)
    assert fetch(idle, "/flags/br/br.gif")[0] == 200
    busy = socket.create_connection((server.host, server.port), timeout=10)
    # Never read: the writes back up.
    busy.sendall(b"GET /bytes/1073741824 HTTP/1.1\r\nHost: x\r\n\r\n")
    busy.recv(100)
    start = time.perf_counter()
    server.stop()
    server.stop()
    assert time.perf_counter() - start < 5
    assert idle.sock is not None
    assert idle.sock.recv(10) == b""
    idle.close()
    busy.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=2).close()
    with pytest.raises(RuntimeError):
        server.start()


def test_bind_errors_and_unstarted_properties() -> None:
    """A taken port raises OSError from start(); an unstarted server has no URL."""
    with Server() as first:
        second = Server(port=first.port)
        with pytest.raises(OSError, match="in use"):
            second.start()
        second.stop()
    with pytest.raises(RuntimeError):
        _ = Server().url


def test_ipv6_loopback() -> None:
    """The server binds [::1] and brackets it in its URL."""
    try:
        server = Server("::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server:
        assert server.url == f"http://[::1]:{server.port}"
        assert server.flags_url == server.url + "/flags"
        with urllib.request.urlopen(server.flags_url + "/jp/jp.gif", timeout=10) as resp:
            assert resp.read() == flag_gif("JP")


def test_serve_in_the_foreground_until_sigterm() -> None:
    """serve() reports its URL, serves, and returns cleanly on SIGTERM."""
    code = (
        "from manyget._server import serve;"
        "serve('127.0.0.1', 0, on_ready=lambda url: print(url, flush=True));"
        "print('bye', flush=True)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
            with urllib.request.urlopen(url + "/flags/br/metadata.json", timeout=10) as resp:
                assert resp.read() == flag_metadata("BR")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert proc.stdout.read() == "bye\n"
        finally:
            if proc.poll() is None:
                proc.kill()


def test_serve_raises_bind_errors() -> None:
    """serve() on a taken port raises OSError instead of hanging."""
    with Server() as taken, pytest.raises(OSError, match="in use"):
        serve(taken.host, taken.port)


def test_sha256sums_lists_every_flag(flag_server: Server) -> None:
    """/SHA256SUMS is in the sha256sum format and matches every flag and metadata file."""
    status, headers, body = get(flag_server, "/SHA256SUMS")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    lines = body.decode().splitlines()
    assert len(lines) == 2 * 194
    sums = dict(reversed(line.split("  ", 1)) for line in lines)
    assert sums["flags/br/br.gif"] == hashlib.sha256(flag_gif("BR")).hexdigest()
    assert sums["flags/br/metadata.json"] == hashlib.sha256(get(
        flag_server, "/flags/br/metadata.json")[2]).hexdigest()  # fmt: skip


def test_sha256sums_of_a_data_folder(tmp_path: Path) -> None:
    """For --data, the sums of every file served (hidden ones left out), hashed off the
    event loop; a SHA256SUMS file of the folder itself wins."""
    (tmp_path / "a.txt").write_bytes(b"alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"beta" * 1000)
    (tmp_path / ".secret").write_text("token")
    with Server(data_dir=tmp_path) as srv:
        deadline = time.monotonic() + 10
        while (answer := get(srv, "/SHA256SUMS"))[0] == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        status, _, body = answer
        assert status == 200
        assert body.decode().splitlines() == [
            f"{hashlib.sha256(b'alpha').hexdigest()}  a.txt",
            f"{hashlib.sha256(b'beta' * 1000).hexdigest()}  sub/b.bin",
        ]
    (tmp_path / "SHA256SUMS").write_text("own file\n")
    with Server(data_dir=tmp_path) as srv:
        assert get(srv, "/SHA256SUMS")[2] == b"own file\n"
