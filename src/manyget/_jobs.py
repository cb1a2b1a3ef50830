"""Pure planning: read URL lists, check URLs, and derive safe file names.

Theory of operation: a run's input is any iterable of strings, possibly a generator of
millions of lines, so everything here is lazy. :func:`plan` turns each line into a
:class:`Job` carrying the file name it will be saved under (relative to the destination)
or, for a line that is not a usable URL, the problem to report. Names come from the last
segment of the URL path, cleaned so they can never escape the destination; two URLs that
map to one name get distinct names, deterministically, by a short hash of the URL. Only
8-byte digests of the names already used are remembered, in a compact table, so memory
grows by at most 16 bytes per URL, not by the URLs themselves.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, TypeAlias, cast
from urllib.parse import SplitResult, unquote, urlsplit

__all__ = [
    "PENDING",
    "Job",
    "check_url",
    "clean_name",
    "disposition_name",
    "mask_url",
    "plan",
    "plan_lines",
    "read_url_lines",
    "safe_name",
    "split_entry",
    "url_tag",
    "with_suffix",
]

MAX_NAME_BYTES = 255
_SCHEMES = frozenset({"http", "https"})
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")
# Bidi controls and other invisible format characters that disguise a name.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_UNSAFE_NAME_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(1, 10)}
    | {f"LPT{i}" for i in range(1, 10)}
)


class _Pending:
    """The type of :data:`PENDING`."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Final = _Pending()
"""Stands in a stream of inputs or jobs for "nothing yet, more may come": a slow input
(a pipe) has no line ready. Planning passes it through; the host gate answers WAIT."""


@dataclass(frozen=True, slots=True)
class Job:
    """One URL to fetch and the name (relative to the destination) to save it under.

    A job whose ``problem`` is set is never requested: it is reported as an error.
    """

    url: str
    name: str
    index: int = 0
    line: int | None = None
    problem: str | None = None
    sha256: str | None = None
    host: str = ""


def check_url(url: str) -> str | None:
    """Return why ``url`` cannot be downloaded, or ``None`` if it can."""
    return _inspect(url)[0]


def _inspect(url: str) -> tuple[str | None, SplitResult | None, str]:
    """Split ``url`` once: (problem, parts, host key for per-host limits)."""
    if not url:
        return "empty URL", None, ""
    if _BAD_URL_CHARS.search(url):
        return "URL contains spaces or control characters", None, ""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"bad URL: {exc}", None, ""
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        problem = f"unsupported scheme {scheme + ':' if scheme else '(none)'}; use http or https"
        return problem, None, ""
    host = parts.hostname
    if not host:
        return "URL has no host", None, ""
    if port == 0:
        return "bad port 0", None, ""
    key = f"{scheme}://{host}:{port or (443 if scheme == 'https' else 80)}"
    return None, parts, key


def mask_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for printing."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{tail}"


