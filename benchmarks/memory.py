"""Peak memory of a long URL generator through iter_download stays flat.

Starts `manyget serve` as a separate process on a free loopback port, then streams N URLs
(`/bytes/16?i=K`: one file name for all, so every URL after the first gets a distinct
suffixed name, the worst case for the name table) through `iter_download` into a tmpfs
folder, recording the process's peak RSS after the first 10% and at the end. Prints both
and exits 1 if the end peak exceeds the early one by more than the allowed growth.

    python benchmarks/memory.py [--urls 200000] [--engine multi] [--max-growth-mb 30]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator

import manyget
from manyget._bench._run import embedded_server


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=200_000)
    parser.add_argument("--engine", default="multi")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-growth-mb", type=float, default=30.0)
    args = parser.parse_args()

    with embedded_server(0.0, None) as served:
        return measure(args, served.base_url)


def measure(args: argparse.Namespace, base: str) -> int:
    dest = tempfile.mkdtemp(prefix="manyget-mem-", dir="/dev/shm")
    early = 0.0
    checkpoint = max(1, args.urls // 10)

    def urls() -> Iterator[str]:
        for i in range(args.urls):
            yield f"{base}/bytes/16?i={i}"

    try:
        start = time.perf_counter()
        ok = 0
        for n, result in enumerate(
            manyget.iter_download(
                urls(),
                dest,
                engine=args.engine,
                concurrency=args.concurrency,
                per_host=args.concurrency,  # one server: -j is the only limit
            ),
            start=1,
        ):
            ok += result.ok
            if n == checkpoint:
                early = peak_rss_mb()
        elapsed = time.perf_counter() - start
        final = peak_rss_mb()  # before the clean-up below, which has peaks of its own
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    print(
        f"{args.urls:,} URLs, engine {args.engine}: {ok:,} ok in {elapsed:.1f}s "
        f"({args.urls / elapsed:,.0f} files/s); peak RSS after {checkpoint:,}: {early:.1f} MB, "
        f"at the end: {final:.1f} MB (growth {final - early:+.1f} MB)"
    )
    return 0 if ok == args.urls and final - early <= args.max_growth_mb else 1


if __name__ == "__main__":
    sys.exit(main())
