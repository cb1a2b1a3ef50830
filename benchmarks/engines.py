"""Compare manyget's engines, whole process, on loopback servers this script starts.

Each run is one `manyget get -i LIST -q` subprocess (interpreter start included), timed
around the process. Its CPU seconds are the whole machine's busy time during the run
(from /proc/stat) less the server's own CPU (from /proc/PID/stat): worker processes
started through a fork server are not our children, so RUSAGE_CHILDREN would miss them.
Run it on an otherwise idle machine. Files go to tmpfs and are
checked (count and total bytes) after every run. Engines run strictly one at a time, in a
rotated order per round, and the table shows medians.

Scenarios:
  flags  the 194 flags from `manyget serve --delay 0.1`, 64 at once
  small  10,000 files of 4-16 KB from a private nginx, 64 at once
  large  4 files of 128 MiB from a private nginx, 4 at once

Peers (`--peers curl,wget2`) run side by side with the engines, on the same files, with
the same concurrency and the same checks:
  curl   `curl --parallel --parallel-max N -s -K CFG`, CFG one `url =` + `output =` pair
         per file (reading it is part of curl's run, as reading -i LIST is part of ours)
  wget2  `wget2 -q --max-threads=N -P DIR -i LIST`

The "own CPU" column is the process's own user+sys time (wait4), which other people's
jobs on a shared machine cannot inflate; "CPU s" is the machine's busy time less the
server's, which also counts work in processes that are not our children.

    python benchmarks/engines.py [--scenarios flags,small,large] [--engines ...]
                                 [--peers curl,wget2] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import cpu_busy_total
from nginx import PrivateNginx, _proc_cpu_seconds

ENGINES = ["sequential", "threads", "processes", "asyncio", "multi"]
PEERS = ["curl", "wget2"]
SHM = "/dev/shm" if Path("/dev/shm").is_dir() else None


@dataclass
class Scenario:
    name: str
    urls: list[str]
    total_bytes: int
    concurrency: int
    server_pid: int


@contextmanager
def flag_server(delay: float) -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "manyget", "serve", "--port", "0", "--delay", str(delay)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        match = re.search(r"http://\S+", proc.stderr.readline())
        if match is None:
            raise SystemExit("flag server did not start")
        yield match.group(0), proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        if proc.stderr is not None:
            proc.stderr.close()


@contextmanager
def nginx_files(sizes: list[int]) -> Iterator[tuple[int, list[str]]]:
    root = Path(tempfile.mkdtemp(prefix="manyget-engines-data-", dir=SHM))
    rng = random.Random(7)
    names = []
    try:
        for i, size in enumerate(sizes):
            name = f"f{i:06d}.bin"
            with open(root / name, "wb") as f:
                f.write(rng.randbytes(min(size, 1 << 20)) * (size // min(size, 1 << 20)))
                f.write(rng.randbytes(size % min(size, 1 << 20)))
            names.append(name)
        with PrivateNginx(root) as srv:
            yield srv.worker_pid, [f"{srv.base_url}/{n}" for n in names]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def command(engine: str, scenario: Scenario, list_file: str, dest: str) -> list[str]:
    n = str(scenario.concurrency)
    if engine == "curl":
        config = os.path.join(dest, ".curl.cfg")  # hidden: not counted as a download
        with open(config, "w") as f:
            for url in scenario.urls:
                name = url.rsplit("/", 1)[1]
                f.write(f'url = "{url}"\noutput = "{dest}/{name}"\n')
        return ["curl", "--parallel", "--parallel-max", n, "-s", "-K", config]
    if engine == "wget2":
        return ["wget2", "-q", f"--max-threads={n}", "-P", dest, "-i", list_file]
    cmd = [sys.executable, "-m", "manyget", "get", "-i", list_file, "-d", dest, "-q"]
    cmd += ["--engine", engine, "-j", n]
    cmd += ["--per-host", n]  # one server: -j is the only limit
    return cmd


def run_once(engine: str, scenario: Scenario, list_file: str) -> dict[str, float | str]:
    dest = tempfile.mkdtemp(prefix="manyget-engines-out-", dir=SHM)
    cmd = command(engine, scenario, list_file, dest)
    try:
        busy0, server0 = cpu_busy_total(), _proc_cpu_seconds(scenario.server_pid)
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        server = _proc_cpu_seconds(scenario.server_pid) - server0
        cpu = cpu_busy_total() - busy0 - server
        own = usage.ru_utime + usage.ru_stime
        files = [f for f in os.scandir(dest) if not f.name.startswith(".")]
        got = sum(f.stat().st_size for f in files)
        complete = len(files) == len(scenario.urls) and got == scenario.total_bytes
        note = "" if complete and proc.returncode == 0 else f"INCOMPLETE ({len(files)} files)"
        return {"wall": wall, "cpu": cpu, "own": own, "note": note}
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def measure(scenario: Scenario, engines: list[str], runs: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(scenario.urls) + "\n")
    records: dict[str, list[dict[str, float | str]]] = {e: [] for e in engines}
    try:
        for r in range(runs):
            order = engines[r % len(engines) :] + engines[: r % len(engines)]
            for engine in order:
                records[engine].append(run_once(engine, scenario, listing.name))
    finally:
        os.unlink(listing.name)
    n = len(scenario.urls)
    mb = scenario.total_bytes / 1e6
    print(f"\n### {scenario.name}: {n:,} files, {mb:,.1f} MB, {scenario.concurrency} at once")
    print(f"medians of {runs} runs, whole process\n")
    print(
        "| engine | wall s (min-max) | CPU s | files/s | MB/s | CPU s / 1000 files "
        "| own CPU s / 1000 files | note |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for engine in engines:
        rows = records[engine]
        walls = [float(x["wall"]) for x in rows]
        cpus = [float(x["cpu"]) for x in rows]
        owns = [float(x["own"]) for x in rows]
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        own = statistics.median(owns)
        notes = ", ".join(sorted({str(x["note"]) for x in rows if x["note"]}))
        print(
            f"| {engine} | {wall:.2f} ({min(walls):.2f}-{max(walls):.2f}) | {cpu:.2f} | "
            f"{n / wall:,.0f} | {mb / wall:,.0f} | {1000 * cpu / n:.3f} | "
            f"{1000 * own / n:.3f} | {notes} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="flags,small,large")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--peers", default="", help=f"also run these: {','.join(PEERS)}")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    for peer in peers:
        if peer not in PEERS or shutil.which(peer) is None:
            parser.error(f"peer {peer!r} is unknown or not installed")
    engines = [e for e in args.engines.split(",") if e] + peers
    for name in args.scenarios.split(","):
        if name == "flags":
            from manyget._server import COUNTRY_CODES, flag_gif

            with flag_server(0.1) as (base, pid):
                urls = [f"{base}/flags/{c.lower()}/{c.lower()}.gif" for c in COUNTRY_CODES]
                total = sum(len(flag_gif(c)) for c in COUNTRY_CODES)
                scenario = Scenario("flags (0.1 s latency each)", urls, total, 64, pid)
                measure(scenario, engines, args.runs)
        elif name == "small":
            rng = random.Random(42)
            sizes = [rng.randint(4096, 16384) for _ in range(10_000)]
            small = [e for e in engines if e != "sequential"]
            with nginx_files(sizes) as (pid, urls):
                measure(Scenario("small", urls, sum(sizes), 64, pid), small, args.runs)
        elif name == "large":
            sizes = [128 * 1024 * 1024] * 4
            with nginx_files(sizes) as (pid, urls):
                measure(Scenario("large", urls, sum(sizes), 4, pid), engines, args.runs)
        else:
            parser.error(f"unknown scenario {name!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
