"""What the server serves: generated flags and byte streams, test routes, or a directory.

Routes (paths are case-sensitive and percent-decoded; the query string is ignored except where
noted)::

    /flags/{cc}/{cc}.gif        the flag of one of the 194 codes, lowercase (image/gif)
    /flags/{cc}/metadata.json   {"tld_cc", "iso_cc", "country", "gec_cc"} (application/json)
    /bytes/{n}                  n deterministic bytes, streamed: see ``bytes_chunks``
    /truncate/{n}               the bytes of /bytes/{n}; without a Range header the body stops
                                halfway and the connection closes (ranged requests are whole,
                                so a client can resume)
    /status/{code}              that status (200-599, not 204/304) with a short text body;
                                ``?retry-after=S`` adds a ``Retry-After: S`` header
    /reset                      the connection is reset without a response

With a data directory, every path names a file under it instead, and nothing else is served.
When fault routes are on (always in ``Server``, with ``serve(fault_routes=True)``), paths under
``/faults/`` are theirs, data directory or not: see ``_fault_routes``.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import mimetypes
import os
import re
import stat
import struct
import threading
import urllib.parse
from collections.abc import Generator
from dataclasses import dataclass

from ._countries import COUNTRY_CODES, flag_metadata
from ._gif import flag_gif
from ._http import Request, Resource, http_date

__all__ = ["BLOCK", "FileTree", "Reply", "Router", "bytes_chunks", "bytes_resource"]

# Generated content never changes; date it to the book's first edition.
GENERATED_TIMESTAMP = calendar.timegm((2015, 8, 20, 0, 0, 0))
GENERATED_LAST_MODIFIED = http_date(GENERATED_TIMESTAMP)
BLOCK = 4096
CHUNK = 64 * 1024
MAX_BYTES = 1 << 40
_BLOCK_HEADER = struct.Struct(">QQ")
_BYTES = re.compile(r"/(bytes|truncate)/([0-9]{1,13})")
_STATUS = re.compile(r"/status/([0-9]{3})")
_SECONDS = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True, slots=True)
class Reply:
    """A route answered by a bare status rather than a resource."""

    status: int
    extra: str = ""  # header fields, each ending in CRLF
    reset: bool = False


NOT_FOUND = Reply(404)
FORBIDDEN = Reply(403)


def _memory_resource(data: bytes, content_type: str) -> Resource:
    etag = f'"{hashlib.blake2b(data, digest_size=12).hexdigest()}"'

    def read(start: int, stop: int) -> Generator[bytes, None, None]:
        view = memoryview(data)
        for pos in range(start, stop, CHUNK):
            yield bytes(view[pos : min(stop, pos + CHUNK)])

    return Resource(len(data), etag, GENERATED_LAST_MODIFIED, content_type, read)


@functools.cache
def _flag_resource(cc: str, kind: str) -> Resource:
    if kind == "gif":
        return _memory_resource(flag_gif(cc), "image/gif")
    return _memory_resource(flag_metadata(cc), "application/json")


_FLAG_ROUTES: dict[str, tuple[str, str]] = {}
for _cc in COUNTRY_CODES:
    _FLAG_ROUTES[f"/flags/{_cc.lower()}/{_cc.lower()}.gif"] = (_cc, "gif")
    _FLAG_ROUTES[f"/flags/{_cc.lower()}/metadata.json"] = (_cc, "json")


@functools.cache
def _generated_sums() -> Resource:
    """``/SHA256SUMS`` of the generated flags, in the ``sha256sum`` format."""
    lines = []
    for path, (cc, kind) in sorted(_FLAG_ROUTES.items()):
        data = flag_gif(cc) if kind == "gif" else flag_metadata(cc)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {path.lstrip('/')}\n")
    return _memory_resource("".join(lines).encode(), "text/plain; charset=utf-8")


SUMS = "/SHA256SUMS"
MAX_SALT = 1 << 24


@functools.lru_cache(maxsize=64)
def _block_filler(n: int, salt: int) -> bytes:
    key = b"manyget bytes %d" % n if not salt else b"manyget bytes %d salt %d" % (n, salt)
    return hashlib.shake_256(key).digest(BLOCK - _BLOCK_HEADER.size)


def bytes_chunks(n: int, start: int, stop: int, salt: int = 0) -> Generator[bytes, None, None]:
    """Bytes [start, stop) of the /bytes/{n} body, in chunks of at most 64 KiB.

    The body is a run of 4 KiB blocks; block k is ``struct.pack(">QQ", n, k)`` followed by
    4080 bytes of SHAKE-256 output keyed by n. So any byte can be computed from its offset,
    nothing is held in memory beyond a chunk, and a client that resumes at a wrong offset
    (even a multiple of the block size) gets different bytes.

    A ``salt`` in [1, 2**24) gives another body of the same size that differs in every block
    (the header packs ``k + salt * 2**40``, the filler is keyed by n and salt); the fault
    route ``/faults/etag-changes`` serves one per request. Salt 0 is the /bytes/{n} body.
    """
    if not 0 <= salt < MAX_SALT:
        raise ValueError(f"salt must be in [0, 2**24), got {salt}")
    filler = _block_filler(n, salt)
    tag = salt << 40
    pos = start
    while pos < stop:
        end = min(stop, (pos // CHUNK + 1) * CHUNK)
        first, last = pos // BLOCK, (end - 1) // BLOCK
        buf = b"".join(_BLOCK_HEADER.pack(n, tag + k) + filler for k in range(first, last + 1))
        base = first * BLOCK
        yield buf[pos - base : end - base]
        pos = end


def bytes_resource(n: int, *, truncate: bool = False) -> Resource:
    """The /bytes/{n} body as a resource; ``truncate`` yields only half of any span asked."""

    def read(start: int, stop: int) -> Generator[bytes, None, None]:
        if truncate:
            stop = start + (stop - start) // 2
        return bytes_chunks(n, start, stop)

    return Resource(n, f'"bytes-{n:x}"', GENERATED_LAST_MODIFIED, "application/octet-stream", read)


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _open_regular(path: str) -> tuple[int, os.stat_result] | Reply:
    """Open ``path`` for reading without ever blocking; only a regular file is kept.

    ``O_NONBLOCK`` makes the open of a FIFO (or a device) return at once instead of waiting
    for a writer on the event loop, ``O_NOFOLLOW`` refuses a symlink swapped in after the path
    was resolved, and the type is checked on the opened descriptor, so nothing can change
    between the check and the read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except PermissionError:
        return FORBIDDEN
    except (OSError, ValueError):
        return NOT_FOUND
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return NOT_FOUND
    if not stat.S_ISREG(st.st_mode):  # directories, FIFOs, devices, sockets
        os.close(fd)
        return NOT_FOUND
    return fd, st


