"""Where one attempt's body goes: the decisions on a response, executed on a :class:`Part`."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from typing import Any

from .._jobs import Job, disposition_name, mask_url
from .._log import DEBUG, logger
from .._policy import Saved
from .._results import Attempt, AttemptKind
from .._split import LOOK_EVERY, split_rest, splits
from ._part import (
    RUNNING,
    Busy,
    Folder,
    Held,
    Part,
    leave_running,
    open_piece,
    piece_key,
    reserve,
)
from ._state import (
    BUSY,
    DISK,
    IDLE,
    LOCAL,
    OPEN,
    SPLIT,
    SPLIT_REST,
    TOO_BIG,
    End,
    Opening,
    Phase,
    fits,
    on_end,
    on_response,
)

__all__ = ["Body", "Field", "SpanBody", "no_field"]

Field = Callable[[str], "str | None"]  # a response header by its lower-case name
_PUBLISH = End.PUBLISH  # looked up once: it is every file's end


def no_field(name: str) -> None:
    """A :data:`Field` for a response with no headers worth reading."""
    return None


class Body:
    """Where one attempt's body goes: every driver uses it through a Transfer.

    ``request_headers`` asks for the rest of a resumable partial file. When the first
    byte of a 2xx body arrives (or a bodiless response ends), ``start`` carries out
    :func:`~manyget._fetch._state.on_response`'s decision (append, write from scratch, or
    give up on the partial file); ``finish`` carries out :func:`~manyget._fetch._state.on_end`'s
    (publish, keep for a resume, or drop) and says what happened.
    """

    __slots__ = (
        "_auto",
        "_disposition",
        "_field",
        "_folder",
        "_left",
        "_length",
        "_local",
        "_look",
        "_max",
        "_part",
        "_phase",
        "_rename",
        "_saved",
        "_sha256",
        "_split",
        "_streamed",
        "_validator",
        "http_version",
        "kept",
        "offset",
        "started",
        "url",
    )

    def __init__(
        self,
        prefix: str,
        job: Job,
        *,
        resume: bool,
        max_size: int | None = None,
        disposition: bool = False,
        folder: Folder | None = None,
        split: tuple[int, int] | None = None,
        auto_split: bool = False,
    ) -> None:
        """``split`` (at most how many ranges, pieces at least how large): a large body
        whose server takes ranges stops at its first byte, to be fetched as ranges; with
        ``auto_split``, it streams, and stops to have its rest split only when it is slow
        (see ``_split``).
        ``folder``: the destination, opened once per handle. A name in a folder of its
        own (dir=) is reached through it; elsewhere, small bodies may go to files with
        no name there, when its ``unnamed`` allows (see :meth:`Part.open_unnamed`)."""
        self.url = job.url
        self._folder = folder if "/" not in job.name else None  # not in dir= folders
        self._disposition = disposition
        self._rename: str | None = None
        self._sha256 = job.sha256
        self._max = max_size
        self._part = Part(prefix, job.name, folder)
        found = self._part.saved(job.url) if resume else None
        self.offset: int = 0
        self._saved: Saved | None = None
        if found is not None:
            self.offset, self._saved = found
        self._phase = IDLE
        self.started = False  # True once start has decided what to do with the body
        self.http_version: str | None = None  # the protocol of the response, once known
        self._local = ""
        self.kept = 0
        self._left = 0  # bytes left in the partial file for a resume after a write error
        self._field: Field | None = None
        self._length: int | None = None
        self._split = split if not job.whole and "/" not in job.name else None
        self._validator: str | None = None
        self._auto = auto_split
        self._look = 0.0  # auto_split: when to judge the stream next (0: never)
        self._streamed = 0.0  # auto_split: when the stream began

    @property
    def expected(self) -> int | None:
        """The whole file's size, when the response said it."""
        return self._length

    def request_headers(self) -> list[tuple[str, str]]:
        if not self.offset or self._saved is None or self._saved.validator is None:
            return []
        return [("Range", f"bytes={self.offset}-"), ("If-Range", self._saved.validator)]

    def start(self, status: int, length: int | None, field: Field) -> bool:
        """Prepare for a 2xx body; False means stop this transfer (see ``finish``).

        ``field(name)`` reads a header of the response by its lower-case name: only the
        headers a decision needs are ever looked at.
        """
        self._field = field
        if self._disposition:
            wanted = disposition_name(field("content-disposition"))
            if wanted and wanted != os.path.basename(self._part.shown):
                self._rename = wanted
        if status == 200 and self._split is not None and self._splits(length, field):
            if self._auto:  # stream it, and judge the stream as it goes
                self._judge()
            else:
                self._phase = SPLIT
                self._length = length
                self.started = True
                return False
        if status == 200:  # the usual answer: no resume to judge, no header to look up
            opening = on_response(200, length, 0, None, None, None, self._max)
        else:
            opening = on_response(
                status,
                length,
                self.offset,
                self._saved,
                field("content-range"),
                field("etag"),
                self._max,
            )
        self._phase = opening.phase
        self.started = True
        if self.offset:
            log = logger(DEBUG)
            if log is not None:
                log.debug("resume %s from byte %d: %s (HTTP %d)", mask_url(self.url),
                          self.offset, _resumed(opening), status)  # fmt: skip
        if opening.phase is not OPEN:
            return False
        self.offset = opening.offset
        self._length = opening.length
        if self._auto and status == 206 and self._resumed_splits():
            self._judge()  # a resumed stream is judged the same way
        part = self._part
        folder = self._folder
        try:
            # A small fresh body, with no partial file to reuse, goes to a file with no
            # name; anything that may be resumed goes to .NAME.part.
            if (
                opening.sidecar
                or self.offset
                or part.there
                or folder is None
                or not folder.unnamed
                or not part.open_unnamed(folder)
            ):
                part.open(self.offset)
                if self._length is not None and not field("content-encoding"):
                    reserve(part.fd, self.offset, self._length - self.offset)
            if opening.sidecar:
                part.remember(self._memo())
        except Busy:
            self._phase = BUSY
            return False
        except OSError as exc:
            self._local_error(exc)
            return False
        return True

    def _splits(self, length: int | None, field: Field) -> bool:
        """Whether this 200's body is to be fetched as ranges instead (see ``_split``)."""
        assert self._split is not None
        most, least = self._split
        if not splits(length, most, least) or self._rename is not None:
            return False
        if self._max is not None and length is not None and length > self._max:
            return False
        if "bytes" not in (field("accept-ranges") or "").lower():
            return False
        etag = field("etag")  # If-Range takes a strong ETag, or a date
        validator = etag if etag and not etag.startswith("W/") else field("last-modified")
        if not validator:
            return False
        self._validator = validator
        return True

    def _judge(self) -> None:
        """Automatic split: the stream begins now; judge it every ``LOOK_EVERY`` s."""
        self._streamed = time.monotonic()
        self._look = self._streamed + LOOK_EVERY

    def _resumed_splits(self) -> bool:
        """Whether a resumed stream (a 206 to our If-Range) may have its rest split: its
        length known and large, the version it matched known, not renamed."""
        saved, length = self._saved, self._length
        if self._split is None or saved is None or saved.validator is None:
            return False
        if self._rename is not None or length is None:
            return False
        most, least = self._split
        if not splits(length - self.offset, most, least):
            return False
        self._validator = saved.validator
        return True

    def _local_error(self, exc: OSError) -> None:
        self._phase, self._local = _local_failure(self._part.shown, exc)

    def _write_failed(self, exc: OSError) -> None:
        """A write (or the flush of what was held) failed: the bytes on disk stay."""
        kept = self._phase is OPEN
        self._local_error(exc)
        if kept:
            self._left = self._part.keep(self._memo())

    def write(self, data: bytes) -> bool:
        """Store ``data``; False (nothing stored) once the body passes ``max_size``, or
        when a slow stream stops to have its rest split."""
        if self._max is not None and not fits(self._max, self.offset + self.kept, len(data)):
            self._phase = TOO_BIG
            return False
        if self._look and self._slow():
            self._phase = SPLIT_REST
            return False
        try:
            self._part.write(data)
        except OSError as exc:
            self._write_failed(exc)
            return False
        self.kept += len(data)
        return True

    def _slow(self) -> bool:
        """Automatic split: whether the stream, judged every ``LOOK_EVERY`` seconds, is
        too slow for its rest (see ``_split.split_rest``)."""
        now = time.monotonic()
        if now < self._look:
            return False
        self._look = now + LOOK_EVERY
        assert self._split is not None
        assert self._length is not None
        rest = self._length - self.offset - self.kept
        return split_rest(rest, self.kept, now - self._streamed, self._split[1])

    def _memo(self) -> Saved:
        field = self._field
        if field is None:
            return Saved(self.url, None, None, self._length)
        return Saved(self.url, field("etag"), field("last-modified"), self._length)

    def finish(
        self,
        status: int | None,
        *,
        error: str | None = None,
        kind: AttemptKind = AttemptKind.OK,
        retry_after: float | None = None,
    ) -> Attempt:
        """End the attempt; ``error`` and ``kind`` describe a transport failure."""
        if self._phase is OPEN:
            try:
                self._part.flush()  # the bytes held in memory, first
            except OSError as exc:
                self._write_failed(exc)
        phase = self._phase
        end = on_end(phase, status, error is not None)
        if end is _PUBLISH:
            return self._publish(status, self.offset + self.kept)  # the usual end, first
        part = self._part
        got = self.kept
        if end is End.SPLIT_REST:  # the bytes so far stay, as for a resume: the first range
            left = part.keep(self._memo())
            return self._attempt(
                status, kind=AttemptKind.SPLIT, nbytes=self._length or 0,
                validator=self._validator, received=got, kept=left,
            )  # fmt: skip
        if end is End.SPLIT:
            return self._attempt(
                status, kind=AttemptKind.SPLIT, nbytes=self._length or 0,
                validator=self._validator,
            )  # fmt: skip
        if end is End.BUSY:
            message = f"busy: another process is writing {part.shown}"
            return self._attempt(status, kind=AttemptKind.FATAL, error=message)
        if end is End.LOCAL:
            kind = AttemptKind.DISK if phase is DISK else AttemptKind.LOCAL
            return self._attempt(
                status, kind=kind, error=self._local, received=got, kept=self._left
            )
        if end is End.DROP_TOO_BIG:
            part.drop()
            message = f"body larger than --max-size ({self._max:,} bytes)"
            return self._attempt(status, kind=AttemptKind.FATAL, error=message, received=got)
        if end is End.DROP_RESTART:
            part.drop()
            message = "the answer does not fit the partial file; starting over"
            return self._attempt(status, kind=AttemptKind.READ, error=message, received=got)
        if end is End.PUBLISH_KEPT:
            return self._publish(status, self.offset)
        if end is End.KEEP:
            left = part.keep(self._memo()) if phase is OPEN else 0
            return self._attempt(status, kind=kind, error=error, received=got, kept=left)
        if end is End.NO_FILE:
            failed = status is not None and status >= 400
            return self._attempt(
                status,
                kind=AttemptKind.STATUS if failed else AttemptKind.OK,
                retry_after=retry_after,
            )
        assert status is not None  # End.EMPTY: a 2xx with no body at all, an empty file
        if not self.start(status, 0, no_field):
            return self.finish(status)
        return self._publish(status, self.offset + self.kept)

    def _publish(self, status: int | None, size: int) -> Attempt:
        part = self._part
        if self._sha256 is not None:
            got = part.digest()
            if got != self._sha256:
                part.drop()
                message = f"sha256 mismatch: got {got}, expected {self._sha256}"
                return self._attempt(
                    status, kind=AttemptKind.READ, error=message, received=self.kept
                )
        saved_as = None
        try:
            if self._rename is not None:
                saved_as = part.publish_as(self._rename, self.url)
            else:
                part.publish()
        except OSError as exc:  # e.g. a name the file system refuses: this job fails alone
            self._local_error(exc)
            left = part.keep(self._memo())
            kind = AttemptKind.DISK if self._phase is DISK else AttemptKind.LOCAL
            return self._attempt(
                status, kind=kind, error=self._local, received=self.kept, kept=left
            )
        return Attempt(
            http_status=status,
            http_version=self.http_version,
            nbytes=size,
            received=self.kept,
            complete=True,
            saved_as=saved_as,
        )

    def _attempt(self, status: int | None, **fields: Any) -> Attempt:
        """An attempt that did not publish (the usual end builds its own, directly)."""
        return Attempt(http_status=status, http_version=self.http_version, **fields)

    def abandon(self) -> int:
        """The attempt was cancelled: keep what can be resumed; the bytes kept."""
        if self._phase is OPEN:
            return self._part.keep(self._memo())
        return 0


