"""Request options against real servers on loopback: headers, credentials, cookies, proxies,
TLS options, protocols, compression; and that no credential follows a redirect to
another origin, on every engine.

httpbin (the WSGI app, served by werkzeug on two ports: two origins) echoes what each
request carried, so a downloaded file is the record of what the server received.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import manyget
from conftest import need_program
from manyget import Status

pytestmark = pytest.mark.timeout(120)

SECRET = "s3cr3t-t0ken"


class Httpbin:
    """httpbin on 127.0.0.1 in a background thread."""

    def __init__(self) -> None:
        import logging

        from httpbin import app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[Httpbin, Httpbin]]:
    """Two httpbin servers: two origins (same host, another port)."""
    first, second = Httpbin(), Httpbin()
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def fetch_json(url: str, dest: Path, name: str, **options: Any) -> dict[str, Any]:
    """Download ``url`` as ``name`` and read the JSON httpbin answered with."""
    dest.mkdir(exist_ok=True)
    with manyget.Downloader(dest, **options) as d:
        result = d.submit(url, name=name).result(timeout=60)
    assert result.status is Status.OK, result.error
    data: dict[str, Any] = json.loads((dest / name).read_text())
    return data


CREDENTIALS: dict[str, Any] = {
    "headers": [f"X-Api-Key: {SECRET}", "Accept: application/json", "X-Trace: 1"],
    "user": f"alice:{SECRET}",
    "cookies": f"session={SECRET}",
    "user_agent": "tester/1.0",
    "referer": "http://127.0.0.1/from",
}


def test_headers_and_credentials_reach_the_urls_own_origin(
    origins: tuple[Httpbin, Httpbin], engine: str, tmp_path: Path
) -> None:
    """-H headers, --user, cookies, -A and --referer are all sent to the URL's origin."""
    first, _ = origins
    got = fetch_json(f"{first.url}/headers", tmp_path, "h.json", engine=engine, **CREDENTIALS)
    headers = got["headers"]
    assert headers["X-Api-Key"] == SECRET
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == "tester/1.0"
    assert headers["Referer"] == "http://127.0.0.1/from"
    assert headers["Authorization"].startswith("Basic ")
    assert headers["Cookie"] == f"session={SECRET}"


def test_nothing_secret_follows_a_redirect_to_another_origin(
    origins: tuple[Httpbin, Httpbin], engine: str, tmp_path: Path
) -> None:
    """A redirect to another origin (here another host and port) drops Authorization,
    Cookie and every -H header that may carry a credential; Accept and User-Agent follow.
    To another port of the same host, the cookie follows (cookies are scoped by host,
    RFC 6265) and nothing else secret does."""
    first, second = origins
    elsewhere = second.url.replace("127.0.0.1", "localhost")
    url = f"{first.url}/redirect-to?url={elsewhere}/headers"
    got = fetch_json(url, tmp_path, "h.json", engine=engine, **CREDENTIALS)
    headers = {k.lower(): v for k, v in got["headers"].items()}
    assert SECRET not in json.dumps(got)
    for name in ("authorization", "cookie", "x-api-key", "x-trace"):
        assert name not in headers, name
    assert headers["accept"] == "application/json"
    assert headers["user-agent"] == "tester/1.0"
    url = f"{first.url}/redirect-to?url={second.url}/headers"
    got = fetch_json(url, tmp_path, "port.json", engine=engine, **CREDENTIALS)
    headers = {k.lower(): v for k, v in got["headers"].items()}
    assert headers.get("cookie") == f"session={SECRET}"
    for name in ("authorization", "x-api-key", "x-trace"):
        assert name not in headers, name


def test_credentials_follow_a_redirect_within_the_origin(
    origins: tuple[Httpbin, Httpbin], tmp_path: Path
) -> None:
    """Within one origin a redirect keeps everything, and back from another origin the
    next request has them again (the handle is reused)."""
    first, second = origins
    url = f"{first.url}/redirect-to?url=/headers"
    headers = fetch_json(url, tmp_path, "same.json", **CREDENTIALS)["headers"]
    assert headers["X-Api-Key"] == SECRET
    assert headers["Authorization"].startswith("Basic ")
    with manyget.Downloader(tmp_path, concurrency=1, **CREDENTIALS) as d:
        away = d.submit(f"{first.url}/redirect-to?url={second.url}/headers", name="away.json")
        back = d.submit(f"{first.url}/headers", name="back.json")
        assert away.result(timeout=60).ok
        assert back.result(timeout=60).ok
    assert "X-Api-Key" not in (tmp_path / "away.json").read_text()
    assert json.loads((tmp_path / "back.json").read_text())["headers"]["X-Api-Key"] == SECRET


