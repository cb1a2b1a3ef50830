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

import codecs
import contextlib
import hashlib
import re
import unicodedata
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeAlias, cast
from urllib.parse import SplitResult, quote, unquote, urlsplit

from ._frozen import quick_init

__all__ = [
    "PENDING",
    "Job",
    "check_url",
    "clean_name",
    "disposition_name",
    "mask_url",
    "parse_entry",
    "plan",
    "plan_lines",
    "printable",
    "read_jsonl_lines",
    "read_url_lines",
    "safe_name",
    "split_entry",
    "url_tag",
    "with_suffix",
]

# Every file manyget creates fits the usual 255-byte limit of a file name: NAME, the
# partial file ".NAME.part" (6 bytes more) and its sidecar ".NAME.part.json" (11 more).
FS_NAME_BYTES = 255
MAX_NAME_BYTES = FS_NAME_BYTES - len("..part.json")  # 244
MAX_URL_BYTES = 65536  # after IRI-to-URI encoding; libcurl's own limit is 8 MB
_SCHEMES = frozenset({"http", "https"})
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f]")
# Categories never allowed in a URL (raw) or a name: controls (C0, C1), format and bidi
# characters (invisible), surrogates (undecodable input), line and paragraph separators.
_HOSTILE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_UNSAFE_NAME_CHARS = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_ASCII_SPACE = " \t\r\n\f\v"
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{dev}{i}" for dev in ("COM", "LPT") for i in "0123456789\u00b9\u00b2\u00b3"}
)


class _Pending:
    """The type of :data:`PENDING`."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Final = _Pending()
"""Stands in a stream of inputs or jobs for "nothing yet, more may come": a slow input
(a pipe) has no line ready. Planning passes it through; the host gate answers WAIT."""


@quick_init
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
    headers: tuple[tuple[str, str], ...] = ()  # this URL's own request headers
    mirrors: tuple[str, ...] = ()  # other URLs of the same file, tried in turn on failure
    mirror_hosts: tuple[str, ...] = ()  # their hosts (scheme://host:port)
    # An earlier attempt of this run kept a partial file: look for it even in a run into
    # a folder that was empty at its start (``Settings.fresh``), where first attempts don't.
    resumable: bool = False
    # One piece of a file fetched as ranges (see ``_split``): bytes start to end
    # (exclusive) of a file of ``length`` bytes, written into the partial file ``inode``
    # that the run made for it, and only from the version ``validator``.
    span: tuple[int, int, int, int] | None = None
    validator: str | None = None
    whole: bool = False  # fetch as one stream, never as ranges (the ranges failed)


def check_url(url: str) -> str | None:
    """Return why ``url`` cannot be downloaded, or ``None`` if it can (see :func:`to_uri`)."""
    problem, uri = to_uri(url)
    return problem or _inspect(uri)[0]


def to_uri(url: str) -> tuple[str | None, str]:
    """``(problem, url)``: the one IRI-to-URI rule, applied before any client sees a URL.

    Non-ASCII text in the user name, password, path and query is percent-encoded as
    UTF-8 (RFC 3987), the host is IDNA-encoded, a fragment (never sent) is dropped, and
    every ``@`` but the last in the authority is encoded (the last one ends the user
    information, as WHATWG and browsers read it). A URL with control, format (bidi),
    separator or space characters, bytes that were not UTF-8 (lone surrogates), an
    invalid international host or more than :data:`MAX_URL_BYTES` is refused with the
    reason. A plain ASCII URL with at most one ``@`` comes back unchanged.
    """
    if not url:
        return "empty URL", url
    if len(url) > MAX_URL_BYTES:
        return f"URL longer than {MAX_URL_BYTES:,} bytes", url
    if _BAD_URL_CHARS.search(url):
        return "URL contains spaces or control characters", url
    if url.isascii():
        if url.count("@", 0, _authority_end(url)) < 2:
            return None, url
    else:
        for ch in url:
            if ord(ch) > 0x7E and (ch.isspace() or unicodedata.category(ch) in _HOSTILE):
                if "\ud800" <= ch <= "\udfff":
                    return "URL contains bytes that are not UTF-8", url
                return "URL contains spaces, control or format characters", url
    scheme, sep, rest = url.partition("://")
    if not sep:
        return None, url  # no authority to rebuild; _inspect says what is wrong
    end = _authority_end(url) - len(scheme) - 3
    authority, tail = rest[:end], rest[end:].partition("#")[0]
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        userinfo = _encode_text(userinfo.replace("@", "%40")) + "@"
    if not hostport.isascii():
        host, colon, port = hostport, "", ""
        if not hostport.endswith("]"):
            host, colon, port = hostport.rpartition(":")
            if not colon or not port.isdigit():
                host, colon, port = hostport, "", ""
        try:
            host = ".".join(
                label.encode("idna").decode("ascii") if not label.isascii() else label
                for label in host.lower().split(".")
            )
        except UnicodeError as exc:
            return f"bad international host name: {exc}", url
        hostport = host + colon + port
    uri = f"{scheme}://{userinfo}{hostport}{_encode_text(tail)}"
    if len(uri) > MAX_URL_BYTES:
        return f"URL longer than {MAX_URL_BYTES:,} bytes", url
    return None, uri


def _authority_end(url: str) -> int:
    """Where the authority of ``scheme://authority/...`` ends (the length of ``url``
    when it has no path, query or fragment)."""
    start = url.find("://")
    if start < 0:
        return 0
    start += 3
    ends = [i for i in (url.find(c, start) for c in "/?#") if i >= 0]
    return min(ends) if ends else len(url)


def _encode_text(text: str) -> str:
    return _NON_ASCII.sub(lambda m: quote(m.group(), safe=""), text)


def _inspect(url: str) -> tuple[str | None, SplitResult | None, str]:
    """Split ``url`` (already through :func:`to_uri`) once: (problem, parts, host key)."""
    if not url:
        return "empty URL", None, ""
    if _BAD_URL_CHARS.search(url) or not url.isascii():
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


_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")


def mask_text(text: str) -> str:
    """``text`` with the user information of every URL in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1***@", text) if "@" in text else text


