"""The journal: a SQLite record of every URL a run concluded, so a later run can skip
what is done, retry what failed, and say where a long run stands.

Theory of operation: the session records each :class:`~manyget._results.Result` as it
passes (``_session._Run.result``), whatever the engine, so the journal sees only what a
run has concluded: a result says ``ok`` only after its file was published under its
final name, so a record never says done for a file that is not there. Records are
written in batches (a commit every :data:`COMMIT_EVERY` results or :data:`COMMIT_AFTER`
seconds, whichever comes first) in WAL mode with ``synchronous=NORMAL``: a commit
survives the process being killed (``kill -9``), not a power cut. What the last batch
held when the client died is not lost in effect: those files are published, and the
next run's preflight finds them complete (no request) and records them then.

A row's key is an 8-byte digest of the URL and its planned name. When a run starts, the
keys of the rows that are done, with their sizes, are loaded into two sorted arrays
(16 bytes a URL, no Python object each), so a rerun answers "already done?" with a
binary search and never touches the file: a million done URLs are checked in seconds.
A journal belongs to one destination (stored in it): a run into another one refuses it.
For an object-store destination that is the store's URL, and the paths it records are
the objects' URLs (the staging folder is only where files wait for their upload).

``sha256`` is recorded when the run knew it (the list's ``sha256=`` or ``--checksums``,
checked before publishing): hashing every file again only for the journal would cost
more CPU than the transfer itself for small files (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import sqlite3
import time
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import blake2b
from typing import TYPE_CHECKING

from ._exceptions import DestinationError, InputError
from ._results import Result, Status

if TYPE_CHECKING:
    from ._jobs import Job

__all__ = [
    "COMMIT_AFTER",
    "COMMIT_EVERY",
    "DEFAULT_NAME",
    "Journal",
    "Summary",
    "failed_entries",
    "journal_path",
    "summarise",
]

DEFAULT_NAME = ".manyget-journal.sqlite"
COMMIT_EVERY = 1000  # results per commit at most
COMMIT_AFTER = 0.2  # seconds a recorded result waits for its commit at most (while results come)
_SCHEMA_VERSION = "1"
_DONE = (Status.OK.value, Status.SKIPPED.value)
_FAILED = (Status.ERROR.value, Status.NOT_FOUND.value)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS urls (
    key INTEGER PRIMARY KEY,  -- 8-byte digest of url NUL name
    url TEXT NOT NULL,
    name TEXT NOT NULL,       -- the planned name, relative to the destination
    host TEXT NOT NULL,       -- scheme://host:port
    state TEXT NOT NULL,      -- ok, skipped, not_found, error
    path TEXT,                -- the file, when there is one
    size INTEGER NOT NULL,    -- its size in bytes
    sha256 TEXT,              -- the checksum the list gave (checked when done)
    attempts INTEGER NOT NULL,
    http_status INTEGER,
    kind TEXT,                -- how the last attempt ended (AttemptKind)
    error TEXT,
    seconds REAL NOT NULL,
    time REAL NOT NULL        -- when it was recorded (Unix time)
);
"""
_INSERT = "INSERT OR REPLACE INTO urls VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"


def journal_path(dest: str | os.PathLike[str], given: str | os.PathLike[str] | bool) -> str:
    """Where the journal is: ``given``, or ``DEST/.manyget-journal.sqlite`` for ``True``."""
    if given is True:
        return os.path.join(os.fspath(dest), DEFAULT_NAME)
    if given is False:
        raise ValueError("no journal")
    return os.fspath(given)


def key_of(url: str, name: str) -> int:
    """The row key of ``url`` saved as ``name``: a signed 64-bit digest."""
    digest = blake2b(f"{url}\0{name}".encode("utf-8", "surrogateescape"), digest_size=8)
    return int.from_bytes(digest.digest(), "little", signed=True)


def _connect(path: str, *, create: bool) -> sqlite3.Connection:
    if not create and not os.path.isfile(path):
        raise InputError(f"journal {path!r} does not exist")
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    except sqlite3.Error as exc:
        raise DestinationError(f"cannot open journal {path!r}: {exc}") from None
    try:
        empty = db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
        if create and empty:  # a new journal; never tables added to another database
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (_SCHEMA_VERSION,))
        row = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if row is not None and row[0] == _SCHEMA_VERSION:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as exc:
        db.close()
        raise InputError(f"journal {path!r} is not a manyget journal ({exc})") from None
    if row is None or row[0] != _SCHEMA_VERSION:
        db.close()
        raise InputError(f"journal {path!r} is not a manyget journal (version {row})")
    return db


