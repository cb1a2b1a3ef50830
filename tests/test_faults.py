"""Fault behaviour on every engine: retries, Retry-After, truncation, resets, reruns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import manyget
from manyget import RetryPolicy, Status
from manyget._server import POP20_CC, Server, flag_gif
from manyget._server._resources import bytes_chunks

pytestmark = pytest.mark.timeout(120)

FAST = RetryPolicy(retries=2, backoff=0.01, max_wait=2.0)


def served(size: int) -> bytes:
    return b"".join(bytes_chunks(size, 0, size))


def test_5xx_retried_then_reported(server: Server, engine: str, tmp_path: Path) -> None:
    """A persistent 503 is tried 1 + retries times, then reported with its history; no file."""
    report = manyget.download([f"{server.url}/status/503"], tmp_path, engine=engine, retries=FAST)
    (result,) = report.results
    assert result.status is Status.ERROR
    assert result.http_status == 503
    assert result.attempts == 3
    assert [a.http_status for a in result.history] == [503, 503, 503]
    assert result.error == "HTTP 503 Service Unavailable"
    assert list(tmp_path.iterdir()) == []


def test_other_4xx_not_retried(server: Server, engine: str, tmp_path: Path) -> None:
    """403 and 404 are final on the first attempt."""
    urls = [f"{server.url}/status/403", f"{server.url}/status/404"]
    report = manyget.download(urls, tmp_path, engine=engine, retries=FAST)
    assert sorted(r.attempts for r in report.results) == [1, 1]
    assert report.counts == {Status.ERROR: 1, Status.NOT_FOUND: 1}


def test_retry_after_is_waited(server: Server, engine: str, tmp_path: Path) -> None:
    """A 503 with Retry-After: 1 is retried after at least one second."""
    policy = RetryPolicy(retries=1, backoff=0.0, max_wait=5.0)
    start = time.monotonic()
    report = manyget.download(
        [f"{server.url}/status/503?retry-after=1"], tmp_path, engine=engine, retries=policy
    )
    assert time.monotonic() - start >= 1.0
    (result,) = report.results
    assert result.attempts == 2
    assert result.history[0].retry_after == 1.0


def test_retry_after_capped_by_max_wait(server: Server, engine: str, tmp_path: Path) -> None:
    """A Retry-After of an hour waits max_wait, no less (it was read) and no longer."""
    policy = RetryPolicy(retries=1, max_wait=0.6)
    start = time.monotonic()
    report = manyget.download(
        [f"{server.url}/status/429?retry-after=3600"], tmp_path, engine=engine, retries=policy
    )
    elapsed = time.monotonic() - start
    assert report.results[0].attempts == 2
    # Without Retry-After the backoff would be a random wait under 0.5 s.
    assert 0.6 <= elapsed < 10


def test_truncated_body_resumes_on_retry(server: Server, engine: str, tmp_path: Path) -> None:
    """A body cut short is a read failure; the retry asks for the rest and completes it."""
    size = 100_000
    report = manyget.download(
        [f"{server.url}/truncate/{size}"], tmp_path, engine=engine, retries=FAST
    )
    (result,) = report.results
    assert result.status is Status.OK
    assert [(a.kind, a.http_status) for a in result.history] == [("read", 200), ("ok", 206)]
    assert (tmp_path / str(size)).read_bytes() == served(size)
    assert os.listdir(tmp_path) == [str(size)]


def test_truncated_body_kept_for_next_run(server: Server, engine: str, tmp_path: Path) -> None:
    """Without retries a cut body stays hidden with its sidecar; the next run resumes it."""
    size = 3_000_000
    url = f"{server.url}/truncate/{size}"
    (first,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert first.status is Status.ERROR
    assert first.history[0].kind == "read"
    assert sorted(os.listdir(tmp_path)) == [f".{size}.part", f".{size}.part.json"]
    assert (tmp_path / f".{size}.part").stat().st_size == size // 2
    assert (first.path, first.received, first.kept) == (None, size // 2, size // 2)
    report = manyget.download([url], tmp_path, engine=engine, retries=0)
    (second,) = report.results
    assert second.status is Status.OK
    assert second.http_status == 206
    # The file's size and the bytes that crossed the wire in this run are kept apart.
    assert (second.bytes, second.received) == (size, size - size // 2)
    assert report.bytes == size - size // 2
    assert (tmp_path / str(size)).read_bytes() == served(size)
    assert os.listdir(tmp_path) == [str(size)]


def test_reset_connection_is_retried(server: Server, engine: str, tmp_path: Path) -> None:
    """A connection reset before any response counts as a read failure and is retried."""
    report = manyget.download([f"{server.url}/reset"], tmp_path, engine=engine, retries=FAST)
    (result,) = report.results
    assert result.status is Status.ERROR
    assert result.attempts == 3
    assert {a.kind for a in result.history} == {"read"}


def test_refused_not_retried_unless_asked(engine: str, tmp_path: Path) -> None:
    """A refused connection is final by default and retried with refused=True."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x"
    (once,) = manyget.download([url], tmp_path, engine=engine, retries=FAST).results
    assert once.attempts == 1
    assert once.history[0].kind == "refused"
    policy = RetryPolicy(retries=2, backoff=0.01, refused=True)
    (again,) = manyget.download([url], tmp_path, engine=engine, retries=policy).results
    assert again.attempts == 3


