"""Loopback HTTP servers for tests: :class:`LoopbackServer`, the lifecycle they share, and
:class:`CountingServer`, which counts the requests for each path (journal and dask tests).

``/f/NAME?size=N&delay=S`` answers ``N`` bytes that depend only on NAME (see
:func:`body_of`), after ``delay`` seconds; a path in ``missing`` answers 404.
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


def body_of(name: str, size: int) -> bytes:
    """The bytes the server sends for ``name``: deterministic, distinct per name."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``handler`` on a thread of its own for
    the length of a ``with`` block; ``port`` is its port."""

    def _listen(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class CountingServer(LoopbackServer):
    """A ThreadingHTTPServer on 127.0.0.1 counting GETs by path."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.missing: set[str] = set()
        self.active = 0  # requests being answered now
        self.peak = 0  # the most answered at once
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body leave at once, no 40 ms stall

            def do_GET(self) -> None:
                parts = urllib.parse.urlsplit(self.path)
                with outer._lock:
                    outer.counts[parts.path] += 1
                    outer.active += 1
                    outer.peak = max(outer.peak, outer.active)
                try:
                    self._answer(parts)
                finally:
                    with outer._lock:
                        outer.active -= 1

            def _answer(self, parts: urllib.parse.SplitResult) -> None:
                query = urllib.parse.parse_qs(parts.query)
                delay = float(query.get("delay", ["0"])[0])
                if delay:
                    time.sleep(delay)
                if parts.path in outer.missing or not parts.path.startswith("/f/"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                size = int(query.get("size", ["1000"])[0])
                body = body_of(parts.path.rsplit("/", 1)[-1], size)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._listen(Handler)
        self.url = f"http://127.0.0.1:{self.port}"

    def urls(self, n: int, *, size: int = 1000, delay: float = 0.0, prefix: str = "") -> list[str]:
        """``n`` URLs named ``{prefix}{i}.bin``."""
        extra = f"&delay={delay}" if delay else ""
        return [f"{self.url}/f/{prefix}{i}.bin?size={size}{extra}" for i in range(n)]
