"""The only code that writes downloads to disk: the hidden partial file, its sidecar,
its lock, and the atomic publish onto the final name.

A name under the destination is only ever a complete file: bytes go to ``.NAME.part``,
which is renamed onto ``NAME`` in one ``os.replace`` (or hard-linked, for a name a server
chose, so nothing is ever clobbered) once the body is complete. A small body of known
length goes to a file with no name at all (``O_TMPFILE``), linked to its final name when
complete: one directory update instead of two, no lock, and nothing any other process can
see or touch while it is written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import stat
import sys
import weakref
from collections.abc import Callable
from typing import Any

from .._jobs import Job, url_tag, with_suffix
from .._policy import Saved, Settings
from .._results import Result, Status
from .._split import middle, most_ranges

__all__ = [
    "Busy",
    "Folder",
    "Held",
    "Part",
    "SplitFile",
    "preflight",
    "reserve",
    "sha256_of",
    "split_files",
]

_O_TMPFILE: int = getattr(os, "O_TMPFILE", 0)  # Linux: a file with no name until linked
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)  # O_TMPFILE refused here
_PROC_FD = "/proc/self/fd/"  # where an unnamed file is found to link it (linkat)


def preflight(job: Job, path: str, settings: Settings) -> Result | None:
    """The result of ``job`` when no request is needed: a bad URL, or a complete file.

    Files appear under their final names only when complete, so a file already there is
    skipped unless the run overwrites.
    """
    problem = job.problem  # planning (to_uri) leaves only plain ASCII URLs without one
    if problem is not None:
        return Result(url=job.url, path=None, status=Status.ERROR, attempts=0, error=problem)
    # A destination empty at the start holds no name of this run before the run makes it.
    if settings.overwrite or settings.fresh:
        return None
    if "/" not in job.name:
        size = _complete(path, job.sha256)
    else:  # in a folder of its own (dir=): looked up without following links
        folder, _, base = job.name.rpartition("/")
        try:
            fd = open_folder(path[: len(path) - len(job.name)], folder, create=False)
        except OSError:
            return None  # not there (or not safe): the download says why
        try:
            size = _complete(f"{_PROC_FD}{fd}/{base}", job.sha256)
        finally:
            os.close(fd)
    if size is None:
        return None
    return Result(url=job.url, path=path, status=Status.SKIPPED, bytes=size, attempts=0)


def _complete(path: str, sha256: str | None) -> int | None:
    """The size of the complete file at ``path`` (with that SHA-256, when given), if any."""
    # access() answers the usual "not there" without raising; stat() confirms the rest.
    if not os.access(path, os.F_OK):
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    if sha256 is None or sha256_of(path) == sha256:
        return info.st_size
    return None


def open_folder(prefix: str, folder: str, *, create: bool) -> int:
    """A descriptor of ``folder`` (``a/b``) under ``prefix``, walked one segment at a time
    and never through a symbolic link (a link planted on the way is refused, not
    followed); missing segments are made when ``create``."""
    fd = os.open(prefix, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in folder.split("/"):
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                inner = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
                inner = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise OSError(exc.errno, f"{part!r} on the way is not a folder") from None
                raise
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class Busy(Exception):
    """Another process holds the lock on this partial file."""


# libcurl hands a body over 16 KiB at a time. A system call per chunk made writing to
# ext4 cost more CPU than receiving: 4 x 128 MiB took 0.52 CPU s with a write per chunk,
# 0.32 s with one writev per 256 KiB (docs/benchmarks.md). A slow stream's small chunks
# go out every 16, so a kill -9 loses little of it (a resume fetches that again).
HOLD_BYTES = 256 << 10
HOLD_CHUNKS = 16


RESERVE_FROM = 8 << 20  # bodies at least this large have their blocks allocated first
_KEEP_SIZE = 1  # FALLOC_FL_KEEP_SIZE
TMPFS_MAGIC = 0x01021994  # statfs's f_type for tmpfs


@functools.cache
def _libc() -> tuple[Any, Any] | None:
    """The C library with ``fallocate`` and ``fstatfs`` (Linux), and the structure
    ``fstatfs`` fills; None where there are not both."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    class StatFs(ctypes.Structure):  # struct statfs, and room for what comes after
        _fields_ = [
            ("f_type", ctypes.c_long),
            ("f_bsize", ctypes.c_long),
            ("f_blocks", ctypes.c_ulong),
            ("f_bfree", ctypes.c_ulong),
            ("f_bavail", ctypes.c_ulong),
            ("f_files", ctypes.c_ulong),
            ("f_ffree", ctypes.c_ulong),
            ("f_fsid", ctypes.c_int * 2),
            ("f_namelen", ctypes.c_long),
            ("f_frsize", ctypes.c_long),  # the unit of the block counts
            ("rest", ctypes.c_byte * 256),
        ]

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        i64 = ctypes.c_int64
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, i64, i64]
        libc.fstatfs.argtypes = [ctypes.c_int, ctypes.POINTER(StatFs)]
    except (OSError, AttributeError):  # no C library to load, or an old one
        return None
    return libc, StatFs