def test_rerun_skips_complete_files(server: Server, engine: str, tmp_path: Path) -> None:
    """A rerun reports complete files SKIPPED without touching them; --overwrite refetches."""
    urls = [f"{server.flags_url}/{cc.lower()}/{cc.lower()}.gif" for cc in POP20_CC]
    first = manyget.download(urls, tmp_path, engine=engine)
    assert first.counts == {Status.OK: 20}
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    (tmp_path / "br.gif").unlink()
    second = manyget.download(urls, tmp_path, engine=engine)
    assert second.counts == {Status.SKIPPED: 19, Status.OK: 1}
    assert all(r.attempts == 0 for r in second.results if r.status is Status.SKIPPED)
    assert (tmp_path / "br.gif").read_bytes() == flag_gif("BR")
    for name, stamp in stamps.items():
        if name != "br.gif":
            assert (tmp_path / name).stat().st_mtime_ns == stamp
    third = manyget.download(urls, tmp_path, engine=engine, overwrite=True)
    assert third.counts == {Status.OK: 20}
    assert second.ok


def test_large_body_exact_bytes(server: Server, engine: str, tmp_path: Path) -> None:
    """A 5 MB body is stored byte for byte as served."""
    size = 5_000_003
    report = manyget.download([f"{server.url}/bytes/{size}"], tmp_path, engine=engine)
    assert report.counts == {Status.OK: 1}
    assert (tmp_path / str(size)).read_bytes() == served(size)


