"""The pure decisions about one attempt's body: status and headers in, an enum out.

Theory of operation, in the manner of h11's state machine: a body is in one
:class:`Phase`. It starts :attr:`~Phase.IDLE`. When the first byte of a 2xx answer
arrives (or a 206 or 416 to a request for the rest of a partial file),
:func:`on_response` moves it to :attr:`~Phase.OPEN` (bytes go to the partial file from
:attr:`Opening.offset`) or straight to an end phase: the partial file is already
:attr:`~Phase.COMPLETE`, the answer does not fit it (:attr:`~Phase.RESTART`), or the body
is announced larger than ``--max-size`` (:attr:`~Phase.TOO_BIG`). While open,
:func:`fits` says whether the next chunk stays under ``--max-size``. The disk may move it
to :attr:`~Phase.BUSY` (another process holds the lock), :attr:`~Phase.DISK` (full) or
:attr:`~Phase.LOCAL` (any other local error). When the transfer ends, :func:`on_end`
turns the phase, the status and the transport's error into what to do: an :class:`End`.

Nothing here touches a file, a socket or a clock; :class:`~manyget._fetch._body.Body`
executes the decisions on a :class:`~manyget._fetch._part.Part`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from .._policy import Resume, Saved, resume_decision

__all__ = [
    "BUSY",
    "COMPLETE",
    "DISK",
    "IDLE",
    "LOCAL",
    "OPEN",
    "RESTART",
    "SIDECAR_FROM",
    "SPLIT",
    "TOO_BIG",
    "End",
    "Opening",
    "Phase",
    "fits",
    "on_end",
    "on_response",
]

SIDECAR_FROM = 1 << 20  # fresh bodies larger than this (or of unknown size) get a sidecar at once


class Phase(StrEnum):
    """Where a body stands."""

    IDLE = "idle"  # no 2xx body yet
    OPEN = "open"  # bytes go to the partial file
    COMPLETE = "complete"  # the partial file already holds every byte
    RESTART = "restart"  # the answer does not fit the partial file
    TOO_BIG = "too big"  # the body is (or would grow) larger than --max-size
    BUSY = "busy"  # another process holds the partial file's lock
    DISK = "disk"  # the disk is full
    LOCAL = "local"  # any other local error while writing
    SPLIT = "split"  # the file is worth fetching as ranges: stop, the feeder splits it
    SPLIT_REST = "split rest"  # a slow stream stops; the feeder splits what it lacks


class Opening(NamedTuple):
    """:func:`on_response`'s answer: the next phase and, when open, where to write.

    (A named tuple, not a frozen dataclass: it is made once per file, and costs a fifth.)
    """

    phase: Phase
    offset: int = 0  # the byte of the file the body's first byte is
    length: int | None = None  # the whole file's expected size, when known
    sidecar: bool = False  # write the sidecar now, so even kill -9 leaves it resumable


def on_response(
    status: int,
    length: int | None,
    offset: int,
    saved: Saved | None,
    content_range: str | None,
    etag: str | None,
    max_size: int | None,
) -> Opening:
    """The phase after a successful answer's headers.

    ``length`` is the body's announced length, ``offset`` the partial file's size (0 when
    everything was asked for), ``saved`` its sidecar; ``content_range`` and ``etag`` are
    the answer's headers (looked at only for a resume).
    """
    if status == 200:
        decision = _FRESH  # resume_decision's answer to any 200, without the lookups
    else:
        decision = resume_decision(offset, saved, status, content_range, etag)
    if decision is _COMPLETE:
        return Opening(COMPLETE, offset)
    if decision is _RESTART:
        return Opening(RESTART)
    if max_size is not None and length is not None and length > max_size:
        return Opening(TOO_BIG)
    if decision is _FRESH:
        return Opening(OPEN, 0, length, length is None or length > SIDECAR_FROM)
    return Opening(OPEN, offset, saved.length if saved is not None else None)


def fits(max_size: int | None, size: int, more: int) -> bool:
    """True when a file of ``size`` bytes may grow by ``more`` under ``max_size``."""
    return max_size is None or size + more <= max_size


class End(StrEnum):
    """What to do when a transfer ends: :func:`on_end`'s answer."""

    PUBLISH = "publish"  # the body is whole: check it and give it its final name
    PUBLISH_KEPT = "publish kept"  # the partial file was already whole (416): publish it
    EMPTY = "empty"  # a 2xx with no body at all: open an empty file, then publish it
    NO_FILE = "no file"  # not a 2xx: nothing was written, the status tells
    KEEP = "keep"  # the transport failed: keep what was written for a resume
    BUSY = "busy"  # another process is writing the file: give up
    LOCAL = "local"  # the disk failed us: keep what was written
    DROP_TOO_BIG = "drop too big"  # over --max-size: drop it
    DROP_RESTART = "drop restart"  # did not fit the partial file: drop it, ask again
    SPLIT = "split"  # fetch the file as ranges (see ``_split``)
    SPLIT_REST = "split rest"  # keep what the stream wrote, fetch the rest as ranges


# Enum members looked up once: ``Phase.OPEN`` is a descriptor call (about 0.1 us) each
# time, and these decisions run once or twice for every file.
IDLE, OPEN, COMPLETE, RESTART = Phase.IDLE, Phase.OPEN, Phase.COMPLETE, Phase.RESTART
TOO_BIG, BUSY, DISK, LOCAL = Phase.TOO_BIG, Phase.BUSY, Phase.DISK, Phase.LOCAL
SPLIT, SPLIT_REST = Phase.SPLIT, Phase.SPLIT_REST
_FRESH, _COMPLETE, _RESTART = Resume.FRESH, Resume.COMPLETE, Resume.RESTART
_PUBLISH, _KEEP, _EMPTY, _NO_FILE = End.PUBLISH, End.KEEP, End.EMPTY, End.NO_FILE

_ENDS = {
    Phase.BUSY: End.BUSY,
    Phase.DISK: End.LOCAL,
    Phase.LOCAL: End.LOCAL,
    Phase.TOO_BIG: End.DROP_TOO_BIG,
    Phase.RESTART: End.DROP_RESTART,
    Phase.COMPLETE: End.PUBLISH_KEPT,
    Phase.SPLIT: End.SPLIT,
    Phase.SPLIT_REST: End.SPLIT_REST,
}


def on_end(phase: Phase, status: int | None, failed: bool) -> End:
    """What to do with a body in ``phase`` when its transfer ends with ``status``;
    ``failed`` when the transport reported an error (a reset, a timeout, a short body)."""
    success = status is not None and 200 <= status < 300
    if phase is OPEN and success and not failed:
        return _PUBLISH  # the usual end, first
    end = _ENDS.get(phase)
    if end is not None:
        return end
    if failed:
        return _KEEP
    return _EMPTY if success else _NO_FILE  # only IDLE is left
