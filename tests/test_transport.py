"""One transport: every engine gives the same answer at the HTTP edge, word for word."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import manyget
from manyget import Status
from manyget._server import Server

pytestmark = pytest.mark.timeout(120)

# url path -> (status, http_status, error, kinds of the attempts); no per-engine exceptions.
EDGES = {
    "/faults/redirect/20/100": ("ok", 200, None, ["ok"]),
    "/faults/redirect/21/101": (
        "error",
        302,
        "too many redirects (more than 20)",
        ["fatal"],
    ),
    "/faults/redirect-loop": ("error", 302, "too many redirects (more than 20)", ["fatal"]),
    "/faults/redirect-to?url=file:///etc/passwd": (
        "error",
        302,
        "redirect to file: refused (only http and https are followed)",
        ["fatal"],
    ),
    "/faults/redirect-to?url=ftp://127.0.0.1/x": (
        "error",
        302,
        "redirect to ftp: refused (only http and https are followed)",
        ["fatal"],
    ),
    "/faults/raw/bad-chunked": (
        "error",
        200,
        "chunk hex-length char not a hex digit: 0x7a",
        ["read", "read"],
    ),
    "/faults/status/404": ("not_found", 404, "HTTP 404 Not Found", ["status"]),
    "/faults/status/503": ("error", 503, "HTTP 503 Service Unavailable", ["status", "status"]),
    "/bytes/5000": ("ok", 200, None, ["ok"]),
}


def test_every_engine_meets_the_edge_the_same_way(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """Redirect limits, refused targets, bad chunked framing, statuses: one behaviour."""
    urls = [server.url + path for path in EDGES]
    policy = manyget.RetryPolicy(retries=1, backoff=0.0)
    report = manyget.download(urls, tmp_path, engine=engine, retries=policy)
    by_url = {r.url: r for r in report.results}
    for path, (status, code, error, kinds) in EDGES.items():
        result = by_url[server.url + path]
        got = (result.status.value, result.http_status, result.error, result.history)
        assert got[:3] == (status, code, error), path
        assert [a.kind.value for a in result.history] == kinds, path
        assert (result.path is not None) == (status == "ok"), path
    assert sorted(os.listdir(tmp_path)) == ["100", "5000"]


def test_broken_chunked_fails_fast_and_the_rest_completes(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """A body whose framing breaks fails that URL at once; the other URLs still download."""
    urls = [f"{server.url}/faults/raw/bad-chunked"] + [
        f"{server.url}/bytes/{1000 + i}" for i in range(20)
    ]
    report = manyget.download(urls, tmp_path, engine=engine, retries=0, timeout=5)
    assert report.counts == {Status.OK: 20, Status.ERROR: 1}
    bad = next(r for r in report.results if not r.ok)
    assert bad.seconds < 5  # failed on the framing, not on the idle timeout


def test_no_second_http_client_is_installed_or_imported() -> None:
    """aiohttp is not a dependency, and no engine imports it."""
    from importlib.metadata import requires

    assert not any(r.lower().startswith("aiohttp") for r in requires("manyget") or [])
    probe = (
        "import sys, manyget\n"
        "from manyget._engines import get_engine\n"
        "for name in manyget.ENGINES: get_engine(name)\n"
        "print('aiohttp' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"
