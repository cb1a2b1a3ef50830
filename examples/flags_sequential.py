"""Download the flags of the 20 most populous countries, one after another.

Mirrors ``flags.py`` from *Fluent Python*, "Concurrency with Futures": the sequential
baseline that every concurrent version is measured against. Like the book's ``flags.py`` it
also holds the ``main`` that the other flag examples import: it starts the embedded flag
server, times one call of ``download_many(cc_list, base_url, dest)`` and prints the count.

What to notice: each flag waits for the previous one, so the run takes the sum of all the
round trips. Against the book's DELAY server (``--delay 0.5``) that is about 20 x 0.5 s =
10 s, measured at 10.1 s, where the asyncio version takes about half a second (0.57 s).
``--delay 0.1:0.9`` draws each delay at random between the two bounds. The embedded server
draws each flag image the first time it is asked for it (about 0.1 s for the 20); ``main`` has
them drawn before the clock starts, so the times are those of the downloads.

    python examples/flags_sequential.py [--delay S | --delay LOW:HIGH] [-d DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import manyget
from manyget._server import POP20_CC, Faults, Server, flag_gif, parse_delay

Downloader = Callable[[list[str], str, Path], int]


def flag_url(base_url: str, cc: str) -> str:
    return f"{base_url}/{cc.lower()}/{cc.lower()}.gif"


def label(result: manyget.Result) -> str:
    """The country code of a flag's result, with the reason if it was not saved."""
    cc = result.url.rsplit("/", 1)[-1].removesuffix(".gif").upper()
    return cc if result.ok else f"{cc}({result.error})"


def download_many(cc_list: list[str], base_url: str, dest: Path) -> int:
    urls = [flag_url(base_url, cc) for cc in sorted(cc_list)]
    count = 0
    for result in manyget.iter_download(urls, dest, engine="sequential"):
        print(label(result), end=" ", flush=True)
        count += result.ok
    return count


def main(download_many: Downloader, cc_list: Sequence[str] = POP20_CC) -> None:
    parser = argparse.ArgumentParser(description="Download flags from the embedded server.")
    parser.add_argument(
        "--delay",
        type=parse_delay,
        default=(0.0, 0.0),
        metavar="S",
        help="the server waits S (or LOW:HIGH) seconds per response, as the book's DELAY server",
    )
    parser.add_argument(
        "-d",
        "--dest",
        metavar="DIR",
        help="save the flags in DIR (default: a temporary folder, removed at exit)",
    )
    args = parser.parse_args()
    for cc in cc_list:
        flag_gif(cc)  # the server draws each flag once, when first asked: not on the clock
    with Server(faults=Faults(delay=args.delay)) as server, tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        count = download_many(list(cc_list), server.flags_url, Path(args.dest or tmp))
        elapsed = time.perf_counter() - t0
    print(f"\n{count} flags downloaded in {elapsed:.2f}s")


if __name__ == "__main__":
    main(download_many)
