"""``manyget flags``: the book's ``flags2`` demo, option for option, against the embedded
server (or any base URL).

It downloads the flags through a :class:`~manyget.Downloader` like any other list and
prints the book's report; the connection count it announces is the session's own figure
(``sequential`` is one), not a guess of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import string
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._progress import Observer
    from ._results import Report
    from ._server import Faults
    from ._session import Downloader

__all__ = [
    "DEFAULT_DELAY",
    "DEFAULT_ERROR_RATE",
    "FLAG_SERVERS",
    "expand_cc_args",
    "final_report",
    "initial_report",
    "run_demo",
]

EXIT_OK = 0
EXIT_USAGE = 2
REMOTE_FLAGS = "https://www.fluentpython.com/data/flags"
FLAG_SERVERS = ("LOCAL", "DELAY", "ERROR", "REMOTE")
DEFAULT_DELAY = "0.5"
DEFAULT_ERROR_RATE = 0.25


class _FlagsUsage(Exception):
    """A usage error reported the book's way: ``*** Usage error: ...``."""


def expand_cc_args(every: bool, all_: bool, cc_args: Sequence[str], limit: int) -> list[str]:
    """The book's ``expand_cc_args``: ``-e`` over ``-a`` over codes; sorted, limited."""
    from ._server import COUNTRY_CODES

    codes: set[str] = set()
    a_z = string.ascii_uppercase
    if every:
        codes.update(a + b for a in a_z for b in a_z)
    elif all_:
        codes.update(COUNTRY_CODES)
    else:
        for cc in (c.upper() for c in cc_args):
            if len(cc) == 1 and cc in a_z:
                codes.update(cc + c for c in a_z)
            elif len(cc) == 2 and all(c in a_z for c in cc):
                codes.add(cc)
            else:
                raise _FlagsUsage("each CC argument must be A to Z or AA to ZZ.")
    return sorted(codes)[:limit]


def _flags_args(args: argparse.Namespace) -> tuple[list[str], str, str | None]:
    """Validate like the book's ``process_args``; return codes, label and base URL."""
    from ._server import POP20_CC

    if args.max_req is not None and args.max_req < 1:
        raise _FlagsUsage("--max_req CONCURRENT must be >= 1")
    if args.limit < 1:
        raise _FlagsUsage("--limit N must be >= 1")
    server = args.server
    base_url: str | None = None
    if server.upper() in FLAG_SERVERS:
        label = server.upper()
        if label == "REMOTE":
            base_url = REMOTE_FLAGS
    elif server.lower().startswith(("http://", "https://")):
        label, base_url = "CUSTOM", server.rstrip("/")
    elif "://" in server:
        raise _FlagsUsage("--server URL must be http:// or https:// (no other scheme is fetched)")
    else:
        raise _FlagsUsage(
            "--server LABEL must be one of " + ", ".join(sorted(FLAG_SERVERS)) + " or a URL"
        )
    cc_list = expand_cc_args(args.every, args.all, args.cc, args.limit)
    if not cc_list:
        cc_list = sorted(POP20_CC)[: args.limit]
    return cc_list, label, base_url


def _flag_faults(label: str, args: argparse.Namespace) -> Faults:
    from ._server import Faults, parse_delay

    delay = args.delay if args.delay is not None else parse_delay(DEFAULT_DELAY)
    if label == "DELAY":
        return Faults(delay=delay)
    if label == "ERROR":
        return Faults(delay=delay, delay_rate=0.5, error_rate=args.error_rate)
    return Faults()


def initial_report(cc_list: Sequence[str], actual_req: int, label: str, base_url: str) -> None:
    cc_msg = ", ".join(cc_list) if len(cc_list) <= 10 else f"from {cc_list[0]} to {cc_list[-1]}"
    print(f"{label} site: {base_url}")
    plural = "s" if len(cc_list) != 1 else ""
    print(f"Searching for {len(cc_list)} flag{plural}: {cc_msg}")
    if actual_req == 1:
        print("1 connection will be used.")
    else:
        print(f"{actual_req} concurrent connections will be used.")


def final_report(report: Report, elapsed: float) -> None:
    from ._results import Status

    counts = report.counts
    print("-" * 20)
    plural = "s" if counts[Status.OK] != 1 else ""
    print(f"{counts[Status.OK]:3} flag{plural} downloaded.")
    if counts[Status.NOT_FOUND]:
        print(f"{counts[Status.NOT_FOUND]:3} not found.")
    if counts[Status.ERROR]:
        plural = "s" if counts[Status.ERROR] != 1 else ""
        print(f"{counts[Status.ERROR]:3} error{plural}.")
    print(f"Elapsed time: {elapsed:.2f}s")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo as the book's ``flags2`` programs do; the exit status."""
    from ._options import DEFAULT_CONCURRENCY
    from ._session import Downloader

    try:
        cc_list, label, base_url = _flags_args(args)
    except _FlagsUsage as exc:
        print(f"*** Usage error: {exc}")
        print(args.usage, end="")
        return EXIT_USAGE
    max_req = args.max_req if args.max_req is not None else DEFAULT_CONCURRENCY
    wanted = min(max_req, len(cc_list))
    observers: list[Observer] = []
    if not args.verbose and sys.stderr.isatty():
        from ._progress import Bar

        observers.append(Bar(sys.stderr))
    session = Downloader(
        args.dest or "downloads",
        progress=observers,
        engine=args.engine,
        concurrency=wanted,
        per_host=wanted,  # one server, as in the book: -m is the only limit
        retries=args.retries,
        overwrite=True,  # the demo downloads every time, as the book's scripts did
    )
    with contextlib.ExitStack() as stack:
        if base_url is None:
            from ._server import Server

            server = stack.enter_context(Server(faults=_flag_faults(label, args)))
            base_url = server.flags_url
        initial_report(cc_list, session.concurrency, label, base_url)
        _download_flags(session, cc_list, base_url, args.verbose)
    return EXIT_OK


def _download_flags(
    session: Downloader, cc_list: Sequence[str], base_url: str, verbose: bool
) -> None:
    from ._results import Status, Tally

    urls = [f"{base_url}/{cc.lower()}/{cc.lower()}.gif" for cc in cc_list]
    code_of = dict(zip(urls, cc_list, strict=True))
    tally = Tally()
    start = time.perf_counter()
    for result in session.iterate(urls, tally=tally):
        if verbose:
            cc = code_of.get(result.url, "??")
            if result.status is Status.OK:
                print(cc, "OK")
            elif result.status is Status.NOT_FOUND:
                print(cc, f"not found: {result.url}")
            else:
                print(cc, f"error: {result.error}")
    elapsed = time.perf_counter() - start
    report = tally.report(elapsed)
    assert report.total == len(cc_list), "some downloads are unaccounted for"
    final_report(report, elapsed)
