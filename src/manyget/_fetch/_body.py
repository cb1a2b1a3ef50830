"""Where one attempt's body goes: the decisions on a response, executed on a :class:`Part`."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from .._jobs import Job, disposition_name
from .._policy import Saved, resume_decision
from .._results import Attempt, AttemptKind
from ._part import Busy, Part, sha256_of

__all__ = ["Body", "Field", "no_field"]

Field = Callable[[str], "str | None"]  # a response header by its lower-case name
_SIDECAR_FROM = 1 << 20  # bodies larger than this get a sidecar as soon as they start


def no_field(name: str) -> None:
    """A :data:`Field` for a response with no headers worth reading."""
    return None


class Body:
    """Where one attempt's body goes: every driver uses it through a Transfer.

    ``request_headers`` asks for the rest of a resumable partial file. When the first
    byte of a 2xx body arrives (or a bodiless response ends), ``start`` decides, from
    the status and headers, to append, write from scratch, or give up on the partial file;
    ``finish`` publishes, keeps for a resume, or drops, and says what happened.
    """

    __slots__ = (
        "_disposition",
        "_field",
        "_left",
        "_length",
        "_local",
        "_max",
        "_part",
        "_rename",
        "_saved",
        "_sha256",
        "_verdict",
        "kept",
        "offset",
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
    ) -> None:
        self.url = job.url
        self._disposition = disposition
        self._rename: str | None = None
        self._sha256 = job.sha256
        self._max = max_size
        self._part = Part(prefix, job.name)
        found = self._part.saved(job.url) if resume else None
        self.offset: int = 0
        self._saved: Saved | None = None
        if found is not None:
            self.offset, self._saved = found
        self._verdict = ""
        self._local = ""
        self.kept = 0
        self._left = 0  # bytes left in the partial file for a resume after a write error
        self._field: Field | None = None
        self._length: int | None = None

    @property
    def started(self) -> bool:
        """True once ``start`` has decided what to do with the body."""
        return self._verdict != ""

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
            if wanted and wanted != os.path.basename(self._part.final):
                self._rename = wanted
        if status == 200:
            decision = "fresh"  # resume_decision's answer to any 200, without the lookups
        else:
            decision = resume_decision(
                self.offset, self._saved, status, field("content-range"), field("etag")
            )
        if decision not in ("fresh", "append"):
            self._verdict = decision
            return False
        if self._max is not None and length is not None and length > self._max:
            self._verdict = "too big"
            return False
        if decision == "fresh":
            self.offset = 0
            self._length = length
        else:
            self._length = self._saved.length if self._saved else None
        try:
            self._part.open(self.offset)
            self._verdict = "open"
            if decision == "fresh" and (length is None or length > _SIDECAR_FROM):
                # Big bodies get their sidecar now, so even kill -9 leaves them resumable.
                self._part.remember(self._memo())
        except Busy:
            self._verdict = "busy"
            return False
        except OSError as exc:
            self._local_error(exc)
            return False
        return True

    def _local_error(self, exc: OSError) -> None:
        disk_full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        self._verdict = "disk" if disk_full else "local"
        self._local = f"{self._part.final}: {exc.strerror or exc}"

    def write(self, data: bytes) -> bool:
        """Store ``data``; False (nothing stored) once the body passes ``max_size``."""
        if self._max is not None and self.offset + self.kept + len(data) > self._max:
            self._verdict = "too big"
            return False
        try:
            self._part.write(data)
        except OSError as exc:
            kept = self._verdict == "open"
            self._local_error(exc)
            if kept:
                self._left = self._part.keep(self._memo())  # the bytes so far stay
            return False
        self.kept += len(data)
        return True

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
        verdict = self._verdict
        if verdict == "open" and error is None and status is not None and 200 <= status < 300:
            return self._publish(status, self.offset + self.kept)  # the usual end, first
        part = self._part
        got = self.kept
        if verdict == "busy":
            message = f"busy: another process is writing {part.final}"
            return Attempt(http_status=status, kind=AttemptKind.FATAL, error=message)
        if verdict in ("disk", "local"):
            kind = AttemptKind.DISK if verdict == "disk" else AttemptKind.LOCAL
            return Attempt(
                http_status=status, kind=kind, error=self._local, received=got, kept=self._left
            )
        if verdict == "too big":
            part.drop()
            message = f"body larger than --max-size ({self._max:,} bytes)"
            return Attempt(http_status=status, kind=AttemptKind.FATAL, error=message, received=got)
        if verdict == "restart":
            part.drop()
            message = "the answer does not fit the partial file; starting over"
            return Attempt(http_status=status, kind=AttemptKind.READ, error=message, received=got)
        if verdict == "complete":
            return self._publish(status, self.offset)
        if error is not None:
            left = part.keep(self._memo()) if verdict == "open" else 0
            return Attempt(http_status=status, kind=kind, error=error, received=got, kept=left)
        if status is None or not 200 <= status < 300:
            failed = status is not None and status >= 400
            return Attempt(
                http_status=status,
                kind=AttemptKind.STATUS if failed else AttemptKind.OK,
                retry_after=retry_after,
            )
        if verdict == "" and not self.start(
            status, 0, no_field
        ):  # a 2xx with no body at all: the file is empty
            return self.finish(status)
        return self._publish(status, self.offset + self.kept)

    def _publish(self, status: int | None, size: int) -> Attempt:
        part = self._part
        if self._sha256 is not None:
            # Read back through another descriptor while ours still holds the lock: the
            # bytes went out with os.write, unbuffered, so they are all there.
            got = sha256_of(part.tmp)
            if got != self._sha256:
                part.drop()
                message = f"sha256 mismatch: got {got}, expected {self._sha256}"
                return Attempt(
                    http_status=status, kind=AttemptKind.READ, error=message, received=self.kept
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
            kind = AttemptKind.DISK if self._verdict == "disk" else AttemptKind.LOCAL
            return Attempt(
                http_status=status, kind=kind, error=self._local, received=self.kept, kept=left
            )
        return Attempt(
            http_status=status, nbytes=size, received=self.kept, complete=True, saved_as=saved_as
        )

    def abandon(self) -> int:
        """The attempt was cancelled: keep what can be resumed; the bytes kept."""
        if self._verdict == "open":
            return self._part.keep(self._memo())
        return 0
