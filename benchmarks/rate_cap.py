"""How closely `manyget get --limit-rate` holds its cap over a long run, on every engine.

Serves a few large files from a private nginx on loopback (kept in ``--data``, tmpfs by
default) and downloads them with ``manyget get --limit-rate RATE`` (a whole-run cap, not
a per-transfer one), timing the whole process. The achieved rate is the bytes received
over the wall time; the error is its distance from the cap. Each run must leave every
file, byte for byte. Also runs one file with many connections at once against the same
cap, and a per-host cap.

    python benchmarks/rate_cap.py --rate 20M --seconds 10 --runs 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from manyget._bench._nginx import PrivateNginx

ENGINES = ["multi", "sequential", "threads", "processes", "asyncio"]


def size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text[-1:].upper() in units:
        return int(float(text[:-1]) * units[text[-1].upper()])
    return int(text)


def make_files(data: Path, count: int, each: int) -> list[Path]:
    data.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        path = data / f"big{i}.bin"
        if not path.exists() or path.stat().st_size != each:
            with path.open("wb") as f:
                left = each
                while left:
                    chunk = os.urandom(min(left, 1 << 20))
                    f.write(chunk)
                    left -= len(chunk)
        files.append(path)
    return files


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def run(urls: list[str], dest: Path, engine: str, options: list[str]) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    command = [sys.executable, "-m", "manyget", "get", "-q", "-d", str(dest), "--engine", engine]
    start = time.monotonic()
    subprocess.run([*command, *options, *urls], check=True)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="20M", help="the cap, bytes a second (default 20M)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--files", type=int, default=4, help="files in each run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--data", default="/dev/shm/manyget-rate-data")
    parser.add_argument("--dest", default="/dev/shm/manyget-rate-dest")
    args = parser.parse_args()
    rate = size(args.rate)
    total = int(rate * args.seconds)
    files = make_files(Path(args.data), args.files, total // args.files)
    expected = {p.name: digest(p) for p in files}
    nbytes = sum(p.stat().st_size for p in files)
    dest = Path(args.dest)
    cases = [(e, "--limit-rate", files) for e in args.engines.split(",")]
    cases.append(("multi", "--limit-rate-host", files))
    print(f"cap {rate / 1e6:.2f} MB/s, {len(files)} files, {nbytes / 1e6:.1f} MB a run")
    with PrivateNginx(args.data) as server:
        for engine, option, chosen in cases:
            urls = [f"{server.base_url}/{p.name}" for p in chosen]
            walls = []
            for _ in range(args.runs):
                walls.append(run(urls, dest, engine, [option, str(rate), "-j", "8"]))
                for name, want in expected.items():
                    if digest(dest / name) != want:
                        raise SystemExit(f"{engine}: {name} differs")
            wall = statistics.median(walls)
            achieved = nbytes / wall
            error = (achieved - rate) / rate * 100
            print(
                f"{engine:10} {option:17} median {wall:6.2f} s  {achieved / 1e6:7.2f} MB/s  "
                f"{error:+5.1f}% of the cap  (runs: {', '.join(f'{w:.2f}' for w in walls)})"
            )
    shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    main()