def printable(text: str) -> str:
    """``text`` safe for a terminal: every character Python does not call printable
    (controls such as ESC and newline, bidi and other format characters, separators,
    lone surrogates) is shown as its escape, e.g. ``\\x1b``. Every human line manyget
    prints goes through this; JSON output has its own escapes."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def mask_url(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for printing."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rpartition('@')[2]}{slash}{tail}"


def read_url_lines(lines: Iterable[str | _Pending]) -> Iterator[tuple[int, str] | _Pending]:
    """Yield ``(line_number, entry)`` from a URL list, lazily.

    Blank lines and ``#`` comments are skipped; a byte-order mark, CR/LF endings and
    surrounding ASCII white space are removed (other white space, such as U+0085 or
    U+2028, stays and makes the line a bad one). An entry is a URL, optionally followed by
    tab-separated fields (see :func:`parse_entry`). aria2c's input files read as they are:
    an indented ``key=value`` line after a URL adds an option to it (``out=``,
    ``checksum=sha-256=``, ``header=``), so an entry is yielded once the next line shows
    it is complete, or as soon as the input says no more is ready (:data:`PENDING`, from
    a slow source read ahead on a thread): a download never waits for the next line.
    """
    held: tuple[int, str] | None = None
    number = 0
    for raw in lines:
        if isinstance(raw, _Pending):
            if held is not None:
                yield held
                held = None
            yield raw
            continue
        number += 1
        text = raw.lstrip("\ufeff") if number == 1 else raw
        stripped = text.strip(_ASCII_SPACE)
        if not stripped or stripped.startswith("#"):
            continue
        if held is not None and text[:1] in (" ", "\t") and _is_option(stripped):
            held = (held[0], f"{held[1]}\t{_aria2_field(stripped)}")
            continue
        if held is not None:
            yield held
        held = (number, stripped)
    if held is not None:
        yield held


def read_jsonl_lines(lines: Iterable[str | _Pending]) -> Iterator[tuple[int, str] | _Pending]:
    """Yield ``(line_number, entry)`` from a JSON-lines list, lazily: one object a line
    with ``url`` and optionally ``name``, ``sha256``, ``headers`` (an object) and
    ``mirrors`` (a list of URLs), as a program producing a dataset list writes it.
    Blank lines are skipped; a line that is not such an object is a bad line."""
    import json

    number = 0
    for raw in lines:
        if isinstance(raw, _Pending):
            yield raw
            continue
        number += 1
        text = raw.strip(_ASCII_SPACE + "\ufeff")
        if not text:
            continue
        try:
            record = json.loads(text)
        except (ValueError, RecursionError) as exc:  # hostile JSON never stops the list
            why = exc.msg if isinstance(exc, json.JSONDecodeError) else "unreadable"
            yield number, f"-\tproblem=not a JSON object ({why})"
            continue
        yield number, _jsonl_entry(record)


def _jsonl_entry(record: object) -> str:
    if not isinstance(record, dict) or not isinstance(record.get("url"), str):
        return '-\tproblem=a JSON line needs an object with a "url" string'
    fields = [record["url"]]
    name, sha256, folder = record.get("name"), record.get("sha256"), record.get("dir")
    headers, mirrors = record.get("headers") or {}, record.get("mirrors") or []
    if not all(isinstance(v, str) for v in (name or "", sha256 or "", folder or "")):
        return f"{record['url']}\tproblem=name, dir and sha256 must be strings"
    if not isinstance(headers, dict) or not isinstance(mirrors, list):
        return f"{record['url']}\tproblem=headers must be an object, mirrors a list"
    if name:
        fields.append(f"name={name}")
    if folder:
        fields.append(f"dir={folder}")
    if sha256:
        fields.append(f"sha256={sha256}")
    fields += [f"header={k}: {v}" for k, v in headers.items()]
    fields += [str(m) for m in mirrors]
    if any(c in field for field in fields for c in "\t\r\n"):
        return f"{record['url']}\tproblem=a tab or line break inside a field"
    return "\t".join(fields)


def _is_option(text: str) -> bool:
    key, eq, _ = text.partition("=")
    return bool(eq) and "://" not in key and key.strip(_ASCII_SPACE) != ""


# aria2c input-file options: those manyget honours, and those it may ignore because they
# only tune how fast a file comes, never what is saved where.
_ARIA2_KEYS = {"out": "name", "header": "header", "checksum": "checksum"}
_ARIA2_IGNORED = frozenset(
    {"split", "max-connection-per-server", "min-split-size", "continue", "max-tries",
     "retry-wait", "timeout", "connect-timeout", "lowest-speed-limit", "piece-length"}
)  # fmt: skip


def _aria2_field(option: str) -> str:
    key, _, value = option.partition("=")
    key = key.strip(_ASCII_SPACE).lower()
    if key in _ARIA2_IGNORED:
        return ""
    return f"{_ARIA2_KEYS.get(key, key)}={value.strip(_ASCII_SPACE)}"


class Entry(NamedTuple):
    """A list entry's parts: the URL, its options, and why it cannot be used, if so."""

    url: str
    sha256: str | None = None
    name: str | None = None  # the name to save it under, instead of the URL's
    headers: tuple[tuple[str, str], ...] = ()  # request headers for this URL only
    mirrors: tuple[str, ...] = ()  # other URLs of the same file, tried in turn on failure
    problem: str | None = None
    folder: str | None = None  # a folder under the destination to save it in


