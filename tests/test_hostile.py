"""Hostile input never crashes a run (issue 14): one test per numbered finding, then the
whole hostile list through `manyget get` on every engine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from manyget import Result, Status
from manyget._jobs import (
    check_url,
    disposition_name,
    mask_url,
    plan,
    safe_name,
    with_suffix,
)
from manyget._progress import describe
from manyget._server import Server

pytestmark = pytest.mark.timeout(120)

FS_LIMIT = 255


def fits(name: str) -> bool:
    """Whether NAME, .NAME.part and .NAME.part.json all fit the file system's limit."""
    return len(f".{name}.part.json".encode()) <= FS_LIMIT


# --------------------------------------------------------------------------- unit, per item


def test_1_iri_becomes_uri_before_any_client() -> None:
    """Non-ASCII path/query is percent-encoded as UTF-8 and the host IDNA-encoded."""
    (job,) = plan(["http://bücher.localhost:1/é?q=ü#frag"])
    assert job.problem is None
    assert job.url == "http://xn--bcher-kva.localhost:1/%C3%A9?q=%C3%BC"
    assert job.name == "é"


@pytest.mark.parametrize(
    "url",
    [
        "http://h/a\x85b",  # NEL
        "http://h/a\u2028b",  # line separator
        "http://h/a\u00a0b",  # no-break space
        "http://h/a\u202eb",  # bidi override
        "http://h/a\udcffb",  # a byte that was not UTF-8 (surrogateescape)
        "http://" + "ü" * 64 + ".example/x",  # an IDN label too long to encode
    ],
)
def test_1_unusable_iris_are_bad_lines(url: str) -> None:
    """Whitespace, controls, undecodable bytes and bad IDN hosts make a bad line."""
    assert check_url(url) is not None
    (job,) = plan([url])
    assert job.problem is not None


def test_2_urls_have_a_maximum_length() -> None:
    """A URL over 65,536 bytes (after encoding) is a bad line that names the limit."""
    assert check_url("http://h/" + "a" * 65_000) is None
    problem = check_url("http://h/" + "a" * 70_000)
    assert problem is not None
    assert "65,536" in problem
    problem = check_url("http://h/" + "é" * 30_000)  # 60,000 chars, 180,000 bytes encoded
    assert problem is not None
    assert "65,536" in problem


def test_2_a_huge_line_prints_a_short_line() -> None:
    """A megabyte-long bad line is reported in a line of bounded length."""
    (job,) = plan(["http://h/" + "a" * 1_000_000])
    assert job.problem is not None
    line = describe(Result(url=job.url, path=None, status=Status.ERROR, error=job.problem))
    assert len(line) < 2200
    assert "1,000,009 characters" in line


def test_3_lone_surrogates_never_raise() -> None:
    """safe_name and plan take strings holding lone surrogates without raising."""
    assert "\udcff" not in safe_name("http://h/a\udcff")
    jobs = list(plan(["http://h/a\udcff", "http://h/a%ED%B3%BF", "http://h/b"]))
    assert jobs[0].problem is not None
    assert jobs[1].problem is None
    assert fits(jobs[1].name)
    assert jobs[2].name == "b"


def test_4_every_file_manyget_creates_fits_255_bytes() -> None:
    """A long name leaves room for .NAME.part.json."""
    for stem in ("a" * 300, "é" * 200, "a" * 250):
        for url in (f"http://h/{stem}", f"http://h/{stem}.txt"):
            name = safe_name(url)
            assert fits(name), len(name.encode())
    assert safe_name("http://h/" + "a" * 300 + ".txt").endswith(".txt")


def test_5_collision_suffix_never_overflows() -> None:
    """A long extension cannot push the suffixed name past the limit."""
    assert fits(with_suffix("s." + "e" * 253, "abcdef12"))
    jobs = list(plan([f"http://h/s.{'e' * 253}?{i}" for i in range(3)]))
    assert len({job.name for job in jobs}) == 3
    assert all(fits(job.name) for job in jobs)