def test_basic_and_bearer_auth(origins: tuple[Httpbin, Httpbin], tmp_path: Path) -> None:
    """--user answers basic auth; a bearer token goes in a header; without them, 401."""
    first, _ = origins
    report = manyget.download(
        [f"{first.url}/basic-auth/alice/{SECRET}"], tmp_path, user=f"alice:{SECRET}"
    )
    assert report.counts == {Status.OK: 1}
    report = manyget.download(
        [f"{first.url}/bearer"], tmp_path, headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert report.counts == {Status.OK: 1}
    denied = list(manyget.iter_download([f"{first.url}/basic-auth/alice/x"], tmp_path / "no"))
    assert denied[0].http_status == 401


def test_netrc_file(origins: tuple[Httpbin, Httpbin], tmp_path: Path) -> None:
    """--netrc-file: credentials by host, as curl and wget read them."""
    first, _ = origins
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1\nlogin bob\npassword {SECRET}\n")
    netrc.chmod(0o600)
    dest = tmp_path / "d"
    dest.mkdir()
    report = manyget.download([f"{first.url}/basic-auth/bob/{SECRET}"], dest, netrc=netrc)
    assert report.counts == {Status.OK: 1}


def test_cookie_file_and_cookies_set_within_the_run(
    origins: tuple[Httpbin, Httpbin], tmp_path: Path
) -> None:
    """-b FILE reads a Netscape cookie jar; a cookie a server sets is sent back later in
    the same run; a -b name=value cookie never goes to another host."""
    first, _ = origins
    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tfrom_file\tyes\n")
    dest = tmp_path / "d"
    dest.mkdir()
    with manyget.Downloader(dest, concurrency=1, cookies=str(jar)) as d:
        assert d.submit(f"{first.url}/cookies/set?server_set=1", name="set").result().ok
        assert d.submit(f"{first.url}/cookies", name="c.json").result().ok
    cookies = json.loads((dest / "c.json").read_text())["cookies"]
    assert cookies == {"from_file": "yes", "server_set": "1"}
    # Given for 127.0.0.1, a name=value cookie is not sent to "localhost".
    port = first.url.rsplit(":", 1)[1]
    url = f"{first.url}/redirect-to?url=http://localhost:{port}/cookies"
    got = fetch_json(url, dest, "other.json", cookies=f"k={SECRET}")
    assert got["cookies"] == {}


def test_cookie_jar_gathers_every_cookie_of_the_run(
    origins: tuple[Httpbin, Httpbin], engine: str, tmp_path: Path
) -> None:
    """-c FILE: the cookies servers set (and those given) are written at the end, in the
    Netscape format curl and wget read, private to the user, on every engine (worker
    processes send theirs to the parent)."""
    first, _ = origins
    jar = tmp_path / "jar.txt"
    dest = tmp_path / "d"
    dest.mkdir()
    urls = [f"{first.url}/cookies/set?set_{i}=v{i}" for i in range(4)]
    with manyget.Downloader(
        dest, engine=engine, cookies="given=yes", cookie_jar=jar, concurrency=4
    ) as d:
        for i, url in enumerate(urls):
            d.submit(url, name=f"c{i}")
    text = jar.read_text()
    assert text.startswith("# Netscape HTTP Cookie File")
    rows = {tuple(line.split("\t")[5:7]) for line in text.splitlines() if "\t" in line}
    assert rows == {("given", "yes")} | {(f"set_{i}", f"v{i}") for i in range(4)}
    assert jar.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".manyget")] == []
    again = fetch_json(f"{first.url}/cookies", tmp_path / "again", "c.json", cookies=str(jar))
    assert again["cookies"]["set_3"] == "v3"  # what -c wrote, -b reads