def clean_folder(text: str) -> tuple[str | None, str | None]:
    """``(folder, problem)``: ``text`` (aria2c's ``dir=``) as a relative folder under the
    destination, each segment made safe like a name (``a/b``), or why it cannot be one.

    An absolute path or a ``..`` segment is refused (it would leave the destination);
    empty and ``.`` segments are dropped; at most :data:`MAX_FOLDER_DEPTH` segments and
    :data:`MAX_FOLDER_BYTES` bytes.
    """
    raw = text.strip(_ASCII_SPACE).replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        return None, "dir= must be a folder inside the destination, not an absolute path"
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None, "dir= must stay inside the destination (no '..')"
    if len(parts) > MAX_FOLDER_DEPTH:
        return None, f"dir= is deeper than {MAX_FOLDER_DEPTH} folders"
    clean = [clean_name(part) for part in parts]
    if any(not part for part in clean):
        return None, f"dir= has a segment that is no usable name: {text!r}"
    folder = "/".join(clean)
    if len(folder.encode(errors="replace")) > MAX_FOLDER_BYTES:
        return None, f"dir= is longer than {MAX_FOLDER_BYTES} bytes"
    return folder or None, None


MAX_FOLDER_DEPTH = 32
MAX_FOLDER_BYTES = 1024


