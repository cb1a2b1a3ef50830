"""The ``manyget`` command line: ``get``, ``flags``, ``serve`` and ``bench``.

Only this module prints reports and calls ``sys.exit``. Exit statuses: 0 every download
complete, 1 some downloads failed, 2 usage or input error, 3 local I/O error (the
destination), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Heavy modules are
imported inside the commands so ``manyget --help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

from . import __version__
from ._engines import DEFAULT_ENGINE, ENGINES
from ._exceptions import DestinationError, ManygetError, ServerError, UsageError
from ._flags import DEFAULT_DELAY, DEFAULT_ERROR_RATE

if TYPE_CHECKING:
    import logging

    from ._config import Config
    from ._jobs import Line, _Pending
    from ._options import Options
    from ._progress import Bar, Observer, Ticker
    from ._results import Report

__all__ = ["console", "main"]

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCAL_IO = 3


def _int_at_least(least: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _size(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number, unit = text.strip(), ""
    if number[-1:].upper() in units:
        number, unit = number[:-1], number[-1].upper()
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _split_count(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number or 'auto': {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 or 'auto', got {text}")
    return value


def _bandwidth(text: str) -> int:
    value = _size(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a probability: {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _delay(text: str) -> tuple[float, float]:
    from ._server import parse_delay

    try:
        return parse_delay(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=list(ENGINES),
        default=DEFAULT_ENGINE,
        help=f"how downloads run at once (default: {DEFAULT_ENGINE})",
    )
    parser.add_argument(
        "-d",
        "--dest",
        default=None,
        help="folder to save into; it must exist (default: downloads, created if missing); "
        "or an object-store URL, s3://BUCKET/PREFIX (any fsspec URL; needs manyget[s3])",
    )


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: the error, then where the help is (exit 2).

    ``book_style`` parsers (``flags``) report as the book's scripts do: ``*** Usage
    error: ...`` and the usage block, on stdout.
    """

    def __init__(self, *args: Any, book_style: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.book_style = book_style
        self.commands: dict[str, argparse.ArgumentParser] = {}  # subcommands by name

    def error(self, message: str) -> NoReturn:
        if self.book_style:
            print(f"*** Usage error: {message}")
            self.print_usage(sys.stdout)
            self.exit(EXIT_USAGE)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nTry '{self.prog} --help'.\n")


def _unrecognized(extra: Sequence[str]) -> str:
    """The error for arguments no option took, naming options only: a value may be a
    secret typed after a mistyped option, and is never echoed."""
    options = [arg.partition("=")[0] for arg in extra if arg.startswith("-") and arg != "-"]
    if options:
        plural = "s" if len(options) > 1 else ""
        return f"unrecognized option{plural}: {' '.join(options)}"
    plural = "s" if len(extra) > 1 else ""
    return f"{len(extra)} unexpected argument{plural}"


def _tree(text: str) -> tuple[str, str]:
    """``NAME=SRC``: a version of manyget for ``bench`` and the folder it runs from."""
    name, equals, source = text.partition("=")
    if not equals or not name or not source:
        raise argparse.ArgumentTypeError(f"expected NAME=SRC, got {text!r}")
    return name, os.path.abspath(source)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, got {port}")
    return port


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    """What each request carries: headers, credentials, cookies, proxy, TLS, protocol."""
    group = parser.add_argument_group("requests")
    group.add_argument(
        "-H",
        "--header",
        dest="headers",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="send this header (repeatable); on a redirect to another origin only Accept, "
        "Accept-Language, Cache-Control, DNT, Pragma and User-Agent follow",
    )
    group.add_argument("-A", "--user-agent", metavar="TEXT", help="default: manyget/VERSION")
    group.add_argument("--referer", metavar="URL", help="send this Referer")
    group.add_argument(
        "-u",
        "--user",
        metavar="USER[:PASS]",
        help="credentials for the URLs' own origins, never a redirect's other origin "
        "(the password is asked for when missing and stdin is a terminal)",
    )
    group.add_argument(
        "--netrc", action="store_true", help="read credentials by host from ~/.netrc"
    )
    group.add_argument("--netrc-file", metavar="FILE", help="read credentials from FILE")
    group.add_argument(
        "-b",
        "--cookie",
        metavar="FILE|'K=V; ...'",
        help="cookies: a Netscape cookie file, or name=value pairs for each URL's own host",
    )
    group.add_argument(
        "-c",
        "--cookie-jar",
        metavar="FILE",
        help="write every cookie of the run to FILE (Netscape format) when it ends",
    )
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="http://, https://, socks5:// or socks5h:// proxy (default: from http_proxy, "
        "https_proxy, all_proxy)",
    )
    group.add_argument("--noproxy", metavar="HOSTS", help="comma-separated hosts reached directly")
    group.add_argument(
        "--cacert",
        metavar="FILE",
        default=None,
        help="also trust the certificates in this PEM file",
    )
    group.add_argument("--capath", metavar="DIR", help="also trust the certificates in DIR")
    group.add_argument("--cert", metavar="FILE", help="client certificate (PEM)")
    group.add_argument("--key", metavar="FILE", help="client certificate's private key (PEM)")
    group.add_argument(
        "-k",
        "--insecure",
        action="store_true",
        help="do not check server certificates (a warning is printed on every run)",
    )
    group.add_argument("--tls-min", choices=["1.2", "1.3"], help="lowest TLS version accepted")
    http = group.add_mutually_exclusive_group()
    http.add_argument(
        "--http1.1", dest="http", action="store_const", const="1.1",
        help="HTTP/1.1 only (default: HTTP/2 over TLS when the server offers it)",
    )  # fmt: skip
    http.add_argument(
        "--http2-prior-knowledge", dest="http", action="store_const",
        const="2-prior-knowledge", help="HTTP/2 without TLS (h2c)",
    )  # fmt: skip
    http.add_argument(
        "--http3", dest="http", action="store_const", const="3",
        help="try HTTP/3 (QUIC) over https, falling back to HTTP/2 or 1.1",
    )  # fmt: skip
    group.add_argument(
        "--compressed",
        action="store_true",
        help="ask for gzip, br or zstd and save the decoded body (such files are not "
        "resumed; default: the bytes as served)",
    )


