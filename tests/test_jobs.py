"""Pure planning: URL checks, list reading, safe names and distinct names."""

from __future__ import annotations

import pytest

from manyget._jobs import (
    _inspect,
    _Origins,
    check_url,
    plan,
    plan_lines,
    read_url_lines,
    safe_name,
    split_entry,
)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("http://h/flags/br/br.gif", "br.gif"),
        ("http://h/a/b%20c.txt?x=1#frag", "b c.txt"),
        ("http://h/", "h.index"),
        ("http://h", "h.index"),
        ("http://h/dir/", "index"),
        ("http://h/..", "index"),
        ("http://h/%2e%2e%2fetc%2fpasswd", "_etc_passwd"),
        ("http://h/..%5c..%5cwin.ini", "_.._win.ini"),
        ("http://h/.bashrc", "bashrc"),
        ("http://h/a%00b", "a_b"),
        ("http://h/evil%E2%80%AEgpj.exe", "evilgpj.exe"),
        ("http://h/CON.txt", "_CON.txt"),
        ("http://h/c%3A%5Cwindows", "c__windows"),
    ],
)
def test_safe_name_stays_inside_dest(url: str, name: str) -> None:
    """Names derived from URLs never carry separators, dot-dot, controls or device names."""
    assert safe_name(url) == name


def test_safe_name_cut_to_255_bytes_on_a_character_boundary() -> None:
    """Over-long names are cut to 255 bytes of UTF-8 without splitting a character."""
    name = safe_name("http://h/" + "é" * 300 + ".tar.gz")
    assert len(name.encode()) <= 255
    assert name.endswith(".gz")
    name.encode().decode()  # still valid UTF-8


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc/passwd", "unsupported scheme"),
        ("javascript:alert(1)", "unsupported scheme"),
        ("http://", "no host"),
        ("http://h:99999/x", "bad URL"),
        ("http://h:0/x", "bad port"),
        ("http://h/a b", "spaces or control"),
        ("example.com/x", "unsupported scheme"),
        ("", "empty"),
    ],
)
def test_check_url_rejects(url: str, problem: str) -> None:
    """Unusable URLs are reported with a reason instead of being requested."""
    reason = check_url(url)
    assert reason is not None
    assert problem in reason


def test_check_url_accepts_http_and_https() -> None:
    """Ordinary http and https URLs, with ports and IPv6 hosts, pass."""
    for url in ("http://127.0.0.1:8001/x", "https://example.org/", "http://[::1]:80/a"):
        assert check_url(url) is None


def test_read_url_lines_skips_blanks_comments_bom_crlf() -> None:
    """A list with BOM, CRLF, blank lines and comments yields URLs with line numbers."""
    lines = [
        "\ufeffhttp://h/a\r\n",
        "\n",
        "# note\n",
        "  http://h/b  \n",
        "http://h/c\tsha256=x\n",
    ]
    assert list(read_url_lines(lines)) == [
        (1, "http://h/a"),
        (4, "http://h/b"),
        (5, "http://h/c\tsha256=x"),
    ]


def test_plan_gives_colliding_urls_distinct_deterministic_names() -> None:
    """Two URLs with one file name get two names, the same on every run."""
    urls = ["http://h/a/x.gif", "http://h/b/x.gif", "http://h/c/y.gif"]
    first = [job.name for job in plan(urls)]
    assert first == [job.name for job in plan(urls)]
    assert first[0] == "x.gif"
    assert first[1] != "x.gif"
    assert first[1].startswith("x~")
    assert first[1].endswith(".gif")
    assert len(set(first)) == 3


def test_plan_reports_bad_lines_with_their_numbers() -> None:
    """An invalid line becomes a job with a problem naming its line; the rest plan on."""
    jobs = list(plan_lines(read_url_lines(["http://h/a", "file:///x", "http://h/b"])))
    assert [job.problem is None for job in jobs] == [True, False, True]
    assert jobs[1].problem is not None
    assert jobs[1].problem.startswith("line 2:")


def test_plan_is_lazy() -> None:
    """Planning pulls URLs one at a time, so an endless generator works."""

    def endless() -> object:
        n = 0
        while True:
            n += 1
            yield f"http://h/{n}.bin"

    jobs = plan(endless())  # type: ignore[arg-type]
    assert next(jobs).name == "1.bin"
    assert next(jobs).name == "2.bin"


def test_plan_names_stay_distinct_when_suffixes_collide() -> None:
    """Many URLs with one file name all get distinct names, even past hash collisions."""
    names = [job.name for job in plan(f"http://h/x.bin?i={i}" for i in range(20_000))]
    assert len(set(names)) == len(names)
    dupes = [job.name for job in plan(["http://h/x.bin"] * 3)]
    assert len(set(dupes)) == 3


def test_split_entry_reads_checksums() -> None:
    """URL<TAB>sha256=HEX gives the checksum; other fields or bad hex give a problem."""
    digest = "ab" * 32
    assert split_entry(f"http://h/a\tsha256={digest.upper()}") == ("http://h/a", digest, None)
    assert split_entry("http://h/a") == ("http://h/a", None, None)
    assert split_entry("http://h/a\tmd5=1")[2] is not None
    assert split_entry("http://h/a\tsha256=12")[2] is not None