def test_cli_json_has_history_and_exit_status(server: Server, tmp_path: Path) -> None:
    """`get --json` records each attempt; a rerun of complete files exits 0 as skipped."""
    url = f"{server.flags_url}/jp/jp.gif"
    cmd = [sys.executable, "-m", "manyget", "get", url, "-d", str(tmp_path), "--json"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert first.returncode == 0
    assert second.returncode == 0
    record = json.loads(second.stdout)
    assert record["status"] == "skipped"
    assert json.loads(first.stdout)["history"] == [
        {"http_status": 200, "kind": "ok", "error": None}
    ]
    assert "1 skipped" in second.stderr
    flaky = [
        sys.executable,
        "-m",
        "manyget",
        "get",
        f"{server.url}/status/502",
        "-d",
        str(tmp_path),
        "--json",
        "--retries",
        "1",
        "--retry-max-wait",
        "0.01",
    ]
    failed = subprocess.run(flaky, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 1
    assert len(json.loads(failed.stdout)["history"]) == 2
    assert os.listdir(tmp_path) == ["jp.gif"]


def test_max_size_cuts_a_long_body(server: Server, engine: str, tmp_path: Path) -> None:
    """A body longer than max_size is stopped while streaming and leaves nothing behind."""
    report = manyget.download(
        [f"{server.url}/bytes/3000000", f"{server.url}/bytes/1000"],
        tmp_path,
        engine=engine,
        max_size=2_000_000,
    )
    by_url = {r.url.rsplit("/", 1)[-1]: r for r in report.results}
    assert by_url["3000000"].status is Status.ERROR
    assert "max-size" in (by_url["3000000"].error or "")
    assert by_url["3000000"].attempts == 1
    assert by_url["1000"].status is Status.OK
    assert sorted(os.listdir(tmp_path)) == ["1000"]


# --------------------------------------------------------------------------- /faults/ routes


def etag_of(url: str) -> str:
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(resp.headers["ETag"])


def plant_partial(dest: Path, name: str, url: str, data: bytes, etag: str) -> None:
    """Leave a partial file and sidecar as an interrupted earlier run would."""
    (dest / f".{name}.part").write_bytes(data)
    sidecar = {"url": url, "etag": etag, "last_modified": None, "length": None}
    (dest / f".{name}.part.json").write_text(json.dumps(sidecar))


def test_flaky_503_then_success(server: Server, engine: str, tmp_path: Path) -> None:
    """Two 503s then 200: the third attempt completes, the history shows all three."""
    url = f"{server.url}/faults/flaky/f503-{engine}-{tmp_path.name}/2/5000"
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=FAST).results
    assert result.status is Status.OK
    assert [a.http_status for a in result.history] == [503, 503, 200]
    assert (tmp_path / "5000").read_bytes() == served(5000)


def test_flaky_reset_then_success(server: Server, engine: str, tmp_path: Path) -> None:
    """A reset before any response is retried as a read failure, then succeeds.

    (aiohttp itself retries a GET once when a reused connection is reset, so the
    asyncio engine may show only the successful attempt.)"""
    url = f"{server.url}/faults/flaky/frst-{engine}-{tmp_path.name}/1/5000?reset=1"
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=FAST).results
    assert result.status is Status.OK
    kinds = [a.kind for a in result.history]
    assert kinds == ["read", "ok"] or (engine == "asyncio" and kinds == ["ok"])
    assert (tmp_path / "5000").read_bytes() == served(5000)


def test_redirect_chain_keeps_original_name(server: Server, engine: str, tmp_path: Path) -> None:
    """Three redirects are followed; the file is named after the URL asked for."""
    url = f"{server.url}/faults/redirect/3/4096?relative=1"
    (result,) = manyget.download([url], tmp_path, engine=engine).results
    assert result.status is Status.OK
    assert (tmp_path / "4096").read_bytes() == served(4096)


def test_redirect_loop_is_final(server: Server, engine: str, tmp_path: Path) -> None:
    """A redirect loop fails once, is not retried, and saves nothing."""
    url = f"{server.url}/faults/redirect-loop"
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=FAST).results
    assert result.status is Status.ERROR
    assert result.attempts == 1
    assert os.listdir(tmp_path) == []


def test_redirect_to_file_scheme_refused(server: Server, engine: str, tmp_path: Path) -> None:
    """A redirect to file:// is refused: only http and https are followed."""
    url = f"{server.url}/faults/redirect-to?url=file:///etc/passwd"
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=FAST).results
    assert result.status is Status.ERROR
    assert result.attempts == 1
    assert os.listdir(tmp_path) == []