def _user(text: str | None) -> str | None:
    """``-u USER`` without a password asks for one when stdin is a terminal."""
    if text is None or ":" in text or not sys.stdin.isatty():
        return text
    import getpass

    try:
        password = getpass.getpass(f"password for {text}: ")
    except EOFError:  # Ctrl-D at the prompt
        print(file=sys.stderr)  # end the prompt's line
        raise UsageError(f"no password given for {text!r} (end of input at the prompt)") from None
    return f"{text}:{password}"


def build_parser() -> _Parser:
    parser = _Parser(
        prog="manyget",
        description="Download many files concurrently: fast, polite, without losing a byte.",
        epilog="Exit status: 0 all complete, 1 some downloads failed, 2 usage or input "
        "error, 3 local I/O error, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).",
    )
    parser.add_argument("--version", action="version", version=f"manyget {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    get = commands.add_parser("get", help="download a list of URLs into a folder")
    get.add_argument("urls", metavar="URL", nargs="*", help="URLs to download")
    get.add_argument(
        "-i", "--input", metavar="FILE", help="read URLs from FILE, one a line ('-': stdin)"
    )
    get.add_argument(
        "--input-format",
        choices=["lines", "jsonl"],
        default=None,
        help="the list's format: URLs a line (also aria2c's input files), or JSON lines "
        "(default: jsonl for a FILE ending in .jsonl)",
    )
    _add_engine_options(get)
    get.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="N",
        help="downloads at once (default: 64)",
    )
    get.add_argument(
        "--per-host",
        type=_positive_int,
        default=None,
        metavar="N",
        help="downloads at once from one host (default: 8)",
    )
    get.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="S",
        help="seconds to connect, and with no byte received (default: 10 and 30)",
    )
    get.add_argument(
        "--retries",
        type=_non_negative_int,
        default=3,
        metavar="N",
        help="retries after a transient failure (default: 3)",
    )
    get.add_argument(
        "--retry-max-wait",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="longest wait before a retry, Retry-After included (default: 30)",
    )
    get.add_argument(
        "--max-size",
        type=_size,
        default=None,
        metavar="BYTES",
        help="stop any body larger than this (suffixes K, M, G: powers of 1024)",
    )
    get.add_argument(
        "--split",
        type=_split_count,
        default=None,
        metavar="N|auto",
        help="fetch a large file as up to N byte ranges at once (1: one stream); each "
        "range counts against --per-host. Default auto: one stream, whose rest goes as "
        "up to 8 ranges once it would take over 2 s more at its rate",
    )
    get.add_argument(
        "--min-split-size",
        type=_size,
        default=None,
        metavar="SIZE",
        help="split only files of at least twice SIZE, in pieces of at least SIZE "
        "(default 16M; K, M, G: powers of 1024; at least 64K)",
    )
    get.add_argument(
        "--limit-rate",
        type=_bandwidth,
        default=None,
        metavar="RATE",
        help="cap the whole run at RATE bytes a second (K, M, G: powers of 1024)",
    )
    get.add_argument(
        "--limit-rate-host",
        type=_bandwidth,
        default=None,
        metavar="RATE",
        help="cap what comes from any one host at RATE bytes a second",
    )
    get.add_argument(
        "--max-rps",
        type=_positive_float,
        default=None,
        metavar="N",
        help="start at most N requests a second to any one host",
    )
    get.add_argument(
        "--allow-downgrade",
        action="store_true",
        help="follow redirects from https to http (refused by default)",
    )
    get.add_argument(
        "--content-disposition",
        action="store_true",
        help="name files as the server's Content-Disposition says (made safe; "
        "default: from the URL)",
    )
    get.add_argument(
        "--checksums",
        metavar="FILE|URL",
        help="verify each file by name against a sha256sum file (or its URL); a file that "
        "does not match is never published",
    )
    get.add_argument(
        "--overwrite",
        action="store_true",
        help="download again files that are already complete (default: skip them)",
    )
    get.add_argument(
        "--staging",
        metavar="DIR",
        help="with an object-store -d: download into DIR before uploading, and keep "
        "partial files there for a resume (default: a private temporary folder per run, "
        "removed at its end, so an interrupted file restarts from zero)",
    )
    get.add_argument(
        "--journal",
        nargs="?",
        const=True,
        default=None,
        metavar="FILE",
        help="record each URL's outcome in a SQLite journal (FILE, or "
        "DEST/.manyget-journal.sqlite); a rerun skips what it records as done",
    )
    get.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="--engine dask: the Dask scheduler, tcp://HOST:PORT (default: "
        "$DASK_SCHEDULER_ADDRESS, else a local cluster on this machine's cores)",
    )
    get.add_argument(
        "--retry-failed",
        metavar="JOURNAL",
        default=None,
        help="download again the URLs JOURNAL records as failed (under their names, into "
        "its destination unless -d is given), recording the outcome in it",
    )
    _add_request_options(get)
    out = get.add_mutually_exclusive_group()
    out.add_argument("-v", "--verbose", action="store_true", help="one line per URL")
    out.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    get.add_argument("--json", action="store_true", help="one JSON object per URL on stdout")
    get.add_argument(
        "--no-config",
        action="store_true",
        help="ignore the config file (see 'manyget config')",
    )
    get.add_argument(
        "--log-file",
        metavar="FILE",
        help="append every attempt, retry, redirect and resume, with a timestamp, to FILE",
    )

    flags = commands.add_parser(
        "flags",
        book_style=True,
        help="the Fluent Python flags demo against an embedded server",
        description="Download flags for country codes. Default: top 20 countries by "
        "population. With -s LOCAL, DELAY or ERROR an embedded server is started on "
        "a free loopback port for the run.",
    )
    flags.add_argument(
        "cc", metavar="CC", nargs="*", help="country code or 1st letter (eg. B for BA...BZ)"
    )
    flags.add_argument(
        "-a", "--all", action="store_true", help="get all available flags (AD to ZW)"
    )
    flags.add_argument(
        "-e",
        "--every",
        action="store_true",
        help="get flags for every possible code (AA...ZZ)",
    )
    flags.add_argument(
        "-l",
        "--limit",
        metavar="N",
        type=int,
        default=sys.maxsize,
        help="limit to N first codes",
    )
    flags.add_argument(
        "-m",
        "--max-req",
        "--max_req",
        metavar="CONCURRENT",
        type=int,
        default=None,
        dest="max_req",
        help="maximum concurrent requests (default: 64)",
    )
    flags.add_argument(
        "-s",
        "--server",
        metavar="LABEL",
        default="LOCAL",
        help="server to hit: LOCAL, DELAY, ERROR, REMOTE or a base URL (default: LOCAL)",
    )
    flags.add_argument(
        "-v", "--verbose", action="store_true", help="output detailed progress info"
    )
    _add_engine_options(flags)
    flags.add_argument(
        "--retries",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="retry failed requests N times (default: 0, as in the book)",
    )
    flags.add_argument(
        "--delay",
        type=_delay,
        default=None,
        metavar="S|MIN:MAX",
        help=f"latency of the DELAY and ERROR servers (default: {DEFAULT_DELAY})",
    )
    flags.add_argument(
        "--error-rate",
        type=_rate,
        default=DEFAULT_ERROR_RATE,
        metavar="P",
        help="share of requests the ERROR server fails (default: 0.25)",
    )
    flags.set_defaults(usage=flags.format_usage())

    config = commands.add_parser(
        "config",
        help="print the settings 'manyget get' would use, and where each comes from",
        description="Print the defaults of 'manyget get' in effect: built in, or from the "
        "config file ($MANYGET_CONFIG, else $XDG_CONFIG_HOME/manyget/config.toml, else "
        "~/.config/manyget/config.toml), whose [get] table takes get's long options.",
    )
    config.add_argument("--no-config", action="store_true", help="ignore the config file")

    status = commands.add_parser(
        "status",
        help="summarise a journal: URLs and bytes by state, failures by reason and host",
        description="Summarise a journal written by 'manyget get --journal'.",
        epilog="Exit status: 0 nothing recorded as failed, 1 some URLs failed, 2 the "
        "journal is missing or is not a manyget journal.",
    )
    status.add_argument("journal", metavar="JOURNAL", help="the journal file")

    serve = commands.add_parser(
        "serve",
        help="run the flag server in the foreground",
        description="Serve /flags/{cc}/{cc}.gif and /flags/{cc}/metadata.json for the "
        "book's 194 countries (or any folder with --data) until interrupted.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8001, help="port, 0 for any free one (default: 8001)"
    )
    serve.add_argument(
        "--delay",
        type=_delay,
        default=(0.0, 0.0),
        metavar="S|MIN:MAX",
        help="add S seconds, or between MIN and MAX, to every request",
    )
    serve.add_argument(
        "--error-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="answer this share of requests with a 5xx error",
    )
    serve.add_argument(
        "--delay-rate",
        type=_rate,
        default=1.0,
        metavar="P",
        help="delay only this share of requests (default: 1, every one); the book's ERROR "
        "server is --delay 0.5 --delay-rate 0.5 --error-rate 0.25",
    )
    serve.add_argument(
        "--error-status",
        type=_int_at_least(400),
        default=None,
        metavar="CODE",
        help="answer every failure with this status (default: 500, 502 or 503); the book's "
        "slow server is --delay 0.5:5 --error-rate 0.25 --error-status 418",
    )
    serve.add_argument(
        "--seed", type=int, default=None, metavar="N", help="replay the same faults in order"
    )
    serve.add_argument("--data", metavar="DIR", default=None, help="serve this folder")
    serve.add_argument(
        "--faults",
        action="store_true",
        help="also serve /faults/...: routes that misbehave on purpose, to try download "
        "tools on (GET /faults/ lists them; keep such a server on loopback)",
    )
    serve.add_argument(
        "--hidden",
        action="store_true",
        help="with --data, also serve files and folders whose name starts with a dot",
    )
    serve.add_argument(
        "--header-timeout",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="seconds a client has to send a request's head; then 408 (default: 10)",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=_seconds,
        default=15.0,
        metavar="S",
        help="seconds an idle connection stays open between requests (default: 15)",
    )
    serve.add_argument(
        "--send-timeout",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="seconds a client may take nothing of an answer before it is dropped (default: 30)",
    )
    serve.add_argument(
        "--max-connections",
        type=_positive_int,
        default=None,
        metavar="N",
        help="open connections; more wait to be accepted (default: the descriptor limit - 32)",
    )
    bench = commands.add_parser(
        "bench",
        help="measure manyget's engines against other downloaders on loopback",
        description="Start a loopback server, download each scenario with every engine and "
        "every outside tool found (strictly one at a time, rotating the order each round), "
        "verify every file, and print medians. Scenarios: S1 and S1@20 (194 flags, 0.1 s "
        "latency, 64 or 20 at once), S2 (10,000 files of 4-16 KB), S3 (4 x 128 MiB), S4 "
        "(1 GiB, 16 connections capped at 50 MiB/s each; needs --nginx), S5 (1 GiB, no "
        "cap), BOOK (the book's styles on the DELAY server), tiny (a smoke test). Exit "
        "status 1 if a manyget run did not download everything, 3 if a server or the "
        "files to serve could not be set up.",
    )
    bench.add_argument(
        "--scenario",
        "--scenarios",
        dest="scenarios",
        type=_names,
        default=None,
        metavar="LIST",
        help="comma-separated scenarios (default: S1,S1@20,S2,S3,BOOK)",
    )
    bench.add_argument(
        "--engines",
        type=_names,
        default=None,
        metavar="LIST",
        help="manyget engines to run (default: the concurrent ones; BOOK adds sequential)",
    )
    bench.add_argument(
        "--against",
        type=_names,
        default=None,
        metavar="LIST",
        help="outside tools: aria2c,curl,wget2,parfive (default: all; 'none' for none)",
    )
    bench.add_argument(
        "--runs", type=_positive_int, default=5, metavar="N", help="runs of each (default: 5)"
    )
    bench.add_argument("--plot", metavar="FILE.png", help="draw the results (needs matplotlib)")
    bench.add_argument(
        "--json",
        action="store_true",
        help="print every run as JSON on stdout (the table goes to stderr)",
    )
    bench.add_argument(
        "--nginx",
        action="store_true",
        help="serve S2, S3, S4, S5 and tiny from a private nginx (S4 needs it)",
    )
    bench.add_argument(
        "--tmp",
        metavar="DIR",
        default=None,
        help="where served files and downloads go (default: /dev/shm if present)",
    )
    bench.add_argument(
        "--tree",
        dest="trees",
        type=_tree,
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="race manyget from the source folder SRC (its src/), named NAME; repeat it "
        "to compare versions in one run (default: the installed manyget)",
    )
    bench.add_argument(
        "--timeout",
        type=_seconds,
        default=600.0,
        metavar="S",
        help="stop a run after S seconds; it counts as incomplete (default: 600)",
    )
    parser.commands = dict(commands.choices)
    return parser


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


