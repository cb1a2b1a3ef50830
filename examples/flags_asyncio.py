"""Download the 20 flags with coroutines on one event loop: ``manyget.aiter_download``.

Mirrors ``flags_asyncio.py`` from *Fluent Python*, "Concurrency with Futures" (and the
asyncio chapter after it). This is an asyncio program: ``asyncio.run`` starts the event
loop, and ``async for`` takes each ``Result`` from ``manyget.aiter_download`` as soon as
its download completes. manyget drives its transfers on that same loop, the caller's, and
does not block it (beyond importing its engine on first use, measured at 60 ms): other
coroutines could run alongside.

What to notice: no executor and no thread per download, yet the downloads overlap. With
``--delay 0.5`` all 20 take about 0.5 s, measured at 0.57 s: they all wait at once, since
``per_host=20`` lets all 20 go to the one flag server (manyget's default is 8 connections
per host, which makes 3 rounds: measured at 1.5 s). The codes print in completion order;
``--delay 0.1:0.9`` makes that visible, as random delays make the downloads finish in a
jumble.

    python examples/flags_asyncio.py [--delay S | --delay LOW:HIGH] [-d DIR]
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from flags_sequential import flag_url, label, main

import manyget


async def supervisor(urls: list[str], dest: Path) -> int:
    count = 0
    async for result in manyget.aiter_download(urls, dest, per_host=len(urls)):
        print(label(result), end=" ", flush=True)
        count += result.ok
    return count


def download_many(cc_list: list[str], base_url: str, dest: Path) -> int:
    urls = [flag_url(base_url, cc) for cc in sorted(cc_list)]
    return asyncio.run(supervisor(urls, dest))


if __name__ == "__main__":
    main(download_many)
