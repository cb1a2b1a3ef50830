"""The SQLite journal: every engine records each URL once, a rerun skips what is done
without touching the files, `manyget status` and `--retry-failed`, and kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import manyget
from _counting import CountingServer, body_of
from manyget import Status
from manyget._journal import DEFAULT_NAME, Journal

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def counting() -> Iterator[CountingServer]:
    with CountingServer() as srv:
        yield srv


def rows(journal: Path) -> dict[str, tuple[str, str | None, int]]:
    """name -> (state, path, size), as the journal holds them."""
    with sqlite3.connect(journal) as db:
        return {
            name: (state, path, size)
            for name, state, path, size in db.execute("SELECT name, state, path, size FROM urls")
        }


def manyget_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manyget", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_every_engine_records_and_rerun_skips_without_looking(
    counting: CountingServer, engine: str, tmp_path: Path
) -> None:
    """Each engine records every URL once; a rerun skips the done ones without a request
    and without looking at the files (one deleted meanwhile stays skipped)."""
    urls = counting.urls(12)
    counting.missing.add("/f/11.bin")
    report = manyget.download(urls, tmp_path, engine=engine, journal=True)
    assert report.counts == {Status.OK: 11, Status.NOT_FOUND: 1}
    journal = tmp_path / DEFAULT_NAME
    recorded = rows(journal)
    assert len(recorded) == 12
    assert recorded["11.bin"][0] == "not_found"
    for i in range(11):
        assert recorded[f"{i}.bin"] == ("ok", str(tmp_path / f"{i}.bin"), 1000)
    (tmp_path / "0.bin").unlink()  # the journal, not the disk, says it is done
    again = manyget.download(urls, tmp_path, engine=engine, journal=True)
    assert again.counts == {Status.SKIPPED: 11, Status.NOT_FOUND: 1}
    assert counting.counts["/f/0.bin"] == 1
    assert counting.counts["/f/11.bin"] == 2  # failures are tried again
    skipped = {r.path: r.bytes for r in again.results if r.status is Status.SKIPPED}
    assert skipped[str(tmp_path / "0.bin")] == 1000


def test_files_found_complete_are_recorded(counting: CountingServer, tmp_path: Path) -> None:
    """A file published but never recorded (the client died before the commit) is found
    complete by the preflight on the next run, and recorded then."""
    urls = counting.urls(5)
    manyget.download(urls, tmp_path)
    journal = tmp_path / "j.sqlite"
    report = manyget.download(urls, tmp_path, journal=journal)
    assert report.counts == {Status.SKIPPED: 5}
    assert {state for state, _, _ in rows(journal).values()} == {"skipped"}
    assert sum(counting.counts.values()) == 5


def test_overwrite_ignores_the_journal(counting: CountingServer, tmp_path: Path) -> None:
    """With overwrite, a URL the journal holds as done is downloaded again."""
    urls = counting.urls(3)
    manyget.download(urls, tmp_path, journal=True)
    report = manyget.download(urls, tmp_path, journal=True, overwrite=True)
    assert report.counts == {Status.OK: 3}


def test_futures_and_async_faces_record(counting: CountingServer, tmp_path: Path) -> None:
    """submit() and the async API record their results too."""
    journal = tmp_path / "j.sqlite"
    dest = tmp_path / "d"
    with manyget.Downloader(dest, journal=journal) as d:
        futures = [d.submit(url) for url in counting.urls(3)]
    assert all(f.result().ok for f in futures)
    import asyncio

    asyncio.run(manyget.adownload(counting.urls(5), dest, journal=journal))
    assert len(rows(journal)) == 5
    assert sum(counting.counts.values()) == 5


def test_journal_of_another_destination_is_refused(
    counting: CountingServer, tmp_path: Path
) -> None:
    """A journal belongs to one destination: using it for another is one clear error."""
    journal = tmp_path / "j.sqlite"
    manyget.download(counting.urls(1), tmp_path / "a", journal=journal)
    with pytest.raises(manyget.UsageError, match="records downloads into"):
        manyget.download(counting.urls(1), tmp_path / "b", journal=journal)


def test_another_database_is_left_alone(tmp_path: Path) -> None:
    """An SQLite file that is not a journal is refused and not changed."""
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    before = other.read_bytes()
    with pytest.raises(manyget.UsageError, match="not a manyget journal"):
        Journal(str(other), tmp_path)
    assert other.read_bytes() == before


def test_status_summarises(counting: CountingServer, tmp_path: Path) -> None:
    """`manyget status` gives counts, bytes, failures by reason and host; exit 1 when
    some failed, 0 when none did."""
    counting.missing.update({"/f/3.bin", "/f/4.bin"})
    manyget.download(counting.urls(5), tmp_path, journal=True)
    done = manyget_cli("status", str(tmp_path / DEFAULT_NAME))
    assert done.returncode == 1, done.stderr
    assert "5 URLs recorded" in done.stdout
    assert "ok                    3  3.0 kB" in done.stdout
    assert "2  HTTP 404 Not Found" in done.stdout
    assert f"2  {counting.url}" in done.stdout


@pytest.mark.parametrize("content", [None, b"not a database at all" * 100, b""])
def test_status_of_a_bad_journal_is_one_line(tmp_path: Path, content: bytes | None) -> None:
    """A missing, corrupt or empty journal: one line on stderr, exit 2, no traceback."""
    path = tmp_path / "j.sqlite"
    if content is not None:
        path.write_bytes(content)
    done = manyget_cli("status", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "manyget status: error: journal" in done.stderr


def test_get_with_a_corrupt_journal_is_one_line(counting: CountingServer, tmp_path: Path) -> None:
    """`get --journal` on a file that is not a journal: one line, exit 2, no request."""
    journal = tmp_path / "j.sqlite"
    journal.write_bytes(b"garbage" * 1000)
    done = manyget_cli("get", "-d", str(tmp_path), "--journal", str(journal), counting.urls(1)[0])
    assert done.returncode == 2
    assert "not a manyget journal" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert not counting.counts


def test_retry_failed_requeues_with_names(counting: CountingServer, tmp_path: Path) -> None:
    """`get --retry-failed JOURNAL` fetches the failed URLs again, under their names, into
    the journal's destination, and records the outcome in it."""
    dest = tmp_path / "d"
    dest.mkdir()
    urls = counting.urls(4)
    entries = [f"{url}\tname=file-{i}.dat" for i, url in enumerate(urls)]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(entries) + "\n")
    counting.missing.update({"/f/1.bin", "/f/2.bin"})
    first = manyget_cli("get", "-q", "-i", str(listing), "-d", str(dest), "--journal")
    assert first.returncode == 1, first.stderr
    counting.missing.clear()
    journal = dest / DEFAULT_NAME
    again = manyget_cli("get", "-q", "--retry-failed", str(journal))
    assert again.returncode == 0, again.stderr
    assert counting.counts["/f/0.bin"] == 1
    assert counting.counts["/f/1.bin"] == 2
    assert (dest / "file-1.dat").read_bytes() == body_of("1.bin", 1000)
    assert {state for state, _, _ in rows(journal).values()} == {"ok"}
    assert manyget_cli("status", str(journal)).returncode == 0


