"""Download the 20 flags on a ``ProcessPoolExecutor``, handed to ``manyget.download``.

Mirrors ``flags_processpool.py`` from *Fluent Python*, "Concurrency with Futures", where
swapping ``ThreadPoolExecutor`` for ``ProcessPoolExecutor`` is a one-line change. Here the
pool goes to ``manyget.download(..., executor=...)``, which runs its downloads on any
``concurrent.futures.Executor`` through a bounded window of futures.

What to notice: the time is worse than with threads. The pool must start its worker
processes, and each imports manyget before its first download: that start-up cost is most of
the run against the local server (measured at 0.24-0.27 s for the 20 flags, where the
threads version takes 0.12-0.13 s). And there is one worker per core, so with
``--delay 0.5`` on 2 cores the 20 downloads take 10 rounds of 0.5 s: measured at 5.2 s.
Processes pay off for CPU-bound work; downloading is I/O-bound, which threads (or
manyget's ``processes`` engine, which runs threads inside each worker) handle far better.

The pool uses the ``forkserver`` start method (``spawn`` where there is none), as manyget's
own ``processes`` engine does: plain ``fork`` would copy this process while the embedded
server's thread is running, which can deadlock a child. Under ``forkserver`` and ``spawn``
each worker imports this file again, hence the ``if __name__ == "__main__":`` guard.

    python examples/flags_processpool.py [--delay S | --delay LOW:HIGH] [-d DIR]
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from flags_sequential import flag_url, main

import manyget


def download_many(cc_list: list[str], base_url: str, dest: Path) -> int:
    urls = [flag_url(base_url, cc) for cc in sorted(cc_list)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    with ProcessPoolExecutor(mp_context=context) as executor:
        report = manyget.download(urls, dest, executor=executor)
    print(report.summary(), end="")
    return report.counts[manyget.Status.OK]


if __name__ == "__main__":
    main(download_many)
