"""Download the 20 flags with coroutines on one event loop: ``engine="asyncio"``.

Mirrors ``flags_asyncio.py`` from *Fluent Python*, "Concurrency with Futures" (and the
asyncio chapter after it). manyget keeps the event loop to itself, in a thread of its own:
``iter_download`` is a plain iterator that yields each ``Result`` as soon as its download
completes, so this file needs no ``async def`` and would work inside a running loop too.

What to notice: no executor and no thread per download, yet the downloads overlap, and
with ``--delay 0.5`` all 20 take about 0.5 s: up to 64 coroutines wait at once. The codes
print in completion order; ``--delay 0.1:0.9`` makes that visible, as random delays make
the downloads finish in a jumble.

    python examples/flags_asyncio.py [--delay S | --delay LOW:HIGH] [-d DIR]
"""

from __future__ import annotations

from pathlib import Path

from flags_sequential import flag_url, label, main

import manyget


def download_many(cc_list: list[str], base_url: str, dest: Path) -> int:
    urls = [flag_url(base_url, cc) for cc in sorted(cc_list)]
    count = 0
    for result in manyget.iter_download(urls, dest, engine="asyncio"):
        print(label(result), end=" ", flush=True)
        count += result.ok
    return count


if __name__ == "__main__":
    main(download_many)
