"""HTTPS on every engine: trusted certificates, untrusted ones, and downgrade redirects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import manyget
from manyget import RetryPolicy, Status
from manyget._server import Server, flag_gif

pytestmark = pytest.mark.timeout(60)

FAST = RetryPolicy(retries=2, backoff=0.01)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 (skips without openssl)."""
    from manyget._server._tls import make_test_certificate

    try:
        return make_test_certificate(tmp_path_factory.mktemp("tls"))
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Server]:
    """The embedded server over HTTPS."""
    from manyget._server._tls import tls_context

    with Server(tls=tls_context(*certificate)) as srv:
        yield srv


def test_https_with_trusted_certificate(
    tls_server: Server, certificate: tuple[Path, Path], engine: str, tmp_path: Path
) -> None:
    """With --cacert the flags download over HTTPS, byte for byte."""
    urls = [f"{tls_server.flags_url}/{cc}/{cc}.gif" for cc in ("br", "cn", "jp")]
    report = manyget.download(urls, tmp_path, engine=engine, ca_file=certificate[0])
    assert report.counts == {Status.OK: 3}
    for cc in ("br", "cn", "jp"):
        assert (tmp_path / f"{cc}.gif").read_bytes() == flag_gif(cc)


def test_untrusted_certificate_not_retried(
    tls_server: Server, engine: str, tmp_path: Path
) -> None:
    """A certificate we do not trust is a TLS error: reported at once, never retried."""
    url = f"{tls_server.flags_url}/br/br.gif"
    (result,) = manyget.download([url], tmp_path, engine=engine, retries=FAST).results
    assert result.status is Status.ERROR
    assert result.attempts == 1
    assert result.history[0].kind == "tls"
    assert list(tmp_path.iterdir()) == []


def test_https_to_http_redirect_refused(
    tls_server: Server,
    server: Server,
    certificate: tuple[Path, Path],
    engine: str,
    tmp_path: Path,
) -> None:
    """From https, a redirect to http is refused unless downgrades are allowed."""
    target = f"{server.flags_url}/br/br.gif"
    url = f"{tls_server.url}/faults/redirect-to?url={target}"
    (refused,) = manyget.download(
        [url], tmp_path, engine=engine, ca_file=certificate[0], retries=FAST
    ).results
    assert refused.status is Status.ERROR
    assert refused.attempts == 1
    assert list(tmp_path.iterdir()) == []
    (allowed,) = manyget.download(
        [url], tmp_path, engine=engine, ca_file=certificate[0], allow_downgrade=True
    ).results
    assert allowed.status is Status.OK
    assert (tmp_path / "redirect-to").read_bytes() == flag_gif("BR")


def test_missing_cacert_is_a_usage_error(tmp_path: Path) -> None:
    """A --cacert file that does not exist fails before any request."""
    with pytest.raises(manyget.UsageError, match="does not exist"):
        manyget.download(["https://127.0.0.1:1/x"], tmp_path, ca_file=tmp_path / "nope.pem")