def _file_chunks(
    path: str, identity: tuple[int, int], start: int, stop: int
) -> Generator[bytes, None, None]:
    # Blocking reads of a regular file on the event loop: fine for a local server, and far
    # simpler than a thread pool. The file is opened again (a resource may never be read, and
    # an open descriptor per answer in flight would be one more thing to leak); if another
    # file took the name meanwhile, or it shrank, fewer bytes come and the caller closes.
    opened = _open_regular(path)
    if isinstance(opened, Reply):
        return
    fd, st = opened
    with open(fd, "rb") as file:
        if (st.st_dev, st.st_ino) != identity:
            return
        file.seek(start)
        pos = start
        while pos < stop:
            data = file.read(min(4 * CHUNK, stop - pos))
            if not data:
                return
            pos += len(data)
            yield data


class FileTree:
    """Files under one root directory; nothing that resolves outside it is ever opened.

    A path with a segment that starts with a dot (``.git/config``, ``.env``) is not served,
    nor a link to one, unless ``hidden``.
    """

    def __init__(self, root: str | os.PathLike[str], *, hidden: bool = False) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise NotADirectoryError(f"data directory not found: {os.fspath(root)!r}")
        self.root = real
        self.hidden = hidden

    def resolve(self, path: str) -> Resource | Reply:
        try:
            text = urllib.parse.unquote_to_bytes(path).decode("utf-8")
        except UnicodeDecodeError:
            return NOT_FOUND
        if "\x00" in text or "\\" in text:
            return FORBIDDEN
        parts = text.split("/")
        if ".." in parts:
            return FORBIDDEN
        parts = [p for p in parts if p not in ("", ".")]
        if not parts:
            return NOT_FOUND
        if not self.hidden and any(p.startswith(".") for p in parts):
            return NOT_FOUND
        full = os.path.realpath(os.path.join(self.root, *parts))
        # realpath resolved every symlink, so this also refuses links that point outside.
        if os.path.commonpath([full, self.root]) != self.root:
            return FORBIDDEN
        if not self.hidden and any(
            p.startswith(".") for p in os.path.relpath(full, self.root).split(os.sep)
        ):
            return NOT_FOUND
        opened = _open_regular(full)
        if isinstance(opened, Reply):
            return opened
        fd, st = opened
        os.close(fd)
        content_type = mimetypes.guess_type(full)[0] or "application/octet-stream"
        return Resource(
            size=st.st_size,
            etag=f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            last_modified=http_date(st.st_mtime),
            content_type=content_type,
            read=functools.partial(_file_chunks, full, (st.st_dev, st.st_ino)),
        )