def read_url_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, entry)`` from a URL list, lazily.

    Blank lines and ``#`` comments are skipped; a byte-order mark, CR/LF endings and
    surrounding white space are removed. An entry is a URL, optionally followed by a tab
    and ``sha256=HEX`` (see :func:`split_entry`).
    """
    for number, raw in enumerate(lines, start=1):
        text = raw.lstrip("\ufeff") if number == 1 else raw
        text = text.strip(" \r\n")
        if text.strip() and not text.lstrip().startswith("#"):
            yield number, text.strip()


def split_entry(entry: str) -> tuple[str, str | None, str | None]:
    """Split ``URL<TAB>sha256=HEX`` into the URL, the checksum and a problem, if any."""
    url, tab, rest = entry.partition("\t")
    url = url.strip()
    if not tab:
        return url, None, None
    checksum = None
    for field in rest.split("\t"):
        key, eq, value = field.strip().partition("=")
        if not field.strip():
            continue
        if key.lower() != "sha256" or not eq:
            return url, None, f"unknown field {field.strip()!r} (expected sha256=HEX)"
        value = value.strip().lower()
        if not _SHA256.fullmatch(value):
            return url, None, "sha256 must be 64 hexadecimal digits"
        checksum = value
    return url, checksum, None


def safe_name(url: str) -> str:
    """The file name for ``url``: the last path segment, made safe to create anywhere.

    The result has no path separators, no ``..``, no control or bidi characters, no
    leading dot, no reserved Windows device name, and is at most 255 bytes of UTF-8,
    shortened on a character boundary keeping the extension.
    """
    return _name_from(urlsplit(url))


def _name_from(parts: SplitResult) -> str:
    path = parts.path
    segment = unquote(path.rsplit("/", 1)[-1], errors="replace")
    name = clean_name(segment)
    if not name:
        host = parts.hostname or "download"
        name = clean_name(f"{host}.index" if path.strip("/") == "" else "index")
    return name


def clean_name(text: str) -> str:
    """``text`` made safe as one file name (see :func:`safe_name`); may be empty."""
    name = unicodedata.normalize("NFC", text)
    name = _INVISIBLE.sub("", name)
    name = _UNSAFE_NAME_CHARS.sub("_", name)
    name = name.strip().lstrip(".").rstrip(". ")
    if not name:
        return ""
    if name.partition(".")[0].upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    return _shorten(name, MAX_NAME_BYTES)


_DISPOSITION_STAR = re.compile(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", re.IGNORECASE)
_DISPOSITION = re.compile(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))', re.IGNORECASE)


def disposition_name(value: str | None) -> str | None:
    """The safe file name a ``Content-Disposition`` header asks for, if any.

    ``filename*`` (RFC 5987, percent-encoded) wins over ``filename``. Only the last
    segment of whatever path the server sends is kept, then cleaned like any name.
    """
    if not value:
        return None
    raw: str | None = None
    star = _DISPOSITION_STAR.search(value)
    if star:
        charset = star.group(1).strip() or "utf-8"
        try:
            raw = unquote(star.group(2).strip(), encoding=charset, errors="replace")
        except LookupError:
            raw = None
    if raw is None:
        plain = _DISPOSITION.search(value)
        if plain is None:
            return None
        raw = plain.group(1) if plain.group(1) is not None else plain.group(2).strip()
        raw = re.sub(r"\\(.)", r"\1", raw)
    segment = raw.replace("\\", "/").rsplit("/", 1)[-1]
    return clean_name(segment) or None


def _shorten(name: str, limit: int) -> str:
    raw = name.encode()
    if len(raw) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    tail = f".{ext}" if ext else ""
    room = limit - len(tail.encode())
    cut = stem.encode()[:room].decode(errors="ignore")
    return cut + tail


def with_suffix(name: str, tag: str) -> str:
    """``name`` with ``~tag`` before its extension, still within 255 bytes."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    tail = f".{ext}" if ext else ""
    return _shorten(stem, MAX_NAME_BYTES - len(tail.encode()) - len(tag) - 1) + f"~{tag}{tail}"


def url_tag(url: str, salt: int = 0) -> str:
    """Eight hex digits from the URL's hash (salted when the first choice is taken)."""
    return f"{_digest(f'{salt}:{url}' if salt else url):016x}"[:8]


def _digest(text: str) -> int:
    """A non-zero 64-bit digest of ``text`` (zero marks an empty slot in ``_DigestSet``)."""
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
    return value or 1


class _DigestSet:
    """A set of 64-bit digests in 8 bytes a slot: open addressing over an ``array``.

    A Python ``set`` of ints costs about 90 bytes an entry; this costs 16 at most (load
    factor kept under one half), which is what lets a run plan millions of URLs in a few
    megabytes.
    """

    __slots__ = ("_count", "_mask", "_slots")

    def __init__(self, capacity: int = 1024) -> None:
        self._slots = array("Q", bytes(8 * capacity))
        self._mask = capacity - 1
        self._count = 0

    def __contains__(self, key: int) -> bool:
        slots, mask = self._slots, self._mask
        i = key & mask
        while True:
            value = slots[i]
            if value == key:
                return True
            if value == 0:
                return False
            i = (i + 1) & mask

    def add(self, key: int) -> None:
        if 2 * (self._count + 1) > len(self._slots):
            self._grow()
        slots, mask = self._slots, self._mask
        i = key & mask
        while slots[i] != 0:
            if slots[i] == key:
                return
            i = (i + 1) & mask
        slots[i] = key
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        self._mask = len(self._slots) - 1
        self._count = 0
        for key in old:
            if key:
                self.add(key)