def test_bare_journal_before_a_url(counting: CountingServer, tmp_path: Path) -> None:
    """`--journal URL` is a bare --journal followed by a URL, not a journal named URL."""
    url = counting.urls(1)[0]
    done = manyget_cli("get", "-q", "-d", str(tmp_path), "--journal", url)
    assert done.returncode == 0, done.stderr
    assert rows(tmp_path / DEFAULT_NAME)["0.bin"][0] == "ok"


def test_kill_9_then_rerun_downloads_nothing_twice(
    counting: CountingServer, tmp_path: Path
) -> None:
    """The client killed with SIGKILL mid-run: every record that says done has its
    complete file; the rerun with the journal requests no completed file again and
    leaves nothing missing."""
    n = 300
    dest = tmp_path / "d"
    dest.mkdir()
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(counting.urls(n, delay=0.03)) + "\n")
    journal = dest / DEFAULT_NAME
    args = ("get", "-q", "-i", str(listing), "-d", str(dest), "-j", "8", "--journal")
    child = subprocess.Popen(
        [sys.executable, "-m", "manyget", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if journal.exists() and len(rows_or_empty(journal)) >= 60:
            break
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    completed = {p.name for p in dest.iterdir() if p.name.endswith(".bin")}
    recorded = rows(journal)
    assert 60 <= len(recorded) < n
    for name, (state, path, _size) in recorded.items():
        assert state == "ok"
        assert path is not None
        assert Path(path).read_bytes() == body_of(name, 1000), name  # done means published
    assert set(recorded) <= completed
    done = manyget_cli("get", *args[1:], timeout=90)
    assert done.returncode == 0, done.stderr
    for name in completed:
        assert counting.counts[f"/f/{name}"] == 1, name
    for i in range(n):
        assert (dest / f"{i}.bin").read_bytes() == body_of(f"{i}.bin", 1000)
    final = rows(journal)
    assert len(final) == n
    assert {state for state, _, _ in final.values()} <= {"ok", "skipped"}


def rows_or_empty(journal: Path) -> dict[str, tuple[str, str | None, int]]:
    try:
        return rows(journal)
    except sqlite3.Error:  # created but no table yet
        return {}
