"""Object-storage destinations: files/s into an S3 prefix (moto) against a local folder.

What an ``s3://`` destination costs on top of the local publish. This script:

1. starts ``manyget serve --port 0`` and ``python -m moto.server`` (moto's S3 server), each
   as its own process on a free loopback port; moto is stopped by its PID at the end;
2. for each of ``--runs`` rounds, in rotated order, downloads the same ``--files`` URLs
   (``/bytes/SIZE?i=K``, distinct names) with ``manyget.download``:
   - ``local``: into a fresh temporary folder (the atomic publish, nothing more);
   - ``s3``: into a fresh prefix of a moto bucket (staging, upload by 8 threads, remove);
   - ``put``: no download, only ``put_file`` of the same files from 8 threads straight to
     moto through s3fs: what the store itself accepts, the ceiling of ``s3``;
3. checks every file or object is there with its size, and prints the median files/s of
   each, and ``s3`` as a share of ``local``.

    python benchmarks/store.py [--files 1000] [--size 16384] [--runs 5] [--engine multi]

Needs the ``s3`` extra and ``moto[server]`` (both in the dev extra).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import manyget
from manyget._bench._run import embedded_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return proc, endpoint
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto's server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def run_local(urls: list[str], engine: str, size: int) -> float:
    folder = tempfile.mkdtemp(prefix="store-bench-")
    try:
        start = time.perf_counter()
        report = manyget.download(urls, folder, engine=engine, keep_results=False)
        elapsed = time.perf_counter() - start
        assert report.ok, report.summary()
        assert all(os.path.getsize(os.path.join(folder, n)) == size for n in os.listdir(folder))
        assert len(os.listdir(folder)) == len(urls)
        return len(urls) / elapsed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_s3(urls: list[str], engine: str, size: int, fs: Any, bucket: str) -> float:
    prefix = f"{bucket}/{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    report = manyget.download(urls, f"s3://{prefix}", engine=engine, keep_results=False)
    elapsed = time.perf_counter() - start
    assert report.ok, report.summary()
    fs.invalidate_cache()
    entries = fs.ls(prefix, detail=True)
    assert len(entries) == len(urls), len(entries)
    assert all(e["size"] == size for e in entries)
    fs.rm(prefix, recursive=True)
    return len(urls) / elapsed


def run_put(files: int, size: int, fs: Any, bucket: str) -> float:
    prefix = f"{bucket}/{uuid.uuid4().hex[:8]}"
    folder = tempfile.mkdtemp(prefix="store-bench-")
    try:
        paths = []
        for i in range(files):
            path = os.path.join(folder, str(i))
            with open(path, "wb") as f:
                f.write(os.urandom(size))
            paths.append(path)
        start = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: fs.put_file(p, f"{prefix}/{os.path.basename(p)}"), paths))
        elapsed = time.perf_counter() - start
        fs.invalidate_cache()
        assert len(fs.ls(prefix)) == files
        fs.rm(prefix, recursive=True)
        return files / elapsed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--engine", default="multi")
    args = parser.parse_args()

    moto, endpoint = start_moto()
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    try:
        import fsspec

        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        bucket = "bench"
        fs.mkdir(bucket)
        with embedded_server(0.0, None) as served:
            # One path for all: every name after the first takes a distinct ~hash suffix.
            urls = [f"{served.base_url}/bytes/{args.size}?i={i}" for i in range(args.files)]
            figures: dict[str, list[float]] = {"local": [], "s3": [], "put": []}
            kinds = list(figures)
            for r in range(args.runs):
                order = kinds[r % 3 :] + kinds[: r % 3]
                for kind in order:
                    if kind == "local":
                        rate = run_local(urls, args.engine, args.size)
                    elif kind == "s3":
                        rate = run_s3(urls, args.engine, args.size, fs, bucket)
                    else:
                        rate = run_put(args.files, args.size, fs, bucket)
                    figures[kind].append(rate)
                    print(f"run {r + 1} {kind:5} {rate:8.1f} files/s", file=sys.stderr)
    finally:
        stop(moto)
    med = {kind: statistics.median(rates) for kind, rates in figures.items()}
    print(f"{args.files} files of {args.size} B, engine {args.engine}, median of {args.runs}:")
    for kind, value in med.items():
        print(f"  {kind:5} {value:8.1f} files/s")
    print(
        f"  s3 / local = {med['s3'] / med['local']:.2f}; s3 / put = {med['s3'] / med['put']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
