"""Pure: one file fetched as byte ranges over several connections at once.

Theory of operation: the first attempt at a job is an ordinary GET. When its answer says
the file is large (``Content-Length`` at least twice ``--min-split-size``), that ranges
work (``Accept-Ranges: bytes``) and which version it is (an ``ETag`` or
``Last-Modified``), the body stops there and the attempt ends as
:attr:`~manyget.AttemptKind.SPLIT`. The :class:`~manyget._hosts.Feeder` then creates the
sparse partial file (through its splitter: the only I/O) and a :class:`Split` that cuts
what is missing into pieces of :func:`piece_size` bytes, handed out like any other
attempt: at most ``--split`` of one file at once, each counted against the host's limit.
Every piece asks ``Range`` with ``If-Range``, so a piece of another version of the file
is never written: such an answer (a 200, or a ``Content-Range`` that is not the one
asked for) gives up the ranges, and the file starts over as one stream. A piece that
fails is retried alone, from where it stopped, on its own retry budget. The sidecar
records the complete ranges after each piece, so a rerun after Ctrl-C or ``kill -9``
asks only for the missing ones. Nothing here touches a file or a socket.

Mirrors (a list line's further URLs of the same file) serve pieces too: each piece goes
to the usable source with the fewest pieces running (:meth:`Split.sources_by_load`),
asking with the same ``If-Range``, so a mirror holding another version answers a 200
and is refused for this file (:meth:`Split.refuse`), as is one that fails at all: its
piece goes back to the queue for the others. Only the source that gave the first answer
can break the split. A piece answered 429 or 503 while others of its file run means
the server limits connections: the file goes on with one fewer (:meth:`Split.too_many`),
and no retry is spent on it.

Work stealing: when no piece is left to hand out and there is room for another
connection, the feeder takes over the second half of the running piece with the most
bytes left (:meth:`Split.may_steal`, :meth:`Split.stolen`; the cut itself is the
splitter's, ``_part.SplitFile.steal``). The cut piece stops at the middle and is whole
there (:meth:`Split.end_of`); a write of it past the middle before it saw the cut is
harmless, the same bytes of the same version.

Automatic mode (``--split auto``, the default: :data:`AUTO`) starts every file as one
stream, since one connection is the fastest way to move a file when nothing caps it.
When such a file qualifies for ranges, its stream is judged every :data:`LOOK_EVERY`
seconds (:func:`split_rest`): once the rest would take longer than :data:`SLOW` seconds
at the stream's own rate, the stream stops (its bytes kept, as for a resume) and the rest
is fetched as up to :data:`AUTO_MOST` ranges, the kept bytes counting as the first
range done. A file that streams fast is never split.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from ._results import Attempt

__all__ = [
    "AUTO",
    "AUTO_MOST",
    "LOOK_EVERY",
    "SLOW",
    "Split",
    "merge",
    "middle",
    "missing",
    "most_ranges",
    "piece_size",
    "split_rest",
    "splits",
]

_ALIGN = 1 << 16  # pieces start on 64 KiB boundaries (except where a range was cut short)
AUTO = 0  # --split auto: one stream, its rest split when it is slow
AUTO_MOST = 8  # ranges of one file at once in automatic mode
LOOK_EVERY = 0.5  # seconds: how often automatic mode judges a stream (not before the first)
SLOW = 2.0  # seconds: a stream whose rest would take longer than this has its rest split


def most_ranges(split: int) -> int:
    """At most how many ranges of one file at once for ``--split``'s value."""
    return AUTO_MOST if split == AUTO else split


def split_rest(rest: int, got: int, elapsed: float, least: int) -> bool:
    """Automatic mode: whether a stream that received ``got`` bytes in ``elapsed``
    seconds, with ``rest`` bytes still to come, stops and has its rest split. Only after
    :data:`LOOK_EVERY` seconds, only a rest of two pieces of ``least`` bytes or more, and
    only when the rest would take more than :data:`SLOW` seconds at this rate."""
    if elapsed < LOOK_EVERY or rest < 2 * least:
        return False
    return rest * elapsed > SLOW * got


def splits(length: int | None, most: int, least: int) -> bool:
    """Whether a body of ``length`` bytes is worth fetching as ranges: at least two
    pieces of ``least`` bytes, and more than one connection allowed."""
    return most > 1 and length is not None and length >= 2 * least