def file_system(fd: int) -> tuple[int, int] | None:
    """The type of the file system holding ``fd`` (``statfs``'s ``f_type``) and the
    bytes free there for us; None where that cannot be asked."""
    found = _libc()
    if found is None:
        return None
    libc, statfs = found
    info = statfs()
    if libc.fstatfs(fd, info) != 0:
        return None
    return info.f_type, info.f_bavail * (info.f_frsize or info.f_bsize)


def reserve(fd: int, offset: int, length: int) -> None:
    """Allocate the blocks for ``length`` bytes at ``offset`` before they are written,
    leaving the file's size alone (it is what a resume counts).

    On ext4 a write into allocated blocks skips the file system's per-page reservation:
    S3's 4 x 128 MiB took a quarter less CPU to write. Only a hint: where it cannot be
    had (not Linux, a file system without it, too little room) writes allocate as they
    go, and tmpfs is skipped, where it zeroes the pages the writes then fill.
    """
    if length < RESERVE_FROM:
        return
    found, libc = file_system(fd), _libc()
    if found is None or libc is None or found[0] == TMPFS_MAGIC:
        return
    if found[1] < length + RESERVE_FROM:
        return  # the disk fills up as the writes go, not before the first byte
    libc[0].fallocate(fd, _KEEP_SIZE, offset, length)  # an error: as if never asked


class Held:
    """Chunks of a body waiting to be written together, in one ``writev``/``pwritev``.

    Bytes held are not on disk: whoever holds them writes them (:meth:`write`) before
    anything reads the file, measures it, names it or reports its bytes as kept.
    """

    __slots__ = ("chunks", "size")

    def __init__(self) -> None:
        self.chunks: list[bytes | memoryview] = []
        self.size = 0

    def add(self, data: bytes | memoryview) -> bool:
        """Hold ``data`` (never copied: libcurl's chunks are new objects); True when
        enough is held to write."""
        self.chunks.append(data)
        self.size += len(data)
        return self.size >= HOLD_BYTES or len(self.chunks) >= HOLD_CHUNKS

    def write(self, fd: int, at: int = -1) -> int:
        """Write everything held, at the file's position or at offset ``at``; the bytes
        written. Held bytes are forgotten first: after an error, the file holds a prefix
        of them and nothing else, and its size says how much."""
        chunks, size = self.chunks, self.size
        if not size:
            return 0
        self.chunks, self.size = [], 0
        written = os.writev(fd, chunks) if at < 0 else os.pwritev(fd, chunks, at)
        if written < size:  # rare for files: the rest, one call at a time
            rest = memoryview(b"".join(chunks))[written:]
            while rest:
                n = os.write(fd, rest) if at < 0 else os.pwrite(fd, rest, at + written)
                rest = rest[n:]
                written += n
        return size