class _Signals:
    """Ctrl-C and SIGTERM stop a run cleanly; the second one exits at once.

    The first signal raises KeyboardInterrupt in the main thread: engines stop scheduling,
    cancel what is in flight and clean up on the way out, and the command prints its
    partial summary. A second signal ends the process immediately. The previous handlers
    come back on exit, so calling :func:`main` in-process leaves no trace.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: object) -> None:
        if self.received is not None:
            os._exit(128 + self.received)
        self.received = signum
        raise KeyboardInterrupt

    @property
    def exit_status(self) -> int:
        return 128 + (self.received or signal.SIGINT)


def console() -> None:
    """The ``manyget`` program: :func:`main`, then exit without tearing the interpreter down.

    By the time ``main`` returns every download file is closed and every server and worker
    stopped, so what is left is freeing memory object by object and unloading libraries:
    about 11 ms on a run of the 194 flags, a tenth of the gap to the latency limit. Output
    is flushed first; ``main`` itself, which tests and embedders call, exits normally.
    """
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it anyway
            status = status or EXIT_FAILED
    os._exit(status)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            parser.commands.get(args.command, parser).error(_unrecognized(extra))
        if args.command in ("get", "config"):
            config = _read_config(parser, args.no_config)
            if config.values:  # defaults from the file; the command line still wins
                parser.commands["get"].set_defaults(**config.values)
                args = parser.parse_args(argv)
            args.config = config
    except SystemExit as exc:
        if not exc.code:
            raise  # --help or --version: argparse's own exit
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE  # reported already
    except ManygetError as exc:  # a bad config file
        _say(f"manyget: error: {exc}")
        return EXIT_USAGE
    if args.command == "config":
        return _show_config(parser, args.config)
    if args.command == "status":
        return _status(args)
    if args.command == "serve":
        return _serve(args)  # the server handles its own signals
    signals = _Signals()
    try:
        with signals:
            if args.command == "get":
                return _get(args)
            if args.command == "bench":
                return _bench(args)
            return _flags(args)
    except KeyboardInterrupt:
        print("manyget: interrupted", file=sys.stderr)
        return signals.exit_status
    except (DestinationError, ServerError) as exc:
        _say(f"manyget: error: {exc}")
        return EXIT_LOCAL_IO
    except ManygetError as exc:
        _say(f"manyget: error: {exc}")
        return EXIT_USAGE


def _say(line: str) -> None:
    """Print a human line on stderr, its control characters escaped."""
    from ._jobs import printable

    print(printable(line), file=sys.stderr)


# --------------------------------------------------------------------------- get


def _open_list(name: str) -> IO[str]:
    # Bytes that are not UTF-8 become lone surrogates, which planning reports as a bad
    # line; the rest of the list goes on.
    if name == "-":
        try:
            fd = sys.stdin.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):  # replaced by an in-memory one
            return sys.stdin
        return open(fd, encoding="utf-8", errors="surrogateescape", newline=None, closefd=False)
    try:
        return open(name, encoding="utf-8", errors="surrogateescape", newline=None)
    except OSError as exc:
        from ._exceptions import InputError

        raise InputError(f"cannot read URL list {name!r}: {exc.strerror or exc}") from exc


def _is_slow(stream: IO[str]) -> bool:
    """Whether reading ``stream`` may block for long: anything but a regular file."""
    try:
        return not stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):  # no descriptor: in memory
        return False


def _dest(args: argparse.Namespace) -> str:
    """The destination: a folder named with -d must exist; the default one is created."""
    if args.dest is None:
        return "downloads"
    from ._store import is_url, local_path

    if is_url(args.dest):
        return str(args.dest)  # checked by the session, before any request
    if not os.path.exists(local_path(args.dest) or args.dest):
        raise DestinationError(
            f"destination {args.dest!r} does not exist (create it, or leave out -d to use "
            "./downloads)"
        )
    return str(args.dest)


def _checksums(source: str, options: Options) -> dict[str, str]:
    """``--checksums``: a sha256sum file, or its URL (fetched first, with the run's own
    request options, into a temporary folder)."""
    from ._options import load_checksums

    if not source.lower().startswith(("http://", "https://")):
        return load_checksums(source)
    import tempfile

    from ._session import iter_download

    fetch: Options = {k: v for k, v in options.items() if k != "cookie_jar"}  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="manyget-sums-") as folder:
        (result,) = iter_download([source], folder, **fetch)
        if not result.ok or result.path is None:
            raise UsageError(f"cannot fetch checksums from {source}: {result.error}")
        return load_checksums(result.path)


def _count_on_the_side(path: str, extra: int, bar: Bar | Ticker) -> None:
    """Count the entries of list file ``path`` on a thread of its own and give the bar its
    total (plus ``extra`` URLs from the arguments): an ETA from the start, without
    reading the list first or holding it in memory."""

    def count() -> None:
        entries = 0
        try:
            with open(path, "rb") as f:
                for line in f:
                    text = line.strip().removeprefix(b"\xef\xbb\xbf").strip()
                    if not text or text.startswith(b"#"):
                        continue
                    key, eq, _ = text.partition(b"=")
                    if line[:1] in b" \t" and eq and key and b"://" not in key:
                        continue  # an aria2c option line: part of the entry above
                    entries += 1
        except OSError:
            return  # the list is read for the downloads anyway; they report the error
        bar.set_total(entries + extra)

    threading.Thread(target=count, name="manyget-count", daemon=True).start()


def _read_config(parser: _Parser, ignore: bool) -> Config:
    from ._config import Config, find_config, load_config

    if ignore:
        return Config()
    path = find_config()
    return Config() if path is None else load_config(path, parser.commands["get"])


def _show_config(parser: _Parser, config: Config) -> int:
    """``manyget config``: each of get's settings, its value, and where it comes from."""
    from ._config import configurable

    get = parser.commands["get"]
    if config.path is None:
        print("# no config file: built-in defaults")
    else:
        print(f"# config file: {config.path}")
    shown: set[str] = set()
    for action in configurable(get).values():
        if action.dest in shown or action.dest == "no_config":
            continue
        shown.add(action.dest)
        name = action.dest.replace("_", "-")
        if action.dest in config.values:
            value, source = config.values[action.dest], f"config {config.path}"
        else:
            value, source = action.default, "default"
        if action.dest in ("user", "cookie", "proxy") and value is not None:
            value = "(set)"  # may hold a secret: say only that it is there
        print(f"{name} = {value!r}  # {source}")
    return EXIT_OK