def parse_entry(entry: str) -> Entry:
    """Split ``URL<TAB>field<TAB>...`` into its parts.

    Fields: ``sha256=HEX`` (or aria2c's ``checksum=sha-256=HEX``), ``name=NAME`` (aria2c's
    ``out=``; made safe like any name), ``dir=FOLDER`` (see :func:`clean_folder`),
    ``header=Name: value`` (repeatable; sent to the
    URL's own origin only), and further URLs of the same file (aria2c's mirrors, tried in
    turn when one fails: see :meth:`~manyget._hosts.Feeder.ended`).
    """
    url, tab, rest = entry.partition("\t")
    url = url.strip(_ASCII_SPACE)
    if not tab:
        return Entry(url)
    checksum = name = folder = None
    headers: list[tuple[str, str]] = []
    mirrors: list[str] = []
    for field in rest.split("\t"):
        field = field.strip(_ASCII_SPACE)
        if not field:
            continue
        if "://" in field.partition("=")[0]:
            mirrors.append(field)
            continue
        key, eq, value = field.partition("=")
        key = key.lower()
        if key == "checksum" and value.lower().startswith("sha-256="):
            key, value = "sha256", value[len("sha-256=") :]
        if key == "problem" and eq:  # a line a reader could not turn into an entry
            return Entry(url, problem=value)
        if key == "dir" and eq:
            folder, problem = clean_folder(value)
            if problem is not None:
                return Entry(url, problem=problem)
            continue
        if not eq or key not in ("sha256", "name", "header"):
            return Entry(url, problem=f"unknown field {field!r} (expected {_FIELDS})")
        if key == "sha256":
            value = value.strip(_ASCII_SPACE).lower()
            if not _SHA256.fullmatch(value):
                return Entry(url, problem="sha256 must be 64 hexadecimal digits")
            checksum = value
        elif key == "name":
            if not value.strip(_ASCII_SPACE):
                return Entry(url, problem="name= is empty")
            name = value.strip(_ASCII_SPACE)
        else:
            header, colon, text = value.partition(":")
            header = header.strip(_ASCII_SPACE)
            if not colon or not header or any(c in header for c in " \t") or "\0" in text:
                return Entry(url, problem=f"a header is 'Name: value', got {value!r}")
            headers.append((header, text.strip(_ASCII_SPACE)))
    return Entry(url, checksum, name, tuple(headers), tuple(mirrors), None, folder)


_NO_FIELDS = Entry("")  # a plain URL's options: none
_FIELDS = "sha256=HEX, name=NAME, dir=FOLDER, header=NAME: VALUE or another URL of the same file"


