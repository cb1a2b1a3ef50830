"""The Dask engine's fixed costs: scheduler overhead per task, and the client's CPU per URL.

1. Per task: a LocalCluster of ``--workers`` processes (one thread each) on 127.0.0.1
   runs ``--tasks`` no-op tasks, each with an explicit key, at most two per worker
   thread in flight (as the engine keeps its batches); the wall time per task is what
   one batch costs beyond its downloads, and ``BATCH / overhead`` bounds the URLs a
   second one scheduler can hand out.
2. Per URL on the client: ``manyget.download(engine="dask")`` of ``--urls`` URLs from the
   embedded server on the same cluster, with the client's own CPU time (its process;
   the workers are other processes) divided by the URLs.

Prints medians of ``--rounds`` rounds. docs/scale-out.md turns them into an estimate.

    python benchmarks/dask_overhead.py --workers 2 --tasks 2000 --urls 20000 --rounds 3
    python benchmarks/dask_overhead.py --in-flight 200 --urls 2000   # the scheduler's limit

With two tasks a worker in flight (as the engine runs) a task costs a round trip through
the scheduler; with many in flight, the scheduler's own cost per task shows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time


def noop(i: int) -> int:
    return i


def per_task(client: object, tasks: int, window: int) -> float:
    from distributed import as_completed

    start = time.monotonic()
    numbers = iter(range(tasks))
    finished = as_completed(loop=client.loop)  # type: ignore[attr-defined]
    run = f"{time.monotonic_ns()}"
    inflight = 0
    for i in numbers:
        finished.add(client.submit(noop, i, key=f"noop-{run}-{i}", pure=False))  # type: ignore[attr-defined]
        inflight += 1
        if inflight >= window:
            next(finished)
            inflight -= 1
    for _ in finished:
        pass
    return (time.monotonic() - start) / tasks


def client_cpu(address: str, base: str, urls: int, tmp: str) -> tuple[float, float]:
    import manyget

    dest = tempfile.mkdtemp(prefix="manyget-overhead-", dir=tmp)
    try:
        listing = [f"{base}/bytes/16?i={i}" for i in range(urls)]
        cpu = time.process_time()
        start = time.monotonic()
        report = manyget.download(
            listing,
            dest,
            engine="dask",
            scheduler=address,
            concurrency=64,
            per_host=64,
            keep_results=False,
        )
        wall = time.monotonic() - start
        cpu = time.process_time() - cpu
        if report.counts[manyget.Status.OK] != urls:
            raise SystemExit(f"incomplete run: {report.summary()}")
        return cpu / urls, urls / wall
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--urls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--in-flight", type=int, default=0, help="no-op tasks in flight (default: 2 a worker)"
    )
    parser.add_argument("--tmp", default="/dev/shm")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    from manyget._bench._run import embedded_server

    window = args.in_flight or 2 * args.workers
    tasks: list[float] = []
    cpus: list[float] = []
    rates: list[float] = []
    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
        embedded_server(0.0, None) as served,
    ):
        for _ in range(args.rounds):
            tasks.append(per_task(client, args.tasks, window))
            cpu, rate = client_cpu(cluster.scheduler_address, served.base_url, args.urls, args.tmp)
            cpus.append(cpu)
            rates.append(rate)
    task = statistics.median(tasks)
    print(
        f"{args.workers} workers: {1000 * task:.2f} ms a task (median of {args.rounds} x "
        f"{args.tasks} no-op tasks, {window} in flight), i.e. at most "
        f"{1 / task:,.0f} tasks/s = {1000 / task:,.0f} URLs/s in batches of 1,000"
    )
    print(
        f"client: {1e6 * statistics.median(cpus):.0f} us CPU a URL (median of {args.rounds} x "
        f"{args.urls:,} URLs), {statistics.median(rates):,.0f} files/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
