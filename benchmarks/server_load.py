"""The embedded server under load: wrk keep-alive throughput, idle connections, pipelining.

Starts ``manyget serve`` from each ``--src`` tree (a folder holding the ``manyget`` package,
e.g. ``src`` of two checkouts) as a child process on 127.0.0.1, and, with ``--nginx``, a
private nginx with one worker serving the same file. Then, in rounds whose order alternates:

* ``wrk -t1 -cN -dD --latency`` on ``/flags/br/br.gif`` (23,972 bytes) at each ``-c`` level,
  keep-alive; the table shows each server's median requests/s over the rounds;
* 2,000 idle keep-alive connections (each after one request) held at once: the server's RSS
  before and with them, from ``/proc/PID/status``;
* one client pipelining 7,000 ``GET /bytes/65536`` and never reading: the server's peak RSS
  growth (``VmHWM``) after 2 s.

Needs wrk (``/usr/bin/wrk``) and, for ``--nginx``, nginx. Every server is stopped by its PID.

    python benchmarks/server_load.py --src src --src /tmp/manyget-old/src --runs 5 --nginx
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

FLAG = "/flags/br/br.gif"
REQUEST = b"GET %s HTTP/1.1\r\nHost: bench\r\n\r\n"


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match[1]) if match else 0


@contextlib.contextmanager
def manyget_serve(src: str, *args: str) -> Iterator[tuple[int, int]]:
    """``manyget serve`` from ``src`` on a free port: yields (pid, port)."""
    with tempfile.TemporaryFile() as err:
        env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "manyget", "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                err.seek(0)
                match = re.search(rb"serving on http://127\.0\.0\.1:(\d+)", err.read())
                if match:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    err.seek(0)
                    raise RuntimeError(f"manyget serve from {src} failed: {err.read()!r}")
                time.sleep(0.05)
            yield proc.pid, int(match[1])
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wrk(port: int, connections: int, seconds: int) -> float:
    """Requests/s of one wrk run on the flag, keep-alive; 0 if any answer was not 2xx."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            f"http://127.0.0.1:{port}{FLAG}",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        print(f"  wrk reported errors:\n{out}", file=sys.stderr)
    match = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    return float(match[1]) if match else 0.0


def idle_connections(pid: int, port: int, count: int) -> tuple[int, int, bool]:
    """RSS (KiB) before and while ``count`` keep-alive connections sit idle; still answering?"""
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(REQUEST % b"/bytes/10")
            socks.append(sock)
        for sock in socks:
            sock.recv(4096)  # the small answer, in one segment on loopback
        time.sleep(1.0)
        during = rss_kib(pid)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as probe:
            probe.sendall(REQUEST % b"/bytes/10")
            answered = probe.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()
    return before, during, answered


def pipelining(pid: int, port: int) -> int:
    """Peak RSS growth (KiB) from one client pipelining 7,000 GET /bytes/65536, never reading."""
    before = rss_kib(pid)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(REQUEST % b"/bytes/65536" * 7000)
        time.sleep(2.0)
        return rss_kib(pid, "VmHWM") - before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", action="append", help="a tree holding manyget (repeatable)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="length of one wrk run")
    parser.add_argument("--connections", default="1,64,512")
    parser.add_argument("--idle", type=int, default=2000, help="idle connections to hold")
    parser.add_argument("--nginx", action="store_true", help="also nginx, 1 worker")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("server_load: wrk is not installed", file=sys.stderr)
        return 2
    sources = args.src or [str(Path(__file__).resolve().parent.parent / "src")]
    levels = [int(c) for c in args.connections.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.idle + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the servers

    with contextlib.ExitStack() as stack:
        targets: dict[str, tuple[int, int]] = {}
        for src in sources:
            targets[src] = stack.enter_context(manyget_serve(src))
        if args.nginx:
            from manyget._bench._nginx import PrivateNginx
            from manyget._server import flag_gif

            root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            (root / "flags" / "br").mkdir(parents=True)
            (root / "flags" / "br" / "br.gif").write_bytes(flag_gif("BR"))
            nginx = stack.enter_context(PrivateNginx(root))
            targets["nginx (1 worker)"] = (0, int(nginx.base_url.rsplit(":", 1)[1]))
        names = list(targets)
        rates: dict[tuple[str, int], list[float]] = {(n, c): [] for n in names for c in levels}
        for port in (p for _, p in targets.values()):
            wrk(port, 4, 1)  # warm-up: imports, caches
        for run in range(args.runs):
            order = names if run % 2 == 0 else names[::-1]
            for connections in levels:
                for name in order:
                    rate = wrk(targets[name][1], connections, args.seconds)
                    rates[name, connections].append(rate)
                    print(f"run {run + 1} -c{connections} {name}: {rate:,.0f}/s", file=sys.stderr)

        print(f"wrk -t1 -c{{{args.connections}}} -d{args.seconds}s, median of {args.runs}:\n")
        print("| server | " + " | ".join(f"{c} conn. req/s" for c in levels) + " |")
        print("| --- |" + " ---: |" * len(levels))
        for name in names:
            cells = [f"{statistics.median(rates[name, c]):,.0f}" for c in levels]
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()
        for src in sources:
            pid, port = targets[src]
            before, during, answered = idle_connections(pid, port, args.idle)
            grown = pipelining(pid, port)
            print(
                f"{src}: {args.idle} idle connections: RSS {before / 1024:.1f} -> "
                f"{during / 1024:.1f} MB, {'still answering' if answered else 'NOT answering'}; "
                f"7,000 pipelined /bytes/65536 never read: peak RSS +{grown / 1024:.1f} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