@pytest.mark.parametrize("charset", ["undefined", "idna", "punycode", "ut\x00f-8", "", "x y"])
def test_6_broken_charsets_fall_back(charset: str) -> None:
    """filename* with an unusable charset counts as absent: filename= (or None) wins."""
    header = f"attachment; filename*={charset}''a%FF%FE.txt"
    assert disposition_name(header) in (None, "a\ufffd\ufffd.txt")
    assert disposition_name(f'{header}; filename="plain.txt"') in ("plain.txt", "a��.txt")
    if charset in ("undefined", "idna", "punycode", "ut\x00f-8"):
        assert disposition_name(header) is None
        assert disposition_name(f'{header}; filename="plain.txt"') == "plain.txt"


def test_6_surrogates_in_disposition_never_raise() -> None:
    """A lone surrogate in filename= gives a safe name, not an exception."""
    name = disposition_name('attachment; filename="a\udcff.txt"')
    assert name == "a_.txt"


@pytest.mark.parametrize("char", ["\x9b", "\x85", "\u061c", "\u200e", "\u2028", "\u202e"])
def test_7_c1_and_bidi_never_reach_names_or_urls(char: str) -> None:
    """C1 controls and format/bidi characters leave names; raw ones make URLs bad."""
    encoded = urllib.parse.quote(char)
    name = safe_name(f"http://h/a{encoded}b")
    assert char not in name
    assert name in ("ab", "a_b")
    assert check_url(f"http://h/a{char}b") is not None
    assert check_url(f"http://h{char}x/a") is not None


@pytest.mark.parametrize("name", ["CON .txt", "COM¹", "LPT².log", "CONIN$", "conout$.x", "NUL."])
def test_8_windows_device_names_are_prefixed(name: str) -> None:
    """Device names with spaces, superscript digits, or CONIN$/CONOUT$ get a prefix."""
    assert safe_name(f"http://h/{urllib.parse.quote(name)}").startswith("_")


def test_9_human_output_escapes_control_characters() -> None:
    """A result line shows ESC, BEL, NUL and newline escaped, never raw."""
    url = "http://h/\x1b]0;pwned\x07\x00\n\x9b\u202e"
    line = describe(Result(url=url, path=None, status=Status.ERROR, error="bad\x1b[31m"))
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u202e]", line)
    assert "\\x1b]0;pwned\\x07" in line
    assert "\\n" in line


def test_10_disposition_parameters_match_whole_names() -> None:
    """notfilename= is not filename=; filename* wins wherever it stands; raw UTF-8."""
    assert disposition_name('attachment; notfilename="x.txt"') is None
    assert disposition_name('attachment; notfilename="x"; filename="y"') == "y"
    assert disposition_name("attachment; filename=\"a.txt\"; filename*=UTF-8''b.txt") == "b.txt"
    assert disposition_name("attachment; filename*=UTF-8''b.txt; filename=\"a.txt\"") == "b.txt"
    raw_utf8 = "café.txt".encode().decode("latin-1")  # how header bytes arrive
    assert disposition_name(f'attachment; filename="{raw_utf8}"') == "café.txt"
    assert disposition_name('attachment; filename="caf\xe9.txt"') == "café.txt"  # latin-1


def test_11_one_userinfo_rule_and_masked_errors() -> None:
    """The last @ ends the user information; credentials never print."""
    (job,) = plan(["http://us:er@pa:ss@host/x"])
    assert job.problem is None
    assert job.url == "http://us:er%40pa:ss@host/x"
    assert job.host == "http://host:80"
    assert mask_url(job.url) == "http://***@host/x"
    error = "redirect to http://user:s3cret@other/ refused"
    line = describe(Result(url=job.url, path=None, status=Status.ERROR, error=error))
    assert "s3cret" not in line
    assert "pa:ss" not in line


@pytest.mark.parametrize("url", ["http://[::1/x", "http://h\uff03x/y", "http://[vx.y]/z"])
def test_12_safe_name_never_raises_on_unsplittable_urls(url: str) -> None:
    """A URL that cannot be split still gets a safe name (documented fallback)."""
    name = safe_name(url)
    assert name
    assert fits(name)
    assert "/" not in name


# --------------------------------------------------------------------------- end to end


RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u202a-\u202e]")