def _get(args: argparse.Namespace) -> int:
    from ._jobs import PENDING, read_jsonl_lines, read_url_lines
    from ._policy import RetryPolicy
    from ._progress import Bar, FailureLines, JsonLines, Ticker, VerboseLines
    from ._results import Tally
    from ._session import Downloader

    if isinstance(args.journal, str) and "://" in args.journal:
        args.urls.insert(0, args.journal)  # `--journal URL`: a bare --journal, then a URL
        args.journal = True
    retry: Iterator[str] = iter(())
    if args.retry_failed is not None:
        if args.urls or args.input is not None:
            raise UsageError("--retry-failed reads its URLs from the journal: give no URL or -i")
        from ._journal import failed_entries

        journal_dest, retry = failed_entries(args.retry_failed)
        if args.journal is None:
            args.journal = args.retry_failed
        if args.dest is None and journal_dest:
            args.dest = journal_dest
    elif not args.urls and args.input is None:
        raise UsageError("no URLs: give some as arguments or with -i FILE (or -i - for stdin)")
    dest = _dest(args)
    source = _open_list(args.input) if args.input is not None else None

    observers: list[Observer] = []
    bar: Bar | Ticker | None = None
    if sys.stderr.isatty() and not args.quiet:
        bar = Bar(sys.stderr)
        observers.append(bar)
    elif args.verbose:
        bar = Ticker(sys.stderr)  # not a terminal: a plain progress line now and then
        observers.append(bar)
    lines = VerboseLines if args.verbose else FailureLines
    observers.append(lines(sys.stderr, bar if isinstance(bar, Bar) else None))
    if args.json:
        observers.append(JsonLines(sys.stdout))
    total = len(args.urls) if source is None and args.retry_failed is None else None
    slow = source is not None and _is_slow(source)

    def counted(entries: Iterator[Line | _Pending]) -> Iterator[Line | _Pending]:
        """A list of unknown length: the bar shows how much of it was read so far."""
        read = len(args.urls)
        for item in entries:
            if bar is not None and item is not PENDING:
                read += 1
                bar.seen(read)
            yield item

    def pairs() -> Iterator[Line | _Pending]:
        for url in args.urls:
            yield None, url
        for entry in retry:
            yield None, entry
        if source is not None:
            jsonl = args.input_format == "jsonl" or (
                args.input_format is None and str(args.input).endswith(".jsonl")
            )
            reader = read_jsonl_lines if jsonl else read_url_lines
            if slow:
                from ._input import ReadAhead

                # Lines are read on a thread; PENDING says none is ready, so an entry
                # waiting for possible option lines is handed over at once.
                yield from counted(reader(ReadAhead(source)))
            else:
                yield from reader(source)

    if bar is not None and source is not None and not slow:
        _count_on_the_side(args.input, len(args.urls), bar)
    options: Options = {
        "engine": args.engine,
        "concurrency": args.jobs,
        "per_host": args.per_host,
        "timeout": args.timeout,
        "retries": RetryPolicy(retries=args.retries, max_wait=args.retry_max_wait),
        "overwrite": args.overwrite,
        "max_size": args.max_size,
        "split": args.split,
        "min_split_size": args.min_split_size,
        "limit_rate": args.limit_rate,
        "limit_rate_host": args.limit_rate_host,
        "max_rps": args.max_rps,
        "allow_downgrade": args.allow_downgrade,
        "content_disposition": args.content_disposition,
        "headers": args.headers,
        "user_agent": args.user_agent,
        "referer": args.referer,
        "user": _user(args.user),
        "netrc": args.netrc_file if args.netrc_file is not None else args.netrc,
        "cookies": args.cookie,
        "cookie_jar": args.cookie_jar,
        "proxy": args.proxy,
        "noproxy": args.noproxy,
        "ca_file": args.cacert,
        "ca_path": args.capath,
        "cert": args.cert,
        "key": args.key,
        "insecure": args.insecure,
        "tls_min": args.tls_min,
        "http": args.http,
        "compressed": args.compressed,
        "staging": args.staging,
        "journal": args.journal,
        "scheduler": args.scheduler,
    }
    if args.checksums is not None:
        options["checksums"] = _checksums(args.checksums, options)
    session = Downloader(dest, progress=observers, **options)
    if args.insecure:
        where = ""
        if args.config.values.get("insecure"):
            where = f" (set in {args.config.path})"
        print(
            f"manyget: warning: --insecure{where}: server certificates are not checked",
            file=sys.stderr,
        )
    log = _log_to(args.log_file) if args.log_file is not None else None
    tally = Tally()
    start = time.monotonic()
    with source if source is not None and source is not sys.stdin else contextlib.nullcontext():
        results = session.iterate_lines(pairs(), total=total, tally=tally)
        try:
            for _ in results:
                pass
        except (KeyboardInterrupt, DestinationError):
            report = tally.report(time.monotonic() - start)
            _print_summary(report, quiet=args.quiet, partial=True)
            raise
    report = tally.report(time.monotonic() - start)
    _print_summary(report, quiet=args.quiet)
    if report.elapsed >= 1.0 and report.host_bound > report.elapsed / 2:
        per_host = args.per_host or session.config.limits.per_host
        print(
            f"manyget: the per-host limit ({per_host} at once) held this run back "
            f"{report.host_bound:.1f} s of {report.elapsed:.1f} s; a host that allows more "
            "can be given --per-host N",
            file=sys.stderr,
        )
    if log is not None:
        log.info("run ended: %s", report.summary())
    return EXIT_OK if report.ok else EXIT_FAILED


