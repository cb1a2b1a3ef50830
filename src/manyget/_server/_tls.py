"""Throw-away TLS for the test server: a self-signed certificate and a server-side context.

``make_test_certificate`` runs the ``openssl`` command-line tool rather than adding a runtime
dependency (``cryptography``, ``trustme``) for something only tests need. The certificate is
valid for a day, for ``127.0.0.1``, ``::1`` and ``localhost``, and is its own issuer: a client
trusts it by loading it as a CA file (``ssl.create_default_context(cafile=cert)``, curl's
``--cacert``). The private key is not encrypted, so keep it in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

__all__ = ["make_test_certificate", "tls_context"]

SUBJECT_ALT_NAME = "IP:127.0.0.1,IP:::1,DNS:localhost"
_OPENSSL_TIMEOUT = 60.0  # seconds; an RSA key takes well under one


def make_test_certificate(directory: Path) -> tuple[Path, Path]:
    """Write ``cert.pem`` and ``key.pem`` into ``directory``; return their paths.

    Raises ``RuntimeError`` if the ``openssl`` tool is not on ``PATH`` or fails.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError(
            "the openssl command-line tool is needed to make a test certificate "
            "and was not found on PATH"
        )
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = [
        openssl,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        f"subjectAltName={SUBJECT_ALT_NAME}",
        "-keyout",
        os.fspath(key),
        "-out",
        os.fspath(cert),
    ]
    try:
        subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
            timeout=_OPENSSL_TIMEOUT,
        )
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        last = detail[-1] if detail else f"exit status {exc.returncode}"
        raise RuntimeError(f"openssl could not make a test certificate: {last}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"openssl could not make a test certificate: {exc}") from exc
    return cert, key


def tls_context(cert: str | os.PathLike[str], key: str | os.PathLike[str]) -> ssl.SSLContext:
    """A server-side context for ``Server(tls=...)``: TLS 1.2 or later, HTTP/1.1 by ALPN.

    ALPN names ``http/1.1`` so that clients which would prefer HTTP/2 (libcurl does over TLS)
    settle on the only protocol the server speaks without having to guess.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context