class Journal:
    """The journal of one run into ``dest``: what is done already, and the record of
    every result as it comes (see the module's theory of operation)."""

    def __init__(self, path: str, dest: str | os.PathLike[str]) -> None:
        """``dest``: a local folder, or an object store's URL (``s3://bucket/prefix``),
        whose files' paths are then its objects' URLs."""
        self.path = path
        from ._store import is_url

        text = os.fspath(dest)
        if is_url(text):  # an object store: results name objects, below the URL
            self._dest, separator, self._prefix = text, "/", f"{text}/"
        else:
            self._dest, separator = os.path.abspath(text), os.sep
            self._prefix = os.path.join(text, "")
        self._db = db = _connect(path, create=True)
        row = db.execute("SELECT value FROM meta WHERE key = 'dest'").fetchone()
        if row is None:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('dest', ?)", (self._dest,))
        elif row[0] != self._dest:
            db.close()
            raise InputError(
                f"journal {path!r} records downloads into {row[0]!r}, not {self._dest!r}"
            )
        self._keys = array("q")
        self._sizes = array("q")
        cursor = db.execute("SELECT key, size FROM urls WHERE state IN (?, ?) ORDER BY key", _DONE)
        while rows := cursor.fetchmany(65536):
            for key, size in rows:
                self._keys.append(key)
                self._sizes.append(size)
        # Files saved under another name than planned (Content-Disposition): rare.
        self._moved: dict[int, str] = dict(
            db.execute(
                "SELECT key, path FROM urls WHERE state IN (?, ?) AND path IS NOT ? || name",
                (*_DONE, self._dest + separator),
            )
        )
        self._rows: list[tuple[object, ...]] = []
        self._last = time.monotonic()

    @property
    def done(self) -> int:
        """How many URLs the journal held as done when the run began."""
        return len(self._keys)

    def _find(self, key: int) -> int:
        keys = self._keys
        i = bisect_left(keys, key)
        return i if i < len(keys) and keys[i] == key else -1

    def known(self, job: Job) -> Result | None:
        """A skipped :class:`Result` when the journal holds ``job`` as done, else None."""
        if not self._keys:
            return None
        key = key_of(job.url, job.name)
        i = self._find(key)
        if i < 0:
            return None
        path = self._moved.get(key, self._prefix + job.name)
        return Result(
            url=job.url, path=path, status=Status.SKIPPED, bytes=self._sizes[i], attempts=0
        )

    def record(self, job: Job, result: Result) -> None:
        """Note ``result`` of ``job``; committed with its batch."""
        key = key_of(job.url, job.name)
        if result.status is Status.SKIPPED and result.attempts == 0 and self._find(key) >= 0:
            return  # skipped because the journal said done: nothing new
        last = result.history[-1] if result.history else None
        self._rows.append(
            (
                key,
                job.url,
                job.name,
                job.host,
                result.status.value,
                result.path,
                result.bytes,
                job.sha256,
                result.attempts,
                result.http_status,
                None if last is None else last.kind.value,
                result.error,
                result.seconds,
                time.time(),
            )
        )
        now = time.monotonic()
        if len(self._rows) >= COMMIT_EVERY or now - self._last >= COMMIT_AFTER:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Commit what was recorded since the last commit."""
        self._last = time.monotonic() if now is None else now
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        try:
            with self._db:  # one transaction
                self._db.execute("BEGIN")
                self._db.executemany(_INSERT, rows)
        except sqlite3.Error as exc:
            raise DestinationError(f"cannot write journal {self.path!r}: {exc}") from None

    def close(self) -> None:
        """Commit the rest and close."""
        try:
            self.flush()
        finally:
            self._db.close()


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class Summary:
    """What a journal holds: URLs and bytes by state, the commonest failures and the
    hosts that failed most."""

    path: str
    dest: str
    counts: dict[str, tuple[int, int]]  # state -> (URLs, bytes)
    reasons: list[tuple[str, int]]  # error text -> URLs, commonest first
    hosts: list[tuple[str, int]]  # host -> failed URLs, most first

    @property
    def failed(self) -> int:
        return sum(self.counts.get(state, (0, 0))[0] for state in _FAILED)


def _open_existing(path: str) -> tuple[sqlite3.Connection, str]:
    db = _connect(path, create=False)
    row = db.execute("SELECT value FROM meta WHERE key = 'dest'").fetchone()
    return db, "" if row is None else str(row[0])


def _most_failed(db: sqlite3.Connection, column: str, top: int) -> list[tuple[str, int]]:
    """The ``top`` values of ``column`` (an SQL expression of ours) among failed URLs,
    with their counts, most frequent first."""
    rows = db.execute(
        f"SELECT {column}, COUNT(*) AS n FROM urls WHERE state IN (?, ?) "
        "GROUP BY 1 ORDER BY n DESC, 1 LIMIT ?",
        (*_FAILED, top),
    )
    return [(str(value), n) for value, n in rows]


def summarise(path: str, *, top: int = 5) -> Summary:
    """Read the :class:`Summary` of the journal at ``path`` (InputError if it is not one)."""
    db, dest = _open_existing(path)
    try:
        counts = {
            state: (n, size or 0)
            for state, n, size in db.execute(
                "SELECT state, COUNT(*), SUM(size) FROM urls GROUP BY state"
            )
        }
        reasons = _most_failed(db, "COALESCE(error, kind, 'unknown')", top)
        hosts = _most_failed(db, "host", top)
    except sqlite3.DatabaseError as exc:
        raise InputError(f"journal {path!r} cannot be read ({exc})") from None
    finally:
        db.close()
    return Summary(path=path, dest=dest, counts=counts, reasons=reasons, hosts=hosts)


def failed_entries(path: str) -> tuple[str, Iterator[str]]:
    """The destination of the journal at ``path`` and its failed URLs as list entries
    (``URL<TAB>name=NAME``, with ``sha256=`` when known), read lazily."""
    db, dest = _open_existing(path)

    def entries() -> Iterator[str]:
        try:
            cursor = db.execute(
                "SELECT url, name, sha256 FROM urls WHERE state IN (?, ?) ORDER BY time",
                _FAILED,
            )
            while rows := cursor.fetchmany(1024):
                for url, name, sha256 in rows:
                    extra = f"\tsha256={sha256}" if sha256 else ""
                    yield f"{url}\tname={name}{extra}"
        except sqlite3.DatabaseError as exc:
            raise InputError(f"journal {path!r} cannot be read ({exc})") from None
        finally:
            db.close()

    return dest, entries()