def test_mask_url_hides_credentials() -> None:
    """user:password@ is replaced; URLs without credentials are unchanged."""
    from manyget._jobs import mask_url

    assert mask_url("https://u:p@h:8/a/b?x=@") == "https://***@h:8/a/b?x=@"
    assert mask_url("http://h/a@b") == "http://h/a@b"
    assert mask_url("not a url") == "not a url"


@pytest.mark.parametrize(
    "tail",
    [
        "a/b/file.bin", "x.tar.gz", "CON", "con.txt", "nul", "LPT1.log", "file.", "file..",
        ".hidden", "..", ".", "", "dir/", "a%20b.txt", "caf%C3%A9.gif", "x?y=1", "x#frag",
        "x;p=1", "~user", "-dash", "a" * 210, "a" * 200, "e\u0301.gif", "sp ace",
        "A/../b.gif", "back\\slash", "x?", "x#", "semi;colon", "q%2F.txt",
    ],
)  # fmt: skip
@pytest.mark.parametrize("origin", ["http://h.test", "HTTP://h.test:8080", "https://u:p@h.test"])
def test_known_origins_plan_like_the_first_url(origin: str, tail: str) -> None:
    """A URL of an origin seen before gets exactly the name and host the full check gives."""
    url = f"{origin}/{tail}"
    warmed = list(plan([f"{origin}/first.bin", url]))[1]
    fresh = next(iter(plan([url])))
    assert (warmed.name, warmed.host, warmed.problem) == (fresh.name, fresh.host, fresh.problem)


@pytest.mark.parametrize("first", ["http://h.test?q/x.bin", "http://h.test#f/x.bin"])
def test_odd_authorities_are_not_taken_as_origins(first: str) -> None:
    """A query or fragment right after the host never primes the quick path."""
    origins = _Origins()
    problem, parts, host = _inspect(first)
    assert problem is None
    assert parts is not None
    origins.remember(first, parts, host)
    assert origins.quick(first.replace("x.bin", "y.bin")) is None
    assert origins.quick("http://h.test/y.bin") is None


def test_aria2c_input_files_read_as_they_are() -> None:
    """An aria2c input file: TAB-separated mirrors, then indented options folded into the
    entry (out=, checksum=sha-256=, header=; speed-only ones ignored); an indented URL is
    still a URL; an absolute dir= is refused plainly."""
    from manyget._jobs import parse_entry

    digest = "ab" * 32
    lines = [
        "http://h/a.iso\thttp://m/a.iso\n",
        "  out=b.iso\n",
        f"  checksum=sha-256={digest}\n",
        "  header=X-Token: t\n",
        "  split=5\n",
        "   http://h/indented\n",
        "  dir=/elsewhere\n",
        "http://h/plain\n",
    ]
    entries = list(read_url_lines(lines))
    assert [number for number, _ in entries] == [1, 6, 8]
    first = parse_entry(entries[0][1])
    assert (first.url, first.name, first.sha256) == ("http://h/a.iso", "b.iso", digest)
    assert (first.headers, first.mirrors, first.problem) == (
        (("X-Token", "t"),),
        ("http://m/a.iso",),
        None,
    )
    assert parse_entry(entries[1][1]).problem is not None
    assert "dir=" in (parse_entry(entries[1][1]).problem or "")
    jobs = list(plan_lines(entries))
    assert (jobs[0].name, jobs[0].headers, jobs[0].sha256) == (
        "b.iso",
        (("X-Token", "t"),),
        digest,
    )
    assert jobs[1].problem is not None
    assert jobs[2].name == "plain"


def test_jsonl_lists() -> None:
    """JSON lines: url, name, sha256, headers, mirrors; any other line is a bad line with
    its number, never an exception (huge numbers and deep nesting included)."""
    from manyget._jobs import read_jsonl_lines

    lines = [
        '{"url": "http://h/x", "name": "y.bin", "headers": {"A": "b"}}\n',
        "{bad\n",
        "[1]\n",
        "\n",
        '{"url": "http://h/z", "mirrors": ["http://m/z"], "sha256": "' + "cd" * 32 + '"}\n',
        "1" * 5000 + "\n",
        "[" * 100_000 + "\n",
        '{"url": "http://h/t", "name": "a\\tb"}\n',
    ]
    jobs = list(plan_lines(read_jsonl_lines(lines)))
    assert (jobs[0].name, jobs[0].headers) == ("y.bin", (("A", "b"),))
    assert [j.line for j in jobs if j.problem] == [2, 3, 6, 7, 8]
    assert jobs[3].sha256 == "cd" * 32
    assert all(j.problem.startswith(f"line {j.line}: ") for j in jobs if j.problem)


def test_an_entry_waits_for_its_options_only_while_more_input_is_ready() -> None:
    """A slow source says PENDING when nothing is ready: the entry held back for possible
    indented option lines goes at once, so a pause in a pipe never stalls a download."""
    from manyget._jobs import PENDING

    items = ["http://h/a\n", PENDING, "  out=late.bin\n", "http://h/b\n", "  out=b.bin\n"]
    got = list(read_url_lines(items))
    assert got[0] == (1, "http://h/a")
    assert got[1] is PENDING
    assert got[2] == (2, "out=late.bin")  # after the pause it is a line of its own (bad)
    assert got[3] == (3, "http://h/b\tname=b.bin")
