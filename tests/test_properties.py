"""Property tests of the pure core against hostile input (issue 14).

The "ci" profile (tests/conftest.py) runs a few hundred examples a test; run
``HYPOTHESIS_PROFILE=nightly python -m pytest tests/test_properties.py`` for 10^5.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from manyget._jobs import (
    MAX_URL_BYTES,
    check_url,
    disposition_name,
    plan,
    printable,
    read_url_lines,
    safe_name,
    split_entry,
    with_suffix,
)

pytestmark = pytest.mark.timeout(300)

HOSTILE = [
    "/", "\\", ".", "..", "%", "%2F", "%00", "%C2%9B", "%FF", "%ED%B3%BF", "@", ":", "?", "#",
    "[", "]", "\x00", "\x1b", "\x7f", "\x85", "\x9b", "\u061c", "\u200e", "\u202e", "\u2028",
    "\u2029", "\u00a0", "\ufeff", "\ufffd", "\udcff", "\ud800", "é", "ü", "\uff03", "\uff0f",
    "¹", "CON", "com1", "CONIN$", " ", "\t", "\r", "\n", "~", "e" * 120, "é" * 60, ".txt",
    "ext" * 20, "xn--", "%25", "'", '"', ";", "=", "filename", "filename*", "utf-8''",
    "idna''", "undefined''",
]  # fmt: skip
pieces = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8))
hostile_text = st.lists(pieces, max_size=30).map("".join)
urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "HTTP", "ftp", "http:", ""]),
    st.one_of(st.sampled_from(["h", "127.0.0.1:80", "u:p@h", "[::1]", "bücher.de"]), hostile_text),
    hostile_text,
)
any_url = st.one_of(urls, hostile_text)
BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def assert_safe_name(name: str) -> None:
    assert name
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert not set(name) & set('/\\\x00:*?"<>|')
    assert not any(unicodedata.category(ch) in BAD_CATEGORIES for ch in name)
    assert len(f".{name}.part.json".encode()) <= 255


@given(any_url)
def test_safe_name_is_always_safe_and_deterministic(url: str) -> None:
    """safe_name never raises and its name (with .part and .part.json) is safe to create."""
    name = safe_name(url)
    assert_safe_name(name)
    assert safe_name(url) == name


@given(any_url)
def test_check_url_accepts_only_what_a_client_can_take(url: str) -> None:
    """A URL check_url accepts plans into plain ASCII, bounded, without controls."""
    problem = check_url(url.strip(" \t\r\n\f\v"))  # plan trims ASCII white space
    (job,) = plan([url])
    if problem is not None:
        assert job.problem is not None
        return
    assert job.problem is None
    assert job.url.isascii()
    assert len(job.url) <= MAX_URL_BYTES
    assert not any(ch <= " " or ch == "\x7f" for ch in job.url)
    authority = job.url.partition("://")[2]
    for end in "/?#":
        authority = authority.partition(end)[0]
    assert authority.count("@") <= 1
    assert_safe_name(job.name)


@given(st.lists(hostile_text, max_size=20))
def test_list_lines_never_raise(lines: list[str]) -> None:
    """read_url_lines and split_entry take any text; numbers rise; entries are trimmed."""
    numbers = []
    for number, entry in read_url_lines(lines):
        numbers.append(number)
        assert entry == entry.strip(" \t\r\n\f\v")
        assert entry
        _url, checksum, problem = split_entry(entry)
        assert checksum is None or len(checksum) == 64
        assert problem is None or isinstance(problem, str)
    assert numbers == sorted(set(numbers))


headers = st.one_of(
    hostile_text,
    st.builds(
        lambda a, b, c: f"attachment; {a}={b}; {c}",
        st.sampled_from(["filename", "filename*", "FileName", "notfilename", "x"]),
        hostile_text,
        hostile_text,
    ),
)


@given(headers)
def test_disposition_name_is_none_or_safe(value: str) -> None:
    """disposition_name never raises; what it returns is a safe name."""
    name = disposition_name(value)
    if name is not None:
        assert_safe_name(name)
    assert disposition_name(value) == name


@given(st.lists(st.one_of(urls, st.sampled_from(["http://h/a", "http://h/a?x"])), max_size=15))
def test_plan_names_are_distinct_safe_and_deterministic(entries: list[str]) -> None:
    """Planning never raises; names are safe, distinct (collisions too) and repeatable."""
    jobs = list(plan(entries))
    assert len(jobs) == len(entries)
    names = [job.name for job in jobs if job.problem is None]
    for name in names:
        assert_safe_name(name)
    assert len(set(names)) == len(names)
    assert [(j.url, j.name, j.problem) for j in plan(entries)] == [
        (j.url, j.name, j.problem) for j in jobs
    ]


@given(any_url, st.text(alphabet="0123456789abcdef", min_size=8, max_size=8))
def test_with_suffix_keeps_names_within_limits(url: str, tag: str) -> None:
    """A collision suffix never pushes a name past the limit."""
    assert_safe_name(with_suffix(safe_name(url), tag))


@given(st.text())
def test_printable_escapes_every_control_character(text: str) -> None:
    """Human output holds only printable characters; printable text is left alone."""
    shown = printable(text)
    assert shown.isprintable()
    assert printable(text) == shown
    if text.isprintable():
        assert shown == text
