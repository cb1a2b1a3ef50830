"""Two versions of manyget side by side: S2-like small files, alternating runs.

Serves 10,000 files of 4-16 KB from a private nginx on loopback (files kept in
``--data``, tmpfs by default), then runs ``manyget get`` with each engine from each source
tree in turn (``PYTHONPATH=TREE``), round after round, so both versions see the same
machine. Prints the median wall and CPU seconds (the ``manyget`` process's own, children
included) per tree and engine; every run must leave all 10,000 files.

    git worktree add --detach /tmp/old <commit>
    python benchmarks/trees.py --tree old=/tmp/old/src --tree new=src --engines multi,asyncio

Any scenario, with the bench's own data and report: ``manyget bench --tree old=/tmp/old/src
--tree new=src --against none``.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from manyget._bench._nginx import PrivateNginx

FILES = 10_000


def make_files(data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for i in range(FILES):
        path = data / f"f{i:05d}.bin"
        size = rng.randint(4096, 16384)
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(rng.randbytes(size))


def run_once(src: str, engine: str, listing: Path, dest: Path) -> tuple[float, float]:
    dest.mkdir()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    command = [sys.executable, "-m", "manyget", "get", "-q", "-i", str(listing), "-d", str(dest)]
    command += ["--engine", engine, "-j", "64", "--per-host", "64"]
    subprocess.run(command, env={**os.environ, "PYTHONPATH": src}, check=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if len(os.listdir(dest)) != FILES:
        raise SystemExit(f"{src} {engine}: incomplete run")
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=SRC")
    parser.add_argument("--engines", default="multi")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path("/dev/shm/manyget-trees"))
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.tree)
    make_files(args.data / "files")
    listing = args.data / "list.txt"
    work = args.data / "dest"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    os.sync()
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    count = 0
    with PrivateNginx(args.data / "files") as nginx:
        listing.write_text("".join(f"{nginx.base_url}/f{i:05d}.bin\n" for i in range(FILES)))
        for _ in range(args.rounds):
            for name, src in trees.items():
                for engine in args.engines.split(","):
                    # Every run writes to a folder of its own, all removed at the end: on
                    # ext4, creating files just after deleting thousands costs several
                    # times more (the allocator skips recently deleted inodes one by
                    # one), which would measure the last run's clean-up, not this run.
                    count += 1
                    dest = work / str(count)
                    runs.setdefault((name, engine), []).append(
                        run_once(os.path.abspath(src), engine, listing, dest)
                    )
    shutil.rmtree(work, ignore_errors=True)
    for (name, engine), values in runs.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:8} {engine:10} wall {wall:6.2f} s  cpu {cpu:6.2f} s  ({len(values)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