def test_per_url_options_from_an_aria2c_list_and_jsonl(
    origins: tuple[Httpbin, Httpbin], engine: str, tmp_path: Path
) -> None:
    """`manyget get -i` takes aria2c's input file as it is (out=, header=, checksum=) and
    JSON lines (name, headers): each URL's own headers reach its origin, never another."""
    first, second = origins
    elsewhere = second.url.replace("127.0.0.1", "localhost")
    listing = tmp_path / "aria2.txt"
    listing.write_text(
        f"{first.url}/headers\n  out=mine.json\n  header=X-Per-Url: {SECRET}\n"
        f"{first.url}/redirect-to?url={elsewhere}/headers\n  out=away.json\n"
        f"  header=X-Per-Url: {SECRET}\n  header=Accept: text/plain\n"
        f"{first.url}/get\n  out=wrong.json\n  checksum=sha-256={'0' * 64}\n"
    )
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text(
        json.dumps({"url": f"{first.url}/headers", "name": "j.json", "headers": {"X-J": "1"}})
        + "\n"
    )
    dest = tmp_path / "d"
    dest.mkdir()
    for source in (listing, jsonl):
        proc = subprocess.run(
            [sys.executable, "-m", "manyget", "get", "-d", str(dest), "--engine", engine,
             "--retries", "0", "-i", str(source)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert "Traceback" not in proc.stderr
    mine = json.loads((dest / "mine.json").read_text())["headers"]
    assert mine["X-Per-Url"] == SECRET
    away = json.loads((dest / "away.json").read_text())["headers"]
    assert "X-Per-Url" not in away
    assert away["Accept"] == "text/plain"  # portable: it follows
    assert not (dest / "wrong.json").exists()  # the checksum did not match
    assert json.loads((dest / "j.json").read_text())["headers"]["X-J"] == "1"
    assert SECRET not in proc.stderr


def test_submit_takes_headers_for_one_url(
    origins: tuple[Httpbin, Httpbin], tmp_path: Path
) -> None:
    """Downloader.submit(url, headers=...): for that URL only."""
    first, _ = origins
    with manyget.Downloader(tmp_path) as d:
        mine = d.submit(f"{first.url}/headers", name="mine.json", headers={"X-One": "1"})
        other = d.submit(f"{first.url}/headers", name="other.json")
        assert mine.result(timeout=60).ok
        assert other.result(timeout=60).ok
    assert json.loads((tmp_path / "mine.json").read_text())["headers"]["X-One"] == "1"
    assert "X-One" not in json.loads((tmp_path / "other.json").read_text())["headers"]


def test_bad_request_options_are_usage_errors(tmp_path: Path) -> None:
    """A header without a colon, a missing cookie file, an unknown HTTP version: one clear
    UsageError each, before anything is fetched."""
    for options, text in [
        ({"headers": ["NoColon"]}, "a header is 'Name: value'"),
        ({"headers": ["X: a\r\nInjected: 1"]}, "bad header"),
        ({"cookies": str(tmp_path / "missing.txt")}, "cookie file"),
        ({"http": "4"}, "http must be one of"),
        ({"tls_min": "1.0"}, "TLS version must be one of"),
        ({"cert": str(tmp_path / "none.pem")}, "client certificate"),
    ]:
        with pytest.raises(manyget.UsageError, match=text):
            manyget.download(["http://127.0.0.1:1/x"], tmp_path, **options)


def test_compressed_stores_the_decoded_body(
    origins: tuple[Httpbin, Httpbin], tmp_path: Path
) -> None:
    """--compressed asks for gzip and saves the decoded JSON; without it the bytes are
    stored as served."""
    first, _ = origins
    got = fetch_json(f"{first.url}/gzip", tmp_path, "g.json", compressed=True)
    assert got["gzipped"] is True
    plain = tmp_path / "plain"
    plain.mkdir()
    report = manyget.download([f"{first.url}/gzip"], plain)
    assert report.counts == {Status.OK: 1}
    assert (plain / "gzip").read_bytes()[:2] == b"\x1f\x8b"  # gzip magic: not decoded


def test_secrets_never_reach_the_output(origins: tuple[Httpbin, Httpbin], tmp_path: Path) -> None:
    """-v, --json and error lines of a run with every kind of credential name none of them."""
    first, second = origins
    urls = [
        f"{first.url}/headers",
        f"{first.url}/status/500",
        f"{first.url}/redirect-to?url={second.url}/headers",
    ]
    proc = subprocess.run(
        [
            sys.executable, "-m", "manyget", "get", "-d", str(tmp_path), "-v", "--json",
            "--retries", "0", "-H", f"X-Api-Key: {SECRET}", "-u", f"alice:{SECRET}",
            "-b", f"sid={SECRET}", "--proxy", f"http://user:{SECRET}@127.0.0.1:1",
            "--noproxy", "127.0.0.1", *urls,
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # the 500
    assert SECRET not in proc.stdout + proc.stderr
    assert len(proc.stdout.splitlines()) == 3


# -- proxies ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode})")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def tinyproxy() -> Iterator[tuple[str, Path]]:
    """Debian's tinyproxy on a free loopback port; its URL and its log file."""
    import tempfile

    program = need_program("tinyproxy")
    # tinyproxy run by root drops to nobody, who must reach the log: not under pytest's
    # private temporary folders.
    work = Path(tempfile.mkdtemp(prefix="manyget-tinyproxy-"))
    port = free_port()
    log = work / "tinyproxy.log"
    conf = work / "tinyproxy.conf"
    user = "" if os.geteuid() != 0 else "User nobody\nGroup nogroup\n"
    conf.write_text(
        f'{user}Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{log}"\nLogLevel Info\n'
        "MaxClients 50\nAllow 127.0.0.1\nConnectPort 443\nConnectPort 563\n"
    )
    work.chmod(0o755)
    log.touch()
    log.chmod(0o666)
    proc = subprocess.Popen([program, "-d", "-c", str(conf)])
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def test_http_proxy(
    origins: tuple[Httpbin, Httpbin], tinyproxy: tuple[str, Path], engine: str, tmp_path: Path
) -> None:
    """--proxy sends every request through the proxy: its log shows each URL."""
    first, _ = origins
    proxy, log = tinyproxy
    marker = f"via-proxy-{engine}"
    got = fetch_json(
        f"{first.url}/anything/{marker}", tmp_path, "p.json", engine=engine, proxy=proxy
    )
    assert got["url"].endswith(marker)
    deadline = time.monotonic() + 5
    while marker not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker in log.read_text()


def test_proxy_from_the_environment_and_noproxy(
    origins: tuple[Httpbin, Httpbin], tinyproxy: tuple[str, Path], tmp_path: Path
) -> None:
    """http_proxy from the environment is used as curl uses it; --noproxy bypasses it."""
    first, _ = origins
    proxy, log = tinyproxy
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["http_proxy"] = proxy
    for marker, extra in [("env-proxied", []), ("env-bypassed", ["--noproxy", "127.0.0.1"])]:
        dest = tmp_path / marker
        dest.mkdir()
        proc = subprocess.run(
            [sys.executable, "-m", "manyget", "get", "-q", "-d", str(dest),
             f"{first.url}/anything/{marker}", *extra],
            capture_output=True, text=True, timeout=60, check=False, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    time.sleep(0.2)
    text = log.read_text()
    assert "env-proxied" in text
    assert "env-bypassed" not in text


@pytest.fixture(scope="module")
def socks5() -> Iterator[tuple[str, Path]]:
    """A SOCKS5 proxy (pproxy) on a free loopback port, logging each connection."""
    if shutil.which("pproxy") is None and not _has_module("pproxy"):
        if os.environ.get("MANYGET_CI") == "1":
            pytest.fail("pproxy is not installed, and CI must run this test")
        pytest.skip("pproxy is not installed")
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"manyget-pproxy-{port}.log"
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pproxy", "-l", f"socks5://127.0.0.1:{port}", "-v"],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield f"socks5h://127.0.0.1:{port}", log
    finally:
        stop(proc)
        out.close()
        log.unlink(missing_ok=True)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_socks5_proxy(
    origins: tuple[Httpbin, Httpbin], socks5: tuple[str, Path], tmp_path: Path
) -> None:
    """socks5h:// proxies work too: pproxy logs the connection to the origin's port."""
    first, _ = origins
    proxy, log = socks5
    got = fetch_json(f"{first.url}/get", tmp_path, "s.json", proxy=proxy)
    assert got["url"].endswith("/get")
    port = first.url.rsplit(":", 1)[1]
    deadline = time.monotonic() + 5
    while f":{port}" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f":{port}" in log.read_text()


# -- TLS and protocols, against nginx ------------------------------------------------------


def make_certificate(directory: Path) -> tuple[Path, Path]:
    from manyget._server._tls import make_test_certificate

    directory.mkdir(parents=True, exist_ok=True)
    return make_test_certificate(directory)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 small files of distinct content to serve."""
    root = tmp_path_factory.mktemp("served")
    for i in range(40):
        (root / f"f{i:02}.bin").write_bytes(bytes([i]) * (1000 + 97 * i))
    return root


@pytest.fixture(scope="module")
def nginx_tls(files: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """nginx serving ``files`` over HTTPS with HTTP/2, and over h2c; its certificate."""
    need_program("nginx")
    from manyget._bench._nginx import PrivateNginx

    cert, key = make_certificate(tmp_path_factory.mktemp("tls"))
    with PrivateNginx(files, tls=(cert, key)) as srv:
        yield srv, cert


def names(files: Path) -> list[str]:
    return sorted(p.name for p in files.iterdir())


def test_http2_over_tls_many_files_few_connections(
    nginx_tls: tuple[Any, Path], files: Path, engine: str, tmp_path: Path
) -> None:
    """Over https, HTTP/2 is negotiated by default; the files are those served, and the
    requests to one host share connections; --http1.1 gives the same files over 1.1."""
    srv, cert = nginx_tls
    before = len(srv.tls_requests())
    urls = [f"{srv.tls_url}/{name}" for name in names(files)]
    results = list(manyget.iter_download(urls, tmp_path / "h2", engine=engine, ca_file=cert))
    assert {r.status for r in results} == {Status.OK}
    assert {r.http_version for r in results} == {"2"}
    for name in names(files):
        assert (tmp_path / "h2" / name).read_bytes() == (files / name).read_bytes()
    seen = srv.tls_requests()[before:]
    assert {protocol for _, protocol, _ in seen} == {"HTTP/2.0"}
    connections = {number for number, _, _ in seen}
    assert len(connections) <= 8 < len(seen), connections  # at most one per slot
    (tmp_path / "h1").mkdir()
    results = list(
        manyget.iter_download(urls, tmp_path / "h1", engine=engine, ca_file=cert, http="1.1")
    )
    assert {r.http_version for r in results} == {"1.1"}
    assert sorted(p.name for p in (tmp_path / "h1").iterdir()) == names(files)


def test_h2c_with_prior_knowledge(
    nginx_tls: tuple[Any, Path], files: Path, tmp_path: Path
) -> None:
    """--http2-prior-knowledge speaks HTTP/2 in clear text to a server that expects it."""
    srv, _ = nginx_tls
    urls = [f"{srv.h2c_url}/{name}" for name in names(files)[:5]]
    results = list(manyget.iter_download(urls, tmp_path, http="2-prior-knowledge"))
    assert {(r.status, r.http_version) for r in results} == {(Status.OK, "2")}


def test_insecure_is_asked_for_and_said(nginx_tls: tuple[Any, Path], tmp_path: Path) -> None:
    """An untrusted certificate fails; -k downloads, with a warning line on that run."""
    srv, _ = nginx_tls
    url = f"{srv.tls_url}/f00.bin"
    cmd = [sys.executable, "-m", "manyget", "get", "-d", str(tmp_path), "--retries", "0", url]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1
    assert not (tmp_path / "f00.bin").exists()
    allowed = subprocess.run([*cmd, "-k"], capture_output=True, text=True, timeout=60, check=False)
    assert allowed.returncode == 0, allowed.stderr
    assert "warning: --insecure" in allowed.stderr
    assert (tmp_path / "f00.bin").exists()


def test_client_certificate_and_minimum_tls_version(
    files: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """--cert/--key present a client certificate to a server that requires one; a
    --tls-min the server cannot meet fails the transfer."""
    need_program("nginx")
    from manyget._bench._nginx import PrivateNginx

    server_cert, server_key = make_certificate(tmp_path_factory.mktemp("server"))
    client_cert, client_key = make_certificate(tmp_path_factory.mktemp("client"))
    with PrivateNginx(
        files, tls=(server_cert, server_key), client_ca=client_cert, protocols="TLSv1.2"
    ) as srv:
        url = f"{srv.tls_url}/f01.bin"
        denied = list(manyget.iter_download([url], tmp_path / "a", ca_file=server_cert))
        assert denied[0].http_status == 400  # nginx: "No required SSL certificate was sent"
        ok = manyget.download(
            [url], tmp_path / "b", ca_file=server_cert, cert=client_cert, key=client_key
        )
        assert ok.counts == {Status.OK: 1}
        (tmp_path / "c").mkdir()
        too_old = list(
            manyget.iter_download(
                [url], tmp_path / "c", ca_file=server_cert, cert=client_cert, key=client_key,
                tls_min="1.3",
            )
        )  # fmt: skip
        assert too_old[0].status is Status.ERROR
        assert too_old[0].history[-1].kind is manyget.AttemptKind.TLS