class Folder:
    """The destination folder, opened once per transfer handle for files with no name.

    ``unnamed`` says whether small bodies may go to ``O_TMPFILE`` files here: Linux, a
    file system that has them (ext4, xfs, btrfs, tmpfs) and ``/proc`` to link them by.
    It turns False at the first refusal, and the partial files take over.
    """

    __slots__ = ("_fd", "_subs", "prefix", "unnamed")

    def __init__(self, prefix: str, *, unnamed: bool = True) -> None:
        self.prefix = prefix
        self._fd = -1
        self.unnamed = unnamed and bool(_O_TMPFILE) and os.path.isdir("/proc/self/fd")
        self._subs: dict[str, int] = {}  # folders of dir= jobs: their descriptors

    def sub(self, folder: str, *, create: bool) -> str:
        """A prefix that reaches ``folder`` (``a/b``) through a descriptor of it, opened
        without following links: nothing swapped in on the way later changes where
        the bytes go."""
        fd = self._subs.get(folder)
        if fd is None:
            if len(self._subs) >= 64:
                self._close_subs()
            fd = self._subs[folder] = open_folder(self.prefix, folder, create=create)
        return f"{_PROC_FD}{fd}/"

    def _close_subs(self) -> None:
        for fd in self._subs.values():
            os.close(fd)
        self._subs.clear()

    def fd(self) -> int:
        if self._fd < 0:
            self._fd = os.open(self.prefix, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._close_subs()


class Part:
    """The hidden partial file ``.NAME.part`` beside the final name, and its sidecar.

    The sidecar ``.NAME.part.json`` remembers the URL and the validators of the response
    the bytes came from, so a later attempt or run can ask for the rest. The partial file
    is locked (``flock``) while written: two processes never interleave bytes in it.

    A sidecar is only ever removed before its partial file (``drop``, ``publish``), so
    manyget itself never leaves a sidecar without a partial file; that is why a fresh
    partial file (``O_EXCL`` succeeded) needs no ``unlink`` of a sidecar when published.
    """

    __slots__ = (
        "_folder",
        "_held",
        "_inside",
        "fd",
        "final",
        "shown",
        "sidecar",
        "there",
        "tmp",
    )

    def __init__(self, prefix: str, name: str, inside: Folder | None = None) -> None:
        # ``prefix`` is the destination with its trailing separator: plain strings, not
        # pathlib or os.path.join, as this runs once per file.
        self.final = self.shown = prefix + name  # shown: the path for people and results
        self.tmp = f"{prefix}.{name}.part"
        self.fd = -1
        self._held = Held()  # bytes written but not yet on disk: see flush()
        self.sidecar = True  # a sidecar may exist: unlink it when done
        self.there = False  # saved() found a partial file (resumable or not)
        self._folder: Folder | None = None  # set while the file has no name
        self._inside: Folder | None = None
        if "/" in name:  # dir=: the file goes in a folder of its own, reached safely
            assert inside is not None
            self._inside = inside
            self._reach(create=False)

    def _reach(self, *, create: bool) -> bool:
        """Point the paths at the job's folder through its descriptor (made if missing
        when ``create``); False when it is not there yet."""
        inside = self._inside
        assert inside is not None
        folder, _, base = self.shown[len(inside.prefix) :].rpartition("/")
        try:
            prefix = inside.sub(folder, create=create)
        except OSError:
            if create:
                raise
            return False  # not there yet, or not safe: open() says which, with create
        self.final = prefix + base
        self.tmp = f"{prefix}.{base}.part"
        self._inside = None
        return True

    @property
    def meta(self) -> str:
        return self.tmp + ".json"

    def saved(self, url: str) -> tuple[int, Saved] | None:
        """The size of a resumable partial file for ``url`` and what its sidecar says."""
        if self._inside is not None:
            return None  # its folder is not there yet: nor is a partial file
        if not os.access(self.tmp, os.F_OK):  # the usual case, answered without an exception
            return None
        self.there = True
        import json

        try:
            size = os.stat(self.tmp).st_size
            with open(self.meta, encoding="utf-8") as f:
                data = json.load(f)
            saved = Saved(url, data.get("etag"), data.get("last_modified"), data.get("length"))
        except (OSError, ValueError, AttributeError):
            return None
        if size <= 0 or data.get("url") != url or saved.validator is None:
            return None
        if "ranges" in data:  # a file fetched as ranges has holes: never append to it
            return None
        return size, saved

    def open(self, offset: int) -> None:
        """Open for writing at ``offset`` (0: from scratch), holding the lock."""
        if self._inside is not None:
            self._reach(create=True)
        # O_NOFOLLOW: a symlink planted in the destination is never written through
        # (O_EXCL never follows one either).
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        if not offset:
            try:
                fd = os.open(self.tmp, flags | os.O_EXCL, 0o644)
            except FileExistsError:
                pass
            else:
                # New and empty: nothing to truncate or seek, no sidecar of ours to remove.
                # The lock still matters: another process may open the file now.
                self._lock(fd)
                self.fd = fd
                self.sidecar = False
                return
        fd = os.open(self.tmp, flags, 0o644)
        self._lock(fd)
        if offset and os.fstat(fd).st_size < offset:
            offset = 0  # changed under us: start over rather than leave a hole
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        self.fd = fd

    def open_unnamed(self, folder: Folder) -> bool:
        """Open a file with no name in the destination (``O_TMPFILE``), for a small body:
        no other process can see or touch it before :meth:`publish` links it to its
        name, so it needs no lock and no sidecar (a failure loses its bytes, a small
        file's worth). False where the file system has no such files."""
        try:
            fd = os.open(".", _O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o644, dir_fd=folder.fd())
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED:
                raise
            folder.unnamed = False
            return False
        self.fd = fd
        self._folder = folder
        self.sidecar = False
        return True

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(self.shown) from None

    def write(self, data: bytes) -> None:
        """Store ``data`` after what came before; it may stay held in memory until
        :meth:`flush` (every method that needs the bytes on disk flushes first)."""
        if self._held.add(data):
            self._held.write(self.fd)

    def flush(self) -> None:
        """Put every byte written on disk; an error leaves a prefix of them there."""
        self._held.write(self.fd)

    def remember(self, saved: Saved) -> None:
        """Write the sidecar that makes the partial file resumable."""
        record = {
            "url": saved.url,
            "etag": saved.etag,
            "last_modified": saved.last_modified,
            "length": saved.length,
        }
        import json

        self.sidecar = True
        with open(self.meta, "w", encoding="utf-8") as f:
            json.dump(record, f)

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _forget(self) -> None:
        """Remove the sidecar (first: never leave a sidecar without its partial file)."""
        if self.sidecar:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.meta)
            self.sidecar = False

    def digest(self) -> str:
        """The SHA-256 of what was written (read back through another descriptor while
        ours still holds the lock, once flushed)."""
        self.flush()
        if self._folder is None:
            return sha256_of(self.tmp)
        digest = hashlib.sha256()
        offset = 0
        while chunk := os.pread(self.fd, 1 << 20, offset):
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()

    def publish(self) -> None:
        """Rename the complete file onto its final name, forgetting the sidecar first."""
        self.flush()
        folder = self._folder
        if folder is not None:
            try:
                self._link_over(self.final[len(folder.prefix) :])
            except OSError:  # linking refused (no usable /proc): copy, then publish below
                folder.unnamed = False
                self._copy_to_part()
            else:
                self._close()
                return
        self._close()
        self._forget()
        os.replace(self.tmp, self.final)

    def _link(self, name: str) -> None:
        """Give the file with no name ``name`` (``linkat``, which never replaces a file)."""
        assert self._folder is not None
        os.link(f"{_PROC_FD}{self.fd}", name, dst_dir_fd=self._folder.fd())

    def _name_part(self) -> None:
        """Give the file with no name its partial file's name, ``.NAME.part``: linked, or
        copied where a link is refused (then partial files for the rest of the run) or
        the name is taken."""
        folder = self._folder
        assert folder is not None
        try:
            self._link(self.tmp[len(folder.prefix) :])
        except FileExistsError:
            pass
        except OSError:
            folder.unnamed = False
        else:
            self._folder = None  # a partial file like any other from here on
            return
        self._copy_to_part()

    def _copy_to_part(self) -> None:
        """Copy the file with no name to ``.NAME.part`` (locked, as any partial file)."""
        assert self._folder is not None
        self.flush()
        source, size = self.fd, os.fstat(self.fd).st_size
        self._folder = None
        self.fd = -1
        self.sidecar = True  # a stale sidecar of a reused .NAME.part goes at publish
        try:
            try:
                self.open(0)
            except Busy:
                raise OSError(errno.EBUSY, "another process is writing its partial file") from None
            offset = 0
            while offset < size:
                offset += os.sendfile(self.fd, source, offset, size - offset)
        finally:
            os.close(source)

    def _link_over(self, name: str) -> None:
        """:meth:`_link`, replacing a file that took the name meanwhile, as a rename does."""
        try:
            self._link(name)
        except FileExistsError:
            pass
        else:
            return
        assert self._folder is not None
        directory = self._folder.fd()
        for salt in range(100):
            spare = f".manyget-{os.getpid()}-{self.fd}-{salt}.tmp"
            try:
                self._link(spare)
            except FileExistsError:
                continue
            os.replace(spare, name, src_dir_fd=directory, dst_dir_fd=directory)
            return
        raise FileExistsError(f"no free temporary name in {self._folder.prefix}")

    def publish_as(self, name: str, url: str) -> str:
        """Publish under a server-chosen ``name`` without ever replacing another file.

        ``os.link`` fails instead of clobbering, so a name already taken (by another
        download of this run, or anything else) gets a suffix from the URL's hash.
        """
        self.flush()
        if self._folder is not None:  # (a rare path: the partial file's name first)
            self._name_part()
        self._close()
        directory = os.path.dirname(self.final)
        shown = os.path.dirname(self.shown)
        for salt in range(100):
            candidate = name if salt == 0 else with_suffix(name, url_tag(url, salt))
            try:
                os.link(self.tmp, os.path.join(directory, candidate))
            except FileExistsError:
                continue
            self._forget()
            os.unlink(self.tmp)
            return os.path.join(shown, candidate)
        raise FileExistsError(f"no free name for {name!r} in {shown}")

    def keep(self, saved: Saved | None) -> int:
        """Stop writing, keeping the bytes for a resume when they can be validated; the
        size of the partial file kept (0: dropped)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # what reached the disk is what is kept
                self.flush()
        folder = self._folder
        if folder is not None:  # a file with no name: name it .NAME.part to keep it
            size = os.fstat(self.fd).st_size if self.fd >= 0 else 0
            if not size or saved is None or saved.validator is None:
                self._close()
                return 0
            try:
                self._name_part()
            except OSError:  # e.g. another process is writing a partial file of that name
                self._close()
                return 0
        size = os.fstat(self.fd).st_size if self.fd >= 0 else 0
        self._close()
        if size and saved is not None and saved.validator is not None:
            with contextlib.suppress(OSError):  # without a sidecar, a later run starts over
                self.remember(saved)
            return size
        self.drop()
        return 0

    def drop(self) -> None:
        self._held = Held()
        self._close()
        if self._folder is not None:
            return  # a file with no name is gone with its descriptor; .NAME.part is not ours
        self.sidecar = True  # whatever we know, make sure no sidecar outlives the file
        self._forget()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


# Pieces running in this process, by their partial file (its path and inode: an inode
# number alone may be another file system's), then by the byte they began at: [the next
# byte to write, the byte to stop before]. A piece (``SpanBody``) keeps its
# entry up to date; the feeder of the same process lowers the second number to take the
# rest of a slow piece for another connection (:meth:`SplitFile.steal`). The processes
# engine's parent holds copies of its workers' entries (:class:`Mirror`): a cut made in
# a copy travels to the worker, whose piece stops there.
RUNNING: dict[tuple[str, int], dict[int, list[int]]] = {}

Row = tuple[str, int, int, int, int]  # a running piece: path, inode, began, next byte, end


def running_rows() -> list[Row]:
    """The pieces running in this process, for another process's :class:`Mirror`."""
    return [
        (tmp, inode, began, slot[0], slot[1])
        for (tmp, inode), pieces in list(RUNNING.items())
        for began, slot in list(pieces.items())
    ]