def test_reset_mid_body_resumes_next_run(server: Server, engine: str, tmp_path: Path) -> None:
    """A reset mid-body keeps the bytes that arrived; the next run finishes the file."""
    size = 3_000_000
    url = f"{server.url}/faults/reset-mid/{size}"
    (first,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert first.status is Status.ERROR
    assert first.history[0].kind == "read"
    assert not (tmp_path / str(size)).exists()
    (second,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert second.status is Status.OK
    assert (tmp_path / str(size)).read_bytes() == served(size)
    assert os.listdir(tmp_path) == [str(size)]


def test_ignored_range_restarts_never_appends(server: Server, engine: str, tmp_path: Path) -> None:
    """A server that answers 200 to a Range request gets the file rewritten from byte 0."""
    size = 200_000
    url = f"{server.url}/faults/ignore-range/{size}"
    plant_partial(tmp_path, str(size), url, served(size)[:50_000], etag_of(url))
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert result.status is Status.OK
    assert result.http_status == 200
    assert (tmp_path / str(size)).read_bytes() == served(size)


def test_wrong_content_range_restarts(server: Server, engine: str, tmp_path: Path) -> None:
    """A 206 whose Content-Range does not start at our offset is dropped and refetched."""
    size = 200_000
    url = f"{server.url}/faults/bad-content-range/{size}"
    plant_partial(tmp_path, str(size), url, served(size)[:50_000], etag_of(url))
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=FAST).results
    assert result.status is Status.OK
    assert [a.kind for a in result.history] == ["read", "ok"]
    assert (tmp_path / str(size)).read_bytes() == served(size)


def test_changed_etag_restarts(server: Server, engine: str, tmp_path: Path) -> None:
    """A partial file from an older version is not continued with newer bytes."""
    size = 100_000
    url = f"{server.url}/faults/etag-changes/et-{engine}-{tmp_path.name}/{size}"
    plant_partial(tmp_path, str(size), url, b"old version " * 3000, '"an-old-version"')
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert result.status is Status.OK
    data = (tmp_path / str(size)).read_bytes()
    assert len(data) == size
    assert result.http_status == 200
    versions = [b"".join(bytes_chunks(size, 0, size, salt=i)) for i in range(4)]
    assert data in versions


def test_gzip_stored_as_served(server: Server, engine: str, tmp_path: Path) -> None:
    """A gzip body is stored byte for byte, never decompressed (no decompression bomb)."""
    from manyget._server._fault_routes import gzip_body

    size = 50_000_000
    (result,) = manyget.download(
        [f"{server.url}/faults/gzip/{size}"], tmp_path, engine=engine
    ).results
    assert result.status is Status.OK
    assert (tmp_path / str(size)).read_bytes() == gzip_body(size)


@pytest.mark.parametrize("route", ["bad-status-line", "bad-chunked", "garbage"])
def test_malformed_responses_fail_cleanly(
    server: Server, engine: str, tmp_path: Path, route: str
) -> None:
    """Malformed responses are errors, never saved."""
    url = f"{server.url}/faults/raw/{route}"
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=FAST).results
    assert result.status is Status.ERROR
    assert result.error
    assert [p for p in os.listdir(tmp_path) if not p.startswith(".")] == []


def test_slow_drip_is_cut_off(server: Server, engine: str, tmp_path: Path) -> None:
    """A server dripping a byte every 3 s is cut off by a 1 s timeout."""
    url = f"{server.url}/faults/drip/1000?interval=3"
    start = time.monotonic()
    (result,) = manyget.download([url], tmp_path, engine=engine, timeout=1.0, retries=0).results
    assert result.status is Status.ERROR
    assert result.history[0].kind == "read"
    assert time.monotonic() - start < 15


def test_short_body_against_content_length(server: Server, engine: str, tmp_path: Path) -> None:
    """A body shorter than its Content-Length is a read failure, never published."""
    url = f"{server.url}/faults/wrong-length/1000?claim=2000"
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert result.status is Status.ERROR
    assert result.history[0].kind == "read"
    assert not (tmp_path / "1000").exists()