class TreeSums:
    """``/SHA256SUMS`` of a ``--data`` tree: every file it serves, hashed on a thread of its
    own when the server starts (the event loop never waits on it); until it is done the
    route answers 503 with ``Retry-After``. Files changed later are not hashed again."""

    def __init__(self, tree: FileTree) -> None:
        self._tree = tree
        self._resource: Resource | None = None
        threading.Thread(target=self._hash, name="manyget-sums", daemon=True).start()

    def _hash(self) -> None:
        root = self._tree.root
        lines = []
        for folder, dirs, files in os.walk(root):
            if not self._tree.hidden:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
            dirs.sort()
            for name in sorted(files):
                if not self._tree.hidden and name.startswith("."):
                    continue
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, root).replace(os.sep, "/")
                if relative == SUMS.lstrip("/") or "\n" in relative or "\\" in relative:
                    continue
                opened = _open_regular(path)
                if isinstance(opened, Reply):
                    continue
                digest = hashlib.sha256()
                with open(opened[0], "rb") as f:
                    while chunk := f.read(1 << 20):
                        digest.update(chunk)
                lines.append(f"{digest.hexdigest()}  {relative}\n")
        self._resource = _memory_resource("".join(lines).encode(), "text/plain; charset=utf-8")

    def resolve(self) -> Resource | Reply:
        return self._resource or Reply(503, "Retry-After: 1\r\n")


class Router:
    """Map a request to what answers it; ``data_dir`` replaces the generated routes.

    ``/SHA256SUMS`` lists what is served in the ``sha256sum`` format (for ``--data``, a
    ``SHA256SUMS`` file of the folder itself wins).
    """

    def __init__(
        self, data_dir: str | os.PathLike[str] | None = None, *, hidden: bool = False
    ) -> None:
        self.files = None if data_dir is None else FileTree(data_dir, hidden=hidden)
        self._sums = None if self.files is None else TreeSums(self.files)

    def route(self, request: Request) -> Resource | Reply:
        if self.files is not None:
            found = self.files.resolve(request.path)
            if found is NOT_FOUND and request.path == SUMS and self._sums is not None:
                return self._sums.resolve()
            return found
        path = request.path
        if path == SUMS:
            return _generated_sums()
        if "%" in path:
            path = urllib.parse.unquote(path)
        flag = _FLAG_ROUTES.get(path)
        if flag is not None:
            return _flag_resource(*flag)
        match = _BYTES.fullmatch(path)
        if match is not None:
            n = int(match[2])
            if n > MAX_BYTES:
                return NOT_FOUND
            truncate = match[1] == "truncate" and "range" not in request.headers
            return bytes_resource(n, truncate=truncate)
        match = _STATUS.fullmatch(path)
        if match is not None:
            return _status_reply(int(match[1]), request.query)
        if path == "/reset":
            return Reply(0, reset=True)
        return NOT_FOUND


def _status_reply(status: int, query: str) -> Reply:
    if not 200 <= status <= 599 or status in (204, 304):
        return NOT_FOUND
    retry_after = urllib.parse.parse_qs(query).get("retry-after")
    if not retry_after:
        return Reply(status)
    if not _SECONDS.fullmatch(retry_after[-1]):
        return Reply(400)
    return Reply(status, f"Retry-After: {retry_after[-1]}\r\n")