def hostile_list(server: Server) -> tuple[bytes, dict[int, str], dict[str, int]]:
    """(list file bytes, bad line numbers -> what they hold, good file name -> size)."""
    base = server.url
    port = base.rpartition(":")[2]
    long_name = urllib.parse.quote("é" * 100 + "." + "e" * 40)
    lines: list[tuple[bytes, str | None, int]] = [
        (f"{base}/bytes/1".encode(), None, 1),
        (f"{base}/bytes/2?é=ü".encode(), None, 2),  # IRI query
        (f"http://bücher.localhost:{port}/bytes/3".encode(), None, 3),  # IDN host
        (f"http://us:er@pa:ss@127.0.0.1:{port}/bytes/4".encode(), None, 4),
        (f"{base}/faults/disposition?name={long_name}&size=2097152".encode(), None, 0),
        (f"{base}/faults/disposition?name={long_name}&size=5".encode(), None, 0),
        (f"{base}/bytes/é\x85".encode(), "NEL", 0),
        (f"{base}/bytes/\u2028".encode(), "LS", 0),
        (f"{base}/bytes/a\xff".encode("latin-1"), "invalid UTF-8", 0),
        (f"{base}/bytes/{'a' * 70_000}".encode(), "too long", 0),
        (f"{base}/\x1b]0;pwned\x07".encode(), "ESC", 0),
        (f"http://127.0.0.1\u009b:{port}/x".encode(), "C1 in host", 0),
        (f"http://{'ü' * 64}.localhost:{port}/x".encode(), "bad IDN", 0),
        (b"http://[::1/x", "bad IPv6", 0),
        (f"{base}/a\x00b".encode(), "NUL", 0),
        (f"{base}/bytes/6".encode(), None, 6),
    ]
    body = b"".join(line + b"\n" for line, _, _ in lines)
    bad = {i: what for i, (_, what, _) in enumerate(lines, start=1) if what is not None}
    good = {str(size): size for _, what, size in lines if what is None and size}
    return body, bad, good


def run_get(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "manyget", "get", *args],
        input=stdin,
        capture_output=True,
        timeout=90,
        check=False,
    )


def test_hostile_list_on_every_engine(server: Server, engine: str, tmp_path: Path) -> None:
    """Every good URL downloads, every bad line is reported by number, exit 1, no
    traceback, no raw control character on stderr, nothing outside the destination."""
    body, bad, good = hostile_list(server)
    listing = tmp_path / "list.txt"
    listing.write_bytes(body)
    dest = tmp_path / "dest"
    dest.mkdir()
    proc = run_get(
        "--engine",
        engine,
        "--content-disposition",
        "--json",
        "-j",
        "4",
        "-d",
        str(dest),
        "-i",
        str(listing),
    )
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(records) == 16
    err = proc.stderr.decode("utf-8", errors="strict")
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert not RAW_CONTROL.search(err), err
    assert "pa:ss" not in err
    for number in bad:
        assert f": line {number}: " in err, (number, bad[number], err)
    assert sorted(os.listdir(tmp_path)) == ["dest", "list.txt"]
    files = {name: (dest / name).stat().st_size for name in os.listdir(dest)}
    for name, size in good.items():
        assert files.pop(name) == size
    long_files = sorted(files.items(), key=lambda item: item[1])
    assert [size for _, size in long_files] == [5, 2097152]
    assert all(fits(name) for name in files)
    assert not [n for n in files if n.startswith(".")]


def test_stdin_invalid_byte_and_escape_argument(server: Server, tmp_path: Path) -> None:
    """An invalid byte on stdin and an ESC in an argument are bad lines, not tracebacks."""
    stdin = f"{server.url}/bytes/a\xff\n{server.url}/bytes/8\n".encode("latin-1")
    proc = run_get("-d", str(tmp_path), "-i", "-", f"{server.url}/\x1b[31mred", stdin=stdin)
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    assert not RAW_CONTROL.search(err), err
    assert "line 1: URL contains bytes that are not UTF-8" in err
    assert "\\x1b[31mred" in err
    assert os.listdir(tmp_path) == ["8"]