def test_name_ignores_content_disposition(server: Server, engine: str, tmp_path: Path) -> None:
    """A hostile Content-Disposition does not choose the file name: the URL path does."""
    url = f"{server.url}/faults/disposition?name=../../etc/passwd"
    (result,) = manyget.download([url], tmp_path, engine=engine).results
    assert result.status is Status.OK
    assert os.listdir(tmp_path) == ["disposition"]


def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_checksum_gates_publication(server: Server, engine: str, tmp_path: Path) -> None:
    """With URL<TAB>sha256=..., a matching body is published and a wrong one never is."""
    good = f"{server.url}/bytes/70000\tsha256={sha256_hex(served(70000))}"
    bad = f"{server.url}/bytes/80000\tsha256={'0' * 64}"
    report = manyget.download([good, bad], tmp_path, engine=engine, retries=FAST)
    by_size = {r.url.rsplit("/", 1)[-1]: r for r in report.results}
    assert by_size["70000"].status is Status.OK
    assert by_size["80000"].status is Status.ERROR
    assert "sha256 mismatch" in (by_size["80000"].error or "")
    assert sorted(os.listdir(tmp_path)) == ["70000"]


def test_checksum_checks_files_already_there(server: Server, engine: str, tmp_path: Path) -> None:
    """A rerun with a checksum re-downloads a file whose bytes do not match."""
    (tmp_path / "70000").write_bytes(b"tampered")
    entry = f"{server.url}/bytes/70000\tsha256={sha256_hex(served(70000))}"
    (result,) = manyget.download([entry], tmp_path, engine=engine).results
    assert result.status is Status.OK
    assert (tmp_path / "70000").read_bytes() == served(70000)
    (again,) = manyget.download([entry], tmp_path, engine=engine).results
    assert again.status is Status.SKIPPED


def test_list_file_checksums_and_bad_fields(server: Server, tmp_path: Path) -> None:
    """`get -i` reads sha256 fields; a malformed field is reported with its line number."""
    listing = tmp_path / "list.tsv"
    listing.write_text(
        f"{server.url}/bytes/1000\tsha256={sha256_hex(served(1000))}\n"
        f"{server.url}/bytes/2000\tmd5=abc\n"
        f"{server.url}/bytes/3000\tsha256=xyz\n"
    )
    dest = tmp_path / "out"
    dest.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-i", str(listing), "-d", str(dest)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "line 2: unknown field 'md5=abc'" in proc.stderr
    assert "line 3: sha256 must be 64 hexadecimal digits" in proc.stderr
    assert os.listdir(dest) == ["1000"]


# --------------------------------------------------------------------------- per-host limits


def test_per_host_limit_holds(server: Server, engine: str, tmp_path: Path) -> None:
    """With per_host=2, eight 0.4 s requests to one host take at least four rounds."""
    urls = [f"{server.url}/faults/stall/1000?seconds=0.4&n={i}" for i in range(8)]
    start = time.monotonic()
    report = manyget.download(urls, tmp_path, engine=engine, concurrency=8, per_host=2)
    elapsed = time.monotonic() - start
    assert report.counts[Status.OK] == 8
    if engine != "sequential":  # sequential is one at a time whatever the limit
        assert elapsed >= 4 * 0.4 - 0.05