def _local_failure(path: str, exc: OSError) -> tuple[Phase, str]:
    """The phase a local error leaves a body in (DISK when the disk or the quota is
    full: the run stops) and its text."""
    disk_full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return (DISK if disk_full else LOCAL), f"{path}: {exc.strerror or exc}"


def _resumed(opening: Opening) -> str:
    """What became of a resume, said for the log."""
    if opening.phase is Phase.OPEN:
        return "appending" if opening.offset else "the whole file came back: from scratch"
    if opening.phase is Phase.COMPLETE:
        return "the partial file was already complete"
    if opening.phase is Phase.RESTART:
        return "the answer does not fit the partial file: starting over"
    return opening.phase.value


class SpanBody:
    """Where one piece of a file fetched as ranges goes (``job.span``; see ``_split``):
    bytes ``start`` to ``end`` of the run's partial file, written in place (``pwrite``).

    Only a 206 whose ``Content-Range`` is exactly the range asked for, of the file's
    length, is written; any other 2xx (a 200: the server no longer honours ranges, or
    ``If-Range`` saw another version) ends the piece as :attr:`AttemptKind.SPLIT`, which
    makes the file start over as one stream. A piece never publishes: the feeder does,
    once every range is complete.
    """

    __slots__ = (
        "_end",
        "_fd",
        "_held",
        "_inode",
        "_length",
        "_local",
        "_name",
        "_phase",
        "_prefix",
        "_slot",
        "_start",
        "_validator",
        "_why",
        "http_version",
        "kept",
        "offset",
        "started",
        "url",
    )

    def __init__(self, prefix: str, job: Job) -> None:
        assert job.span is not None
        self.url = job.url
        self._start, self._end, self._length, self._inode = job.span
        self._validator = job.validator
        self._prefix = prefix
        self._name = job.name
        self._fd = -1
        self._phase = IDLE
        self._local = ""
        self._why = ""
        self._slot: list[int] | None = None  # [next byte, stop before]: see _part.RUNNING
        self.offset = self._start
        self.kept = 0  # bytes on disk, from start
        self._held = Held()  # and after them, bytes not yet written
        self.started = False
        self.http_version: str | None = None

    @property
    def expected(self) -> int | None:
        return self._length

    def request_headers(self) -> list[tuple[str, str]]:
        headers = [("Range", f"bytes={self._start}-{self._end - 1}")]
        if self._validator:
            headers.append(("If-Range", self._validator))
        return headers

    def start(self, status: int, length: int | None, field: Field) -> bool:
        self.started = True
        wanted = f"bytes {self._start}-{self._end - 1}/{self._length}"
        if status != 206 or (field("content-range") or "").strip() != wanted:
            self._phase = SPLIT
            if status == 206:
                self._why = f"Content-Range {field('content-range')!r}, asked for {wanted!r}"
            else:
                self._why = f"HTTP {status} to a range request"
            return False
        try:
            self._fd = open_piece(self._prefix, self._name, self._inode)
            if not field("content-encoding"):
                reserve(self._fd, self._start, self._end - self._start)
        except OSError as exc:
            self._local_error(exc)
            return False
        self._phase = OPEN
        slot = self._slot = [self._start, self._end]
        key = piece_key(self._prefix, self._name, self._inode)
        RUNNING.setdefault(key, {})[self._start] = slot
        return True

    def write(self, data: bytes | memoryview) -> bool:
        held = self._held
        at = self._start + self.kept + held.size
        slot = self._slot
        end = self._end if slot is None else slot[1]
        stop = at + len(data) > end
        if stop:
            if end == self._end or at >= end:
                return False  # more than the range asked for: never past it
            data = memoryview(data)[: end - at]  # another connection took the rest
        if slot is not None:
            slot[0] = at + len(data)
        if held.add(data) or stop:
            return self._flush() and not stop
        return True

    def _flush(self) -> bool:
        """Write the bytes held at their place; False after a local error."""
        try:
            self.kept += self._held.write(self._fd, self._start + self.kept)
        except OSError as exc:
            self._local_error(exc)
            return False
        return True

    def _local_error(self, exc: OSError) -> None:
        self._phase, self._local = _local_failure(f"{self._prefix}{self._name}", exc)

    def _close(self) -> int:
        """Write what is held, close the piece's descriptor and leave the running
        pieces; where it stops."""
        if self._fd >= 0:
            if self._phase is OPEN:
                self._flush()
            os.close(self._fd)
            self._fd = -1
        slot, self._slot = self._slot, None
        if slot is None:
            return self._end
        leave_running(piece_key(self._prefix, self._name, self._inode), self._start, slot)
        return slot[1]

    def finish(
        self,
        status: int | None,
        *,
        error: str | None = None,
        kind: AttemptKind = AttemptKind.OK,
        retry_after: float | None = None,
    ) -> Attempt:
        end = self._close()
        phase, got = self._phase, self.kept
        version = self.http_version
        if phase is SPLIT or (status == 416 and error is None):
            why = self._why or f"HTTP {status} to a range request"
            return Attempt(
                http_status=status, http_version=version, kind=AttemptKind.SPLIT,
                error=f"ranges failed ({why}): starting over as one stream", received=got,
            )  # fmt: skip
        if phase is DISK or phase is LOCAL:
            local = AttemptKind.DISK if phase is DISK else AttemptKind.LOCAL
            return Attempt(
                http_status=status, http_version=version, kind=local, error=self._local,
                received=got, kept=got,
            )  # fmt: skip
        # Whole: every byte asked for, or up to where another connection took over.
        cut = end < self._end
        if phase is OPEN and (error is None or cut) and self._start + got >= end:
            return Attempt(
                http_status=status, http_version=version, nbytes=got, received=got,
                kept=got, complete=True,
            )  # fmt: skip
        if error is None and status is not None and status >= 400:
            return Attempt(
                http_status=status, http_version=version, kind=AttemptKind.STATUS,
                retry_after=retry_after,
            )  # fmt: skip
        if error is None:
            error = "the range ended early"
            kind = AttemptKind.READ
        return Attempt(
            http_status=status, http_version=version, kind=kind, error=error,
            received=got, kept=got,
        )  # fmt: skip

    def abandon(self) -> int:
        self._close()
        return self.kept