def _mirrors(urls: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
    """Mirror URLs checked like any URL: (URLs, their hosts, a problem)."""
    found, hosts = [], []
    for number, raw in enumerate(urls, start=2):
        problem, url = to_uri(raw)
        if problem is None:
            problem, _, host = _inspect(url)
        if problem is not None:
            return (), (), f"URL {number} of the line: {problem}"
        found.append(url)
        hosts.append(host)
    return tuple(found), tuple(hosts), None


def split_entry(entry: str) -> tuple[str, str | None, str | None]:
    """Split ``URL<TAB>sha256=HEX`` into the URL, the checksum and a problem, if any."""
    parts = parse_entry(entry)
    return parts.url, parts.sha256, parts.problem


def safe_name(url: str) -> str:
    """The file name for ``url``: the last path segment, made safe to create anywhere.

    The result has no path separators, no ``..``, no control, format (bidi), separator
    or surrogate characters, no leading dot, no reserved Windows device name, and is at
    most :data:`MAX_NAME_BYTES` (244) bytes of UTF-8, so that ``.NAME.part.json`` too
    fits 255 bytes; it is shortened on a character boundary keeping the extension.
    It never raises for any string: a URL that cannot be split (a bad IPv6 literal, a
    host that is not a host) is named from its text after the last ``/``, else
    ``download``.
    """
    _, uri = to_uri(url)
    try:
        return _name_from(urlsplit(uri))
    except ValueError:
        segment = uri.partition("#")[0].partition("?")[0].rsplit("/", 1)[-1]
        return clean_name(unquote(segment, errors="replace")) or "download"


def _name_from(parts: SplitResult) -> str:
    path = parts.path
    segment = unquote(path.rsplit("/", 1)[-1], errors="replace")
    name = clean_name(segment)
    if not name:
        try:
            host = parts.hostname or "download"
        except ValueError:
            host = "download"
        name = clean_name(f"{host}.index" if path.strip("/") == "" else "index") or "index"
    return name


def clean_name(text: str) -> str:
    """``text`` made safe as one file name (see :func:`safe_name`); may be empty."""
    name = text
    if not name.isascii():
        # Format and bidi characters are invisible: dropped; other controls, separators
        # and surrogates (bytes that were not UTF-8) become "_".
        name = "".join(_safe_char(ch) for ch in name)
        name = unicodedata.normalize("NFC", name)
    name = _UNSAFE_NAME_CHARS.sub("_", name)
    name = name.strip().lstrip(".").rstrip(". ")
    if not name:
        return ""
    if name.partition(".")[0].rstrip(" .").upper() in _WINDOWS_RESERVED:
        name = f"_{name}"
    return _shorten(name, MAX_NAME_BYTES)


def _safe_char(ch: str) -> str:
    if ch.isascii():
        return ch
    category = unicodedata.category(ch)
    if category == "Cf":
        return ""
    if category in _HOSTILE or category == "Zs":
        return "_"
    return ch


# One parameter of a header value: a token, "=", then a quoted string or a token.
_PARAMETER = re.compile(r'\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)\s*(?:;|$)')
_CHARSETS = frozenset({"utf-8", "iso8859-1", "ascii"})  # codecs.lookup() names


def disposition_name(value: str | None) -> str | None:
    """The safe file name a ``Content-Disposition`` header asks for, if any.

    Parameters are read one by one (``notfilename=`` is not ``filename=``). As RFC 6266
    says, ``filename*`` (RFC 5987: ``charset'lang'percent-encoded``) wins over
    ``filename`` wherever each stands; its charset must be UTF-8, ISO-8859-1 or ASCII,
    and any other (unknown, broken) makes it count as absent. Raw bytes in ``filename``
    are read as UTF-8 when they are valid UTF-8, else as ISO-8859-1. Only the last
    segment of whatever path the server sends is kept, then cleaned like any name.
    ``None`` means the header names no usable file: the URL's name stays. Never raises.
    """
    if not value:
        return None
    star: str | None = None
    plain: str | None = None
    _, _, params = value.partition(";")
    at = 0
    while at < len(params):
        match = _PARAMETER.match(params, at)
        if match is None:  # not a parameter: skip to the next ";"
            semicolon = params.find(";", at)
            if semicolon < 0:
                break
            at = semicolon + 1
            continue
        at = match.end()
        key, raw = match[1].lower(), match[2].strip()
        if key == "filename*" and star is None:
            star = _extended(raw)
        elif key == "filename" and plain is None:
            plain = _unquote_header(raw)
    name = star if star is not None else plain
    if name is None:
        return None
    segment = name.replace("\\", "/").rsplit("/", 1)[-1]
    return clean_name(segment) or None


def _extended(raw: str) -> str | None:
    """The text of an RFC 5987 ``charset'lang'value``, or None if it cannot be read."""
    charset, quote1, rest = raw.partition("'")
    _lang, quote2, encoded = rest.partition("'")
    if not (quote1 and quote2):
        return None
    try:
        codec = codecs.lookup(charset.strip() or "utf-8").name
    except (LookupError, ValueError):
        return None
    if codec not in _CHARSETS:
        return None
    return unquote(encoded.strip(), encoding=codec, errors="replace")


def _unquote_header(raw: str) -> str:
    if raw.startswith('"'):
        raw = raw[1:-1] if len(raw) > 1 and raw.endswith('"') else raw[1:]
        raw = re.sub(r"\\(.)", r"\1", raw)
    if not raw.isascii():
        # Headers arrive decoded as ISO-8859-1: undo that if the bytes are UTF-8.
        with contextlib.suppress(UnicodeError):
            raw = raw.encode("latin-1").decode("utf-8")
    return raw


_MAX_EXT_BYTES = 16  # a longer "extension" is not one: it is cut like the rest


def _split_ext(name: str) -> tuple[str, str]:
    """``(stem, ".ext")``, the extension kept only if it is short (else ``""``)."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext.encode(errors="replace")) > _MAX_EXT_BYTES - 1:
        return name, ""
    return stem, f".{ext}"


def _shorten(name: str, limit: int) -> str:
    raw = name.encode(errors="replace")
    if len(raw) <= limit:
        return name
    stem, tail = _split_ext(name)
    room = max(0, limit - len(tail.encode()))
    cut = stem.encode(errors="replace")[:room].decode(errors="ignore").rstrip(". ")
    return cut + tail


def with_suffix(name: str, tag: str) -> str:
    """``name`` with ``~tag`` before its extension, still within :data:`MAX_NAME_BYTES`."""
    stem, tail = _split_ext(name)
    room = MAX_NAME_BYTES - len(tail.encode(errors="replace")) - len(tag.encode()) - 1
    return _shorten(stem, room) + f"~{tag}{tail}"


def url_tag(url: str, salt: int = 0) -> str:
    """Eight hex digits from the URL's hash (salted when the first choice is taken)."""
    return f"{_digest(f'{salt}:{url}' if salt else url):016x}"[:8]


def _digest(text: str) -> int:
    """A non-zero 64-bit digest of ``text`` (zero marks an empty slot in ``_DigestSet``)."""
    data = text.encode(errors="surrogatepass")
    value = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
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

    def add(self, key: int) -> bool:
        """Add ``key``; False when it was there already (one probe for both answers)."""
        if 2 * (self._count + 1) > len(self._slots):
            self._grow()
        slots, mask = self._slots, self._mask
        i = key & mask
        while True:
            value = slots[i]
            if value == 0:
                slots[i] = key
                self._count += 1
                return True
            if value == key:
                return False
            i = (i + 1) & mask

    def __len__(self) -> int:
        return self._count

    def _grow(self) -> None:
        old = self._slots
        slots = self._slots = array("Q", bytes(16 * len(old)))
        mask = self._mask = len(slots) - 1
        for key in old:  # every key is distinct: find a free slot, nothing else
            if key:
                i = key & mask
                while slots[i]:
                    i = (i + 1) & mask
                slots[i] = key


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
        if len(url) > MAX_URL_BYTES:
            return None
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


def _in_folder(folder: str, name: str, url: str, used: _DigestSet) -> str:
    """``folder/name``, unique as a whole relative path (a suffix goes on the name)."""
    path, salt = f"{folder}/{name}", 0
    while not used.add(_digest(path)):
        path = f"{folder}/{with_suffix(name, url_tag(url, salt))}"
        salt += 1
    return path


def plan(urls: Iterable[str]) -> Iterator[Job]:
    """Turn URLs into jobs lazily, giving each a distinct safe name.

    An entry may carry a checksum, ``URL<TAB>sha256=HEX``: the file is then published only
    if its bytes match.
    """
    jobs = plan_lines((None, url.strip(_ASCII_SPACE)) for url in urls)
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
        if "\t" in entry:
            fields = parse_entry(entry)
            url = fields.url
        else:  # the usual plain URL: no options to parse
            fields, url = _NO_FIELDS, entry.strip(_ASCII_SPACE)
        sha256, problem = fields.sha256, fields.problem
        known = origins.quick(url) if problem is None else None
        if known is not None:
            name, host = known
        else:
            parts: SplitResult | None = None
            host = ""
            if problem is None:
                problem, url = to_uri(url)
            if problem is None:
                problem, parts, host = _inspect(url)
            if problem is not None or parts is None:
                where = f"line {line}: " if line is not None else ""
                yield Job(url, "", index, line, f"{where}{problem}")
                continue
            origins.remember(url, parts, host)
            name = _name_from(parts)
        if fields.name is not None:
            name = clean_name(fields.name)
        if fields.folder is None:
            base = name
            salt = 0
            while not used.add(_digest(name)):  # taken: a suffix from the URL's hash,
                name = with_suffix(base, url_tag(url, salt))  # salted if that is taken too
                salt += 1
        else:
            name = _in_folder(fields.folder, name, url, used)
        if not fields.mirrors:
            yield Job(url, name, index, line, None, sha256, host, fields.headers)
            continue
        mirrors, hosts, bad = _mirrors(fields.mirrors)
        if bad is not None:
            yield Job(url, "", index, line, f"line {line}: {bad}" if line else bad)
            continue
        yield Job(url, name, index, line, None, sha256, host, fields.headers, mirrors, hosts)