def test_flooding_host_does_not_starve_another(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """30 slow URLs of one host listed first do not hold back the one URL of another host."""
    if engine == "sequential":
        pytest.skip("sequential runs the list in order by definition")
    flood = [f"{server.url}/faults/stall/100?seconds=0.3&n={i}" for i in range(30)]
    other = server.url.replace("127.0.0.1", "localhost") + "/bytes/123"
    order = [
        r.url
        for r in manyget.iter_download(
            [*flood, other], tmp_path, engine=engine, concurrency=8, per_host=2
        )
    ]
    assert order.index(other) < 4


def test_drip_below_minimum_speed_is_cut_off(server: Server, engine: str, tmp_path: Path) -> None:
    """A byte every 1.5 s never leaves the connection idle for 2 s, but averages under
    1 B/s over a 2 s window: it is cut off all the same."""
    url = f"{server.url}/faults/drip/1000?interval=1.5"
    start = time.monotonic()
    (result,) = manyget.download([url], tmp_path, engine=engine, timeout=2.0, retries=0).results
    assert result.status is Status.ERROR
    assert result.history[0].kind == "read"
    assert time.monotonic() - start < 15


def test_credentials_masked_in_output(server: Server, tmp_path: Path) -> None:
    """user:password@ never appears in the failure line or the JSON record."""
    url = server.url.replace("http://", "http://alice:s3cret@") + "/status/404"
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", url, "-d", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert "s3cret" not in proc.stderr
    assert "s3cret" not in proc.stdout
    assert "http://***@127.0.0.1:" in proc.stderr
    assert json.loads(proc.stdout)["url"].startswith("http://***@127.0.0.1:")


@pytest.mark.parametrize(
    ("query", "saved"),
    [
        ("name=../../etc/passwd", "passwd"),
        ("name=/tmp/x.sh", "x.sh"),
        ("name=..%5C..%5Cwin.ini", "win.ini"),
        ("name=.bashrc", "bashrc"),
        ("name=CON", "_CON"),
        ("name=%E2%80%AEgpj.exe&star=1", "gpj.exe"),
        ("name=report%0B.pdf", "report_.pdf"),
    ],
)
def test_content_disposition_names_are_made_safe(
    server: Server, engine: str, tmp_path: Path, query: str, saved: str
) -> None:
    """With content_disposition=True, hostile server names land safely inside dest."""
    dest = tmp_path / "dest"
    url = f"{server.url}/faults/disposition?{query}"
    (result,) = manyget.download([url], dest, engine=engine, content_disposition=True).results
    assert result.status is Status.OK
    assert os.listdir(dest) == [saved]
    assert result.path == str(dest / saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest"]


def test_content_disposition_never_clobbers(server: Server, engine: str, tmp_path: Path) -> None:
    """Two responses naming the same file, and a file already there, all survive."""
    (tmp_path / "same.bin").write_bytes(b"mine")
    urls = [f"{server.url}/faults/disposition?name=same.bin&size={n}" for n in (100, 200)]
    report = manyget.download(urls, tmp_path, engine=engine, content_disposition=True)
    assert report.counts == {Status.OK: 2}
    assert (tmp_path / "same.bin").read_bytes() == b"mine"
    saved = sorted(p.name for p in tmp_path.iterdir())
    assert len(saved) == 3
    assert all(name.startswith("same") and name.endswith(".bin") for name in saved)
    assert sorted(os.path.getsize(r.path) for r in report.results if r.path) == [100, 200]


def test_credentials_not_sent_to_another_origin(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """URL credentials go to their own origin only: a redirect elsewhere drops them."""
    import urllib.parse

    same_origin = server.url.replace("http://", "http://alice:s3cret@") + "/faults/headers"
    (own,) = manyget.download([same_origin], tmp_path / "own", engine=engine).results
    assert own.status is Status.OK
    assert "authorization: Basic" in (tmp_path / "own" / "headers").read_text()
    elsewhere = server.url.replace("127.0.0.1", "localhost") + "/faults/headers"
    hop = server.url.replace("http://", "http://alice:s3cret@")
    url = f"{hop}/faults/redirect-to?url={urllib.parse.quote(elsewhere, safe='')}"
    (moved,) = manyget.download([url], tmp_path / "moved", engine=engine).results
    assert moved.status is Status.OK
    received = (tmp_path / "moved" / "redirect-to").read_text()
    assert received.startswith("host: localhost:")
    assert "authorization" not in received.lower()
