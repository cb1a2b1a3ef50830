"""Watch ``executor.map`` run ``loiter`` three calls at a time and hand back results in order.

Mirrors ``demo_executor_map.py`` from *Fluent Python*, "Concurrency with Futures". It needs
no server: ``loiter(n)`` only sleeps ``n`` time units (0.5 s each by default, ``--unit``),
printing a timestamped line, indented by ``n`` tabs, when it starts and when it ends.

What to notice:

* ``executor.map`` returns at once, a generator, before any call has finished;
* only three calls run at a time (``max_workers=3``): ``loiter(3)`` starts when
  ``loiter(0)`` ends, and ``loiter(4)`` when ``loiter(1)`` ends;
* the ``for`` loop gets results in the order the calls were submitted, each ``next`` waiting
  for its own call. Run ``python examples/demo_executor_map.py 4 3 2 1 0`` to see the later
  calls finish first while their results wait for ``loiter(4)``. At 0.5 s a unit the first
  run takes 5 units (``loiter(4)`` starts 1 unit in), measured at 2.5 s; this one 4 units,
  measured at 2.0 s.

``demo_session_map.py`` runs the same experiment with downloads and ``Downloader.map``.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

UNIT = 0.5  # seconds of sleep per unit of n, set by --unit
T0 = time.perf_counter()


def display(*args: object) -> None:
    line = " ".join(map(str, args))
    # One write per line: several threads print at once, and print(a, b) writes piecemeal.
    print(f"[{time.perf_counter() - T0:5.2f}s] {line}\n", end="", flush=True)


def loiter(n: int) -> int:
    indent = "\t" * n
    display(f"{indent}loiter({n}): doing nothing for {n * UNIT:g}s...")
    time.sleep(n * UNIT)
    display(f"{indent}loiter({n}): done.")
    return n * 10


def main() -> None:
    global UNIT
    parser = argparse.ArgumentParser(description="Watch executor.map at work.")
    parser.add_argument("n", type=int, nargs="*", default=range(5), help="default: 0 1 2 3 4")
    parser.add_argument("--unit", type=float, default=UNIT, help="seconds per n (0.5)")
    args = parser.parse_args()
    UNIT = args.unit

    display("Script starting.")
    with ThreadPoolExecutor(max_workers=3) as executor:
        results = executor.map(loiter, args.n)
        display("results:", results)
        display("Waiting for individual results:")
        for i, result in enumerate(results):
            display(f"result {i}: {result}")
    display(f"Done in {time.perf_counter() - T0:.2f}s")


if __name__ == "__main__":
    main()