def _status(args: argparse.Namespace) -> int:
    """``manyget status JOURNAL``: what a journal records, in a few lines."""
    from ._journal import summarise
    from ._results import human_bytes

    try:
        summary = summarise(args.journal)
    except ManygetError as exc:
        _say(f"manyget status: error: {exc}")
        return EXIT_USAGE
    total = sum(n for n, _ in summary.counts.values())
    print(f"journal {summary.path}: {total:,} URLs recorded, destination {summary.dest}")
    for state in ("ok", "skipped", "not_found", "error"):
        n, size = summary.counts.get(state, (0, 0))
        if n:
            print(f"  {state:<10} {n:>12,}  {human_bytes(size)}")
    if summary.reasons:
        print("failures by reason:")
        for reason, n in summary.reasons:
            _say_out(f"  {n:>12,}  {reason}")
    if summary.hosts:
        print("hosts with the most failures:")
        for host, n in summary.hosts:
            _say_out(f"  {n:>12,}  {host}")
    return EXIT_FAILED if summary.failed else EXIT_OK


def _say_out(line: str) -> None:
    """Print a line of recorded text on stdout, its control characters escaped."""
    from ._jobs import printable

    print(printable(line))


def _log_to(path: str) -> logging.Logger:
    """Send the library's log, every level, to ``path`` (appended to)."""
    import logging

    try:
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write log file {path!r}: {exc.strerror or exc}") from None
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s.%(msecs)03d %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%S"
        )
    )
    log = logging.getLogger("manyget")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.info("run started: manyget %s, pid %d", __version__, os.getpid())
    return log