def piece_size(length: int, most: int, least: int) -> int:
    """The size of one piece: about four rounds of ``most`` connections, so a slow one
    holds up the end by one piece at most, never less than ``least`` bytes."""
    size = -(-length // (4 * most))
    size = -(-size // _ALIGN) * _ALIGN
    return max(least, size)


def middle(at: int, end: int) -> int | None:
    """Where to cut a running piece at byte ``at`` of ``[.., end)`` so another connection
    takes the rest: about halfway, on 64 KiB; None when no such byte is left."""
    cut = -(-(at + (end - at) // 2) // _ALIGN) * _ALIGN
    return cut if at < cut < end else None


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` (start, end-exclusive), sorted and joined where they touch or overlap."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def missing(length: int, done: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges of ``[0, length)`` not in ``done``."""
    out = []
    at = 0
    for start, end in merge(done):
        start, end = max(0, start), min(length, end)
        if start > at:
            out.append((at, start))
        at = max(at, end)
    if at < length:
        out.append((at, length))
    return out


def _cut(ranges: Iterable[tuple[int, int]], size: int) -> deque[tuple[int, int]]:
    pieces: deque[tuple[int, int]] = deque()
    for start, end in ranges:
        while end - start > size:
            pieces.append((start, start + size))
            start += size
        pieces.append((start, end))
    return pieces


class Split:
    """Which ranges of one file are done, handed out, or still to fetch.

    ``active`` counts pieces handed out and not finished (running, or waiting out a
    retry's backoff); ``slots`` the host slots the file holds (its own, and those
    borrowed for more pieces). ``failed`` is the attempt that ended the split (a piece out
    of retries); ``broken`` is set when ranges stopped working and the file restarts as
    one stream. Either way no new piece is handed out.
    """

    __slots__ = (
        "active",
        "broken",
        "cut",
        "done",
        "failed",
        "handle",
        "held",
        "history",
        "inode",
        "job",
        "least",
        "length",
        "most",
        "on",
        "pieces",
        "refused",
        "sources",
        "tries",
        "validator",
    )

    def __init__(
        self,
        job: object,
        length: int,
        validator: str,
        inode: int,
        done: Iterable[tuple[int, int]],
        *,
        most: int,
        least: int,
        handle: Any = None,
        sources: Iterable[tuple[str, str]] = (("", ""),),
    ) -> None:
        """``sources``: (URL, host) of each copy of the file, the one that answered
        first first; it holds the file's own host slot."""
        self.job = job  # the job as the gate gave it (concluded with its history)
        self.length = length
        self.validator = validator
        self.inode = inode
        self.done = merge(done)
        self.pieces = _cut(missing(length, self.done), piece_size(length, most, least))
        self.most = most
        self.least = least
        self.cut: dict[int, int] = {}  # running pieces cut short: where they now stop
        self.active = 0
        self.sources = list(sources)
        self.on: dict[str, int] = {}  # pieces running (or waiting to retry), by source URL
        self.held: dict[str, int] = {self.sources[0][1]: 1}  # host slots held, by host
        self.refused: set[str] = set()  # sources that failed a piece: not asked again
        self.failed: Attempt | None = None
        self.broken = False
        self.history: list[Attempt] = []  # the job's attempts, pieces included
        self.tries: dict[int, list[Attempt]] = {}  # a piece's failed attempts, by its end
        self.handle: Any = handle  # the open partial file (``_hosts.SplitHandle``)

    @property
    def stopped(self) -> bool:
        return self.failed is not None or self.broken

    @property
    def complete(self) -> bool:
        return self.done == [(0, self.length)] or (self.length == 0 and not self.pieces)

    @property
    def finished(self) -> bool:
        """No piece runs or waits, and none will be handed out."""
        return not self.active and (self.stopped or not self.pieces)

    @property
    def have(self) -> int:
        """Bytes of the file complete."""
        return sum(end - start for start, end in self.done)

    def wants(self) -> bool:
        """Whether another piece could start now, room allowing."""
        return bool(self.pieces) and not self.stopped and self.active < self.most

    def sources_by_load(self) -> list[tuple[str, str]]:
        """The sources not refused, those with fewer pieces running first."""
        on = self.on
        usable = [s for s in self.sources if s[0] not in self.refused]
        return sorted(usable, key=lambda s: on.get(s[0], 0))  # stable: the first first

    def on_host(self, host: str) -> int:
        """Pieces running (or waiting to retry) on ``host``."""
        return sum(self.on.get(url, 0) for url, h in self.sources if h == host)

    def may_steal(self) -> bool:
        """Whether the rest of a running piece could be taken over now: nothing left to
        hand out, room for one more connection."""
        return not self.pieces and not self.stopped and self.active < self.most

    def take(self, url: str = "") -> tuple[int, int]:
        """The next piece to fetch (see :meth:`wants`), from source ``url``."""
        self.took(url)
        return self.pieces.popleft()

    def took(self, url: str = "") -> None:
        """A piece from ``url`` starts (a queued one, or the rest of a running one)."""
        self.active += 1
        self.on[url] = self.on.get(url, 0) + 1

    def stolen(self, began: int, middle: int) -> None:
        """The running piece that began at ``began`` now stops at ``middle``: another
        connection fetches the rest (see ``_part.SplitFile.steal``)."""
        self.cut[began] = middle

    def end_of(self, began: int, end: int) -> int:
        """Where the piece that began at ``began``, asked up to ``end``, stops (once)."""
        return self.cut.pop(began, end)

    def release(self, url: str = "") -> None:
        """A piece from ``url`` stopped running, for good or to be handed out again."""
        self.active -= 1
        self.on[url] -= 1

    def too_many(self, start: int, end: int) -> bool:
        """A piece was refused for load (HTTP 429 or 503) while others of the file run:
        the server limits connections. Fetch with one fewer from now on, and hand bytes
        ``start`` to ``end`` out again; False when it ran alone (a real refusal then)."""
        if self.active <= 1:
            return False
        self.most = max(1, self.active - 1)
        self.again(start, end)
        return True

    def refuse(self, url: str, start: int, end: int) -> bool:
        """A piece from mirror ``url`` failed: ask it no more, and hand bytes ``start`` to
        ``end`` out again; False when ``url`` is the first source (that is not a mirror's
        failure: the caller decides)."""
        if url == self.sources[0][0]:
            return False
        self.refused.add(url)
        self.again(start, end)
        return True

    def again(self, start: int, end: int) -> None:
        """Bytes ``start`` to ``end`` go back to the queue, to be handed out first."""
        if end > start:
            self.pieces.appendleft((start, end))

    def wrote(self, start: int, end: int) -> None:
        """Bytes ``start`` to ``end`` are on disk."""
        if end > start:
            self.done = merge([*self.done, (start, end)])