# A path whose last segment is already a safe name: plain ASCII, no escapes, query or
# fragment, no leading dot, at most 200 bytes. Such a segment is its own clean name.
_PLAIN_TAIL = re.compile(r"(?:/[A-Za-z0-9._~-]*)*/([A-Za-z0-9_~-][A-Za-z0-9._~-]{0,199})")


class _Origins:
    """Origins (``scheme://authority`` as written) that passed :func:`_inspect`.

    Lists repeat a few origins over and over. For a URL of a known origin whose path ends
    in a plain name, that name and the cached host key are the whole answer: no urlsplit,
    port parsing or name cleaning (a third of the planning cost per URL). Anything else
    takes the full path. The cache is cleared when it holds ``limit`` origins.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._hosts: dict[str, str] = {}
        self._limit = limit

    def quick(self, url: str) -> tuple[str, str] | None:
        """``(name, host key)`` for a plain URL of a known origin, else None."""
        scheme, sep, rest = url.partition("://")
        end = len(scheme) + 3 + len(rest.partition("/")[0])
        host = self._hosts.get(url[:end]) if sep else None
        if host is None:
            return None
        match = _PLAIN_TAIL.fullmatch(url, end)
        if match is None:
            return None
        name = match[1]
        if name[-1] == "." or name.partition(".")[0].upper() in _WINDOWS_RESERVED:
            return None
        return name, host

    def remember(self, url: str, parts: SplitResult, host: str) -> None:
        scheme, sep, rest = url.partition("://")
        authority = rest.partition("/")[0]
        if not sep or parts.netloc != authority:  # e.g. a query right after the host
            return
        if len(self._hosts) >= self._limit:
            self._hosts.clear()
        self._hosts[f"{scheme}://{authority}"] = host


def plan(urls: Iterable[str]) -> Iterator[Job]:
    """Turn URLs into jobs lazily, giving each a distinct safe name.

    An entry may carry a checksum, ``URL<TAB>sha256=HEX``: the file is then published only
    if its bytes match.
    """
    jobs = plan_lines((None, url.strip()) for url in urls)
    return cast(Iterator[Job], jobs)  # no PENDING goes in, so none comes out


Line: TypeAlias = tuple[int | None, str]


def plan_lines(items: Iterable[Line | _Pending]) -> Iterator[Job | _Pending]:
    """Like :func:`plan` for ``(line_number, url)`` pairs, as from :func:`read_url_lines`.

    A :data:`PENDING` among the items (input not ready yet) is passed on as it is.
    """
    used = _DigestSet()
    origins = _Origins()
    index = -1
    for item in items:
        if item is PENDING:
            yield PENDING
            continue
        assert not isinstance(item, _Pending)
        line, entry = item
        index += 1
        url, sha256, problem = split_entry(entry)
        known = origins.quick(url) if problem is None else None
        if known is not None:
            name, host = known
        else:
            parts: SplitResult | None = None
            host = ""
            if problem is None:
                problem, parts, host = _inspect(url)
            if problem is not None or parts is None:
                where = f"line {line}: " if line is not None else ""
                yield Job(url, "", index, line, f"{where}{problem}")
                continue
            origins.remember(url, parts, host)
            name = _name_from(parts)
        base = name
        key = _digest(name)
        salt = 0
        while key in used:  # a suffix from the URL's hash; salted if that is taken too
            candidate = with_suffix(base, url_tag(url, salt))
            key = _digest(candidate)
            name = candidate
            salt += 1
        used.add(key)
        yield Job(url, name, index, line, None, sha256, host)
