"""Redraw, or print again as a table, the results of ``manyget bench --json``.

python benchmarks/replot.py docs/bench.json docs/bench.png   # the plot
python benchmarks/replot.py docs/bench.json                  # the Markdown table
"""

from __future__ import annotations

import json
import sys

from manyget._bench import plot, table
from manyget._bench._report import from_json


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        results = from_json(json.load(f))
    if len(sys.argv) == 3:
        plot(results, sys.argv[2])
    else:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
