"""The CLI on a list of a million URLs: peak RSS, time to the first request, files/s.

Issue 4's target: ``manyget get -i LIST -d DIR`` with 1,000,000 lines peaks under 150 MB
RSS and sends its first request within 1 s of the process starting. This script:

1. starts ``manyget serve --port 0`` as a separate process (as ``manyget bench`` does),
   and a tiny raw-socket server on its own thread here that notes when its first request
   arrives and answers 16 bytes;
2. writes the list to a tmpfs folder: line 1 points at the tiny server, the other lines at
   ``/bytes/16?i=K`` on ``manyget serve`` (one path for all, so every name after the first
   takes a ``~hash`` suffix: the worst case for the name table);
3. runs ``python -m manyget get -i LIST -d DIR -j N --per-host N -q`` and reaps it with
   ``os.wait4``, whose rusage gives that process's own peak RSS;
4. checks the exit status, that every file is there with its 16 bytes, and removes it all.

The clock starts just before the child is spawned, so "first request" includes interpreter
start, imports and reading the first line; no hook in the product is needed. Exits 1 if a
file is missing or a target (``--max-rss-mb``, ``--max-first-s``) is missed.

    python benchmarks/million.py [--urls 1000000] [--jobs 64] [--engine multi] [--tmp /dev/shm]
    python benchmarks/million.py --engine dask --dask-workers 2   # a cluster started here

With ``--dask-workers N`` the script starts a LocalCluster of N worker processes (one
thread each) on 127.0.0.1 before the clock starts and passes ``--scheduler`` to the
client, so the peak RSS is the client's own (a cluster started by the client itself
would be its children, whose peak ``wait4`` reports instead) and the first request does
not include the cluster's start-up; ``--engine dask`` alone measures the client starting
its own LocalCluster.

A million files of 16 bytes take about 1M inodes and 4 GB of page cache on tmpfs (one page
a file) while the run lasts; check ``df -i`` and ``free`` first, or pass a smaller ``--urls``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from manyget._bench._run import embedded_server

_BODY = b"0123456789abcdef"
_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n"
    b"Connection: close\r\n\r\n%s" % (len(_BODY), _BODY)
)


class FirstRequest:
    """A loopback listener that records when the first request head arrives."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.arrived: float | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            with conn:
                conn.settimeout(10)
                head = b""
                try:
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    if b"\r\n\r\n" in head:
                        if self.arrived is None:
                            self.arrived = time.monotonic()
                        conn.sendall(_ANSWER)
                except OSError:
                    continue

    def close(self) -> None:
        self._sock.close()


def write_list(path: str, first: str, base: str, count: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(f"{first}/bytes/16?i=0\n")
        batch = 10_000
        for start in range(1, count, batch):
            stop = min(count, start + batch)
            out.write("".join(f"{base}/bytes/16?i={i}\n" for i in range(start, stop)))


def count_files(dest: str, size: int) -> tuple[int, int]:
    """(files, files whose size is not ``size``) directly in ``dest``."""
    files = wrong = 0
    with os.scandir(dest) as entries:
        for entry in entries:
            files += 1
            if entry.stat(follow_symlinks=False).st_size != size:
                wrong += 1
    return files, wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=64)
    parser.add_argument("--engine", default="multi")
    parser.add_argument("--tmp", default="/dev/shm", help="a tmpfs folder for list and files")
    parser.add_argument("--max-rss-mb", type=float, default=150.0)
    parser.add_argument("--max-first-s", type=float, default=1.0)
    parser.add_argument("--dask-workers", type=int, default=0, metavar="N")
    args = parser.parse_args()
    args.scheduler = None

    with embedded_server(0.0, None) as served:
        if not args.dask_workers:
            return measure(args, served.base_url)
        from distributed import LocalCluster

        with LocalCluster(
            n_workers=args.dask_workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster:
            args.scheduler = cluster.scheduler_address
            return measure(args, served.base_url)


def measure(args: argparse.Namespace, base: str) -> int:
    first = FirstRequest()
    work = tempfile.mkdtemp(prefix="manyget-million-", dir=args.tmp)
    try:
        list_path = os.path.join(work, "urls.txt")
        dest = os.path.join(work, "files")
        os.mkdir(dest)
        write_list(list_path, first.url, base, args.urls)
        list_mb = os.path.getsize(list_path) / 1e6
        command = [
            sys.executable,
            "-m",
            "manyget",
            "get",
            "-i",
            list_path,
            "-d",
            dest,
            "--engine",
            args.engine,
            "-j",
            str(args.jobs),
            "--per-host",
            str(args.jobs),  # one server: -j is the only limit
            "-q",
        ]
        if args.scheduler is not None:
            command += ["--scheduler", args.scheduler]
        with open(os.path.join(work, "stderr.txt"), "w+", encoding="utf-8") as err:
            start = time.monotonic()
            child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(child.pid, 0)
            elapsed = time.monotonic() - start
            child.returncode = os.waitstatus_to_exitcode(status)
            err.seek(0)
            messages = err.read()
        peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
        first_s = None if first.arrived is None else first.arrived - start
        files, wrong = count_files(dest, len(_BODY))
    finally:
        first.close()
        shutil.rmtree(work, ignore_errors=True)

    complete = child.returncode == 0 and files == args.urls and wrong == 0
    first_text = "never" if first_s is None else f"{first_s:.2f}s"
    print(
        f"{args.urls:,} URLs ({list_mb:.0f} MB list), manyget get --engine {args.engine} "
        f"-j {args.jobs}: exit {child.returncode}, {files:,} files ({wrong:,} wrong size) "
        f"in {elapsed:.1f}s ({files / elapsed:,.0f} files/s); peak RSS {peak_mb:.1f} MB "
        f"(target < {args.max_rss_mb:g}); first request after {first_text} "
        f"(target < {args.max_first_s:g}s); CPU {usage.ru_utime + usage.ru_stime:.1f}s"
    )
    if messages.strip():
        print(messages.strip()[-2000:], file=sys.stderr)
    met = peak_mb < args.max_rss_mb and first_s is not None and first_s < args.max_first_s
    return 0 if complete and met else 1


if __name__ == "__main__":
    sys.exit(main())