def cut_rows(cuts: list[tuple[str, int, int, int]]) -> None:
    """Stop the pieces running here at the ends another process chose (path, inode, the
    byte each began at, where it now stops)."""
    for tmp, inode, began, end in cuts:
        slot = RUNNING.get((tmp, inode), {}).get(began)
        if slot is not None and end < slot[1]:
            slot[1] = end


def leave_running(key: tuple[str, int], began: int, slot: list[int]) -> None:
    """The piece that began at ``began`` no longer runs: its entry ``slot`` leaves
    :data:`RUNNING` (unless another took its place)."""
    pieces = RUNNING.get(key)
    if pieces is not None and pieces.get(began) is slot:
        del pieces[began]
        if not pieces:
            RUNNING.pop(key, None)


class Mirror:
    """Copies of other processes' running pieces in this process's :data:`RUNNING`, so
    the feeder here can cut them like its own; :meth:`cuts` says which ends it lowered,
    for their processes."""

    def __init__(self) -> None:
        # (process, path, inode, began) -> [next byte, end, the end the process knows]
        self._slots: dict[tuple[int, str, int, int], list[int]] = {}

    def update(self, source: int, rows: list[Row]) -> None:
        """``source``'s pieces running now (the whole list: the others ended)."""
        seen = set()
        for tmp, inode, began, at, end in rows:
            key = (source, tmp, inode, began)
            seen.add(key)
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = [at, end, end]
                RUNNING.setdefault((tmp, inode), {})[began] = slot
            else:  # a cut not yet seen there stays
                slot[0], slot[1], slot[2] = at, min(slot[1], end), min(slot[2], end)
        for key in [k for k in self._slots if k[0] == source and k not in seen]:
            self.forget(*key)

    def forget(self, source: int, tmp: str, inode: int, began: int) -> None:
        """A piece of ``source`` ended: it is no longer there to cut."""
        slot = self._slots.pop((source, tmp, inode, began), None)
        if slot is not None:
            leave_running((tmp, inode), began, slot)

    def cuts(self) -> dict[int, list[tuple[str, int, int, int]]]:
        """The ends lowered here since last asked, by process."""
        out: dict[int, list[tuple[str, int, int, int]]] = {}
        for (source, tmp, inode, began), slot in self._slots.items():
            if slot[1] < slot[2]:
                slot[2] = slot[1]
                out.setdefault(source, []).append((tmp, inode, began, slot[1]))
        return out


