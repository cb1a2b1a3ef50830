"""Watch ``Downloader.map`` run three downloads at a time and hand back results in order.

The experiment of ``demo_executor_map.py`` (from *Fluent Python*, "Concurrency with
Futures") redone with downloads: instead of ``loiter(n)`` sleeping ``n`` time units, the
embedded server's ``/faults/stall/{n}?seconds=S`` route waits ``n`` units (0.5 s each by
default, ``--unit``) before it sends its ``n`` bytes. A ``manyget.Downloader`` session on
the ``threads`` engine, three at a time (``concurrency=3``, ``per_host=3``), downloads them
with ``map``. An observer given as ``progress=`` prints a timestamped line, indented by
``n`` tabs, as each download completes; the ``for`` loop prints each result as ``map``
yields it.

What to notice:

* ``downloader.map`` returns a generator at once, having submitted the URLs already, like
  ``executor.map`` (but at most a window of ``2 x concurrency``, 64 at least, ahead of the
  result awaited, so a long list costs bounded memory); each ``next`` waits for its own;
* only three downloads run at a time: with the default ``4 3 2 1 0`` the server holds
  ``stall(4)``, ``stall(3)`` and ``stall(2)`` first, and ``stall(1)`` starts only when
  ``stall(2)`` ends, 2 units in (its line says it took 1 unit; the time in each line is
  the download's own, from its start), then ``stall(0)`` when a thread is free again;
* the later downloads finish first while their results wait for ``stall(4)``: ``map`` yields
  results in input order, each ``next`` waiting for its own download, so every result
  line comes after ``stall(4): done``. The run takes 4 units, measured at 2.1 s.

    python examples/demo_session_map.py [N ...] [--unit S]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import manyget
from manyget._server import Server

UNIT = 0.5  # seconds of server stall per unit of n, set by --unit
T0 = time.perf_counter()


def display(*args: object) -> None:
    line = " ".join(map(str, args))
    # One write per line: the session's thread prints too, and print(a, b) writes piecemeal.
    print(f"[{time.perf_counter() - T0:5.2f}s] {line}\n", end="", flush=True)


def stall_n(url: str) -> int:
    """The ``n`` of a ``/faults/stall/{n}?seconds=S`` URL."""
    return int(url.split("?", 1)[0].rsplit("/", 1)[1])


class Done:
    """An observer: the session calls ``result`` on its own thread as a download completes."""

    def started(self, total: int | None) -> None:
        pass

    def result(self, result: manyget.Result) -> None:
        n = stall_n(result.url)
        indent = "\t" * n
        display(f"{indent}stall({n}): done, {result.status.value} in {result.seconds:.2f}s.")

    def finished(self, report: manyget.Report) -> None:
        pass


def main() -> None:
    global UNIT
    parser = argparse.ArgumentParser(description="Watch Downloader.map at work.")
    parser.add_argument(
        "n", type=int, nargs="*", default=[4, 3, 2, 1, 0], help="default: 4 3 2 1 0"
    )
    parser.add_argument("--unit", type=float, default=UNIT, help="seconds per n (0.5)")
    args = parser.parse_args()
    UNIT = args.unit

    display("Script starting.")
    with Server() as server, tempfile.TemporaryDirectory() as tmp:
        urls = [f"{server.url}/faults/stall/{n}?seconds={n * UNIT:g}" for n in args.n]
        with manyget.Downloader(
            tmp, engine="threads", concurrency=3, per_host=3, progress=Done()
        ) as downloader:
            results = downloader.map(urls)
            display("results:", results)
            display("Waiting for individual results:")
            for i, result in enumerate(results):
                display(f"result {i}: stall({stall_n(result.url)}), {result.bytes} B")
    display(f"Done in {time.perf_counter() - T0:.2f}s")


if __name__ == "__main__":
    main()