def _print_summary(report: Report, *, quiet: bool, partial: bool = False) -> None:
    if quiet and report.ok and not partial:
        return
    prefix = "manyget: stopped; so far: " if partial else "manyget: "
    _say(prefix + report.summary())


# --------------------------------------------------------------------------- flags


def _flags(args: argparse.Namespace) -> int:
    from ._flags import run_demo

    return run_demo(args)


# --------------------------------------------------------------------------- bench


def _bench(args: argparse.Namespace) -> int:
    import json

    from ._bench import DEFAULT_SCENARIOS, PEERS, bench, rows, table, to_json

    against = PEERS if args.against is None else [a for a in args.against if a != "none"]

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results = bench(
        args.scenarios or DEFAULT_SCENARIOS,
        engines=args.engines,
        against=against,
        runs=args.runs,
        use_nginx=args.nginx,
        tmp=args.tmp,
        timeout=args.timeout,
        plot_to=args.plot,
        trees=args.trees,
        say=say,
    )
    if args.json:  # the data on stdout, the table still for the eye on stderr
        json.dump(to_json(results), sys.stdout, indent=1)
        print()
        say(table(results))
    else:
        print(table(results))
    if args.plot:
        say(f"manyget: plot written to {args.plot}")
    failed = any(row.incomplete and not row.peer for sr in results for row in rows(sr))
    return EXIT_FAILED if failed else EXIT_OK