class SplitFile:
    """The partial file of a file fetched as ranges (see ``manyget._split``), held by the
    process that hands out its pieces: made sparse at its full length, locked for the
    whole run (another manyget run gets :class:`Busy`), its sidecar listing the complete
    ranges. The pieces write into it with ``pwrite`` through descriptors of their own, in
    any process, after checking it is the same file (its inode).
    """

    __slots__ = (
        "__weakref__",
        "_fd",
        "_finalizer",
        "_record",
        "final",
        "inode",
        "meta",
        "shown",
        "tmp",
    )

    def __init__(self, prefix: str, name: str) -> None:
        self.final = self.shown = prefix + name
        self.tmp = f"{prefix}.{name}.part"
        self.meta = self.tmp + ".json"
        self._fd = -1
        self.inode = 0
        self._finalizer: weakref.finalize[[int], SplitFile] | None = None
        self._record: tuple[str, int, str | None] = ("", 0, None)

    def open(self, url: str, length: int, validator: str | None) -> list[tuple[int, int]]:
        """Open (or make) the partial file for this version of ``url``; the ranges an
        earlier run completed, if its sidecar says they are of the same version."""
        import json

        done: list[tuple[int, int]] = []
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.tmp, flags, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OSError(errno.EBUSY, "another process is writing it") from None
            try:
                with open(self.meta, encoding="utf-8") as f:
                    data = json.load(f)
                size = os.fstat(fd).st_size
                same = data.get("url") == url and data.get("length") == length
                if same and "ranges" in data:
                    if data.get("validator") == validator and size == length:
                        done = [(int(a), int(b)) for a, b in data["ranges"]]
                elif same and validator in (data.get("etag"), data.get("last_modified")):
                    # A partial file of one stream (a resume's sidecar: a stream stopped
                    # to be split, or an earlier run's): its bytes are the first range.
                    done = [(0, size)] if 0 < size <= length else []
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                done = []
            if not done:
                os.ftruncate(fd, 0)  # another version, or no record: from scratch
            os.ftruncate(fd, length)  # sparse: the pieces fill it in place
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.inode = os.fstat(fd).st_ino
        # No piece of this run has started, and no other run can write it while we hold
        # the lock: an entry of this file left in RUNNING is stale, never to be cut.
        RUNNING.pop((self.tmp, self.inode), None)
        self._finalizer = weakref.finalize(self, os.close, fd)
        self._record = (url, length, validator)
        self.record(done)
        return done

    def record(self, done: list[tuple[int, int]]) -> None:
        """Write the sidecar: the complete ranges (a new file renamed over the old one, so
        a kill at any moment leaves one or the other, never half of one)."""
        import json

        url, length, validator = self._record
        record = {
            "url": url,
            "validator": validator,
            "length": length,
            "ranges": [list(r) for r in done],
        }
        spare = self.meta + ".new"
        with open(spare, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(spare, self.meta)

    def steal(self, least: int, *, take: bool = True) -> tuple[int, int, int] | None:
        """Cut the running piece of this file with the most bytes left, when that is at
        least twice ``least``, at about its middle (on 64 KiB): (the byte it began at,
        where it now stops, where it stopped before); the rest is the caller's to fetch.
        None when no piece is worth it; ``take=False`` only looks."""
        best: tuple[int, list[int]] | None = None
        most = 2 * least - 1
        for began, slot in list(RUNNING.get((self.tmp, self.inode), {}).items()):
            if slot[1] - slot[0] > most:
                best, most = (began, slot), slot[1] - slot[0]
        if best is None:
            return None
        began, slot = best
        at, end = slot[0], slot[1]
        cut = middle(at, end)
        if cut is None:
            return None
        if take:  # the piece stops there; a write of it already past is harmless: both
            slot[1] = cut  # write the same bytes of the same version (If-Range)
        return began, cut, end

    def close(self) -> None:
        """Stop writing; the partial file and its sidecar stay for a later run."""
        if self._finalizer is not None:
            self._finalizer()  # closes the descriptor (once), releasing the lock

    def publish(self, sha256: str | None) -> str | None:
        """Give the complete file its final name; the mismatch, when ``sha256`` is not
        what the file holds (the file is dropped then)."""
        if sha256 is not None:
            got = sha256_of(self.tmp)
            if got != sha256:
                self.drop()
                return f"sha256 mismatch: got {got}, expected {sha256}"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.meta)
        os.replace(self.tmp, self.final)
        self.close()
        return None

    def drop(self) -> None:
        """Remove the sidecar, then the partial file."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.meta)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)
        self.close()


def split_files(settings: Settings) -> tuple[int, int, Callable[[Job], SplitFile]]:
    """How a run's feeder splits large files: at most how many ranges at once, pieces at
    least how large, and the partial file of a job (see ``Feeder.split_with``)."""
    prefix = os.path.join(settings.dest, "")
    most = most_ranges(settings.split)
    return most, settings.min_split_size, lambda job: SplitFile(prefix, job.name)


def piece_key(prefix: str, name: str, inode: int) -> tuple[str, int]:
    """The key of a split file's pieces in :data:`RUNNING`."""
    return f"{prefix}.{name}.part", inode


def open_piece(prefix: str, name: str, inode: int) -> int:
    """A descriptor to write one piece into a split file's partial file, which must be
    the one its run made (``inode``): never a file made later under the same name."""
    fd = os.open(f"{prefix}.{name}.part", os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    if os.fstat(fd).st_ino != inode:
        os.close(fd)
        raise OSError(errno.ESTALE, "the partial file was replaced")
    return fd
