"""What `--journal` costs: S2-like small files with and without it, alternating runs.

Serves 10,000 files of 4-16 KB from a private nginx on loopback (as ``trees.py``), then
runs ``manyget get`` without and with ``--journal FILE`` (a fresh journal each run, in
``--journal-dir``: tmpfs like the downloads by default, or a disk folder) in turn, round
after round, so both see the same machine. Prints the median wall and CPU seconds of each
and the journal's cost in files/s; every run must leave all 10,000 files, and every
journal must hold 10,000 done rows.

    python benchmarks/journal_cost.py --engines multi --rounds 7
    python benchmarks/journal_cost.py --journal-dir /var/tmp     # the journal on disk
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trees import FILES, make_files

from manyget._bench._nginx import PrivateNginx


def run_once(engine: str, listing: Path, dest: Path, journal: Path | None) -> tuple[float, float]:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    command = [sys.executable, "-m", "manyget", "get", "-q", "-i", str(listing), "-d", str(dest)]
    command += ["--engine", engine, "-j", "64", "--per-host", "64"]
    if journal is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{journal}{suffix}").unlink(missing_ok=True)
        command += ["--journal", str(journal)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    subprocess.run(command, check=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if len(os.listdir(dest)) != FILES:
        raise SystemExit(f"{engine}: incomplete run")
    if journal is not None:
        with sqlite3.connect(journal) as db:
            (done,) = db.execute("SELECT COUNT(*) FROM urls WHERE state = 'ok'").fetchone()
        if done != FILES:
            raise SystemExit(f"{engine}: the journal holds {done} done rows, not {FILES}")
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="multi")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path("/dev/shm/manyget-trees"))
    parser.add_argument("--journal-dir", type=Path, default=None)
    args = parser.parse_args()
    make_files(args.data / "files")
    listing = args.data / "list.txt"
    dest = args.data / "dest"
    journal = (args.journal_dir or args.data) / "journal-cost.sqlite"
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with PrivateNginx(args.data / "files") as nginx:
        listing.write_text("".join(f"{nginx.base_url}/f{i:05d}.bin\n" for i in range(FILES)))
        for _ in range(args.rounds):
            for engine in args.engines.split(","):
                for name, path in (("plain", None), ("journal", journal)):
                    runs.setdefault((name, engine), []).append(
                        run_once(engine, listing, dest, path)
                    )
    medians: dict[tuple[str, str], float] = {}
    for (name, engine), values in runs.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        medians[(name, engine)] = wall
        print(
            f"{name:8} {engine:10} wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
            f"{FILES / wall:8,.0f} files/s  ({len(values)} runs)"
        )
    for engine in args.engines.split(","):
        plain, journalled = medians[("plain", engine)], medians[("journal", engine)]
        print(f"{engine}: the journal costs {100 * (1 - plain / journalled):+.1f}% of files/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