# --------------------------------------------------------------------------- serve


def every_interface(host: str) -> str | None:
    """The warning for a server bound to every interface, or None for one address."""
    if host.strip("[]") not in ("", "0.0.0.0", "::", "*"):
        return None
    return (
        f"manyget: warning: listening on every interface ({host or '0.0.0.0'}): anyone who "
        "can reach this machine can fetch what it serves (--host 127.0.0.1 keeps it local)"
    )


def _serve(args: argparse.Namespace) -> int:
    from ._server import Faults, ServerLimits, serve

    try:
        faults = Faults(
            delay=args.delay,
            delay_rate=args.delay_rate,
            error_rate=args.error_rate,
            error_status=args.error_status,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"manyget serve: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        limits = ServerLimits(
            header_timeout=args.header_timeout,
            keep_alive_timeout=args.keep_alive_timeout,
            send_timeout=args.send_timeout,
            max_connections=args.max_connections,
        )
    except ValueError as exc:  # e.g. inf seconds, which argparse lets through
        print(f"manyget serve: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    def ready(url: str) -> None:
        print(f"manyget: serving on {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        warning = every_interface(args.host)
        if warning is not None:
            print(warning, file=sys.stderr, flush=True)

    try:
        serve(
            args.host,
            args.port,
            faults=faults,
            data_dir=args.data,
            on_ready=ready,
            fault_routes=args.faults,
            limits=limits,
            hidden=args.hidden,
        )
    except KeyboardInterrupt:  # Ctrl-C is how a foreground server is meant to stop
        pass
    except OSError as exc:
        print(f"manyget: error: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_LOCAL_IO
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
