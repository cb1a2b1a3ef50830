"""Where a body goes on disk: small bodies in files with no name, bigger ones in .NAME.part.

A body of known length up to 1 MiB is written to an ``O_TMPFILE`` file and linked to its
final name when complete; no name in the destination ever refers to it before. Each test
watches the destination while a slow body arrives (the server drips it), on every engine.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

import manyget
from manyget import Status
from manyget._fetch import _part
from manyget._options import configure
from manyget._policy import Saved
from manyget._server import Server
from manyget._server._resources import bytes_chunks
from manyget._session import _for_run


def served(size: int) -> bytes:
    return b"".join(bytes_chunks(size, 0, size))


def _watch(folder: Path, stop: threading.Event, seen: set[str]) -> None:
    while not stop.is_set():
        seen.update(os.listdir(folder))
        time.sleep(0.005)


def _download_watched(url: str, dest: Path, **options: object) -> tuple[manyget.Report, set[str]]:
    """Download ``url`` while noting every name that appears in ``dest``."""
    seen: set[str] = set()
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(dest, stop, seen), daemon=True)
    watcher.start()
    try:
        report = manyget.download([url], dest, **options)  # type: ignore[arg-type]
    finally:
        stop.set()
        watcher.join(5)
    seen.update(os.listdir(dest))
    return report, seen


def test_small_body_has_no_name_until_complete(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """20 KB dripped over ~0.4 s: no .part, no lock file, only the final name at the end."""
    size = 20_000
    url = f"{server.url}/faults/drip/{size}?interval=0.02&chunk=1000"
    report, seen = _download_watched(url, tmp_path, engine=engine)
    (result,) = report.results
    assert result.status is Status.OK
    assert seen == {str(size)}
    assert (tmp_path / str(size)).read_bytes() == served(size)


def test_big_body_goes_to_a_partial_file(server: Server, tmp_path: Path) -> None:
    """Over 1 MiB, the body is written where a later run can resume it: .NAME.part."""
    size = 2_000_000
    url = f"{server.url}/faults/drip/{size}?interval=0.02&chunk=100000"
    report, seen = _download_watched(url, tmp_path)
    assert report.results[0].status is Status.OK
    assert f".{size}.part" in seen
    assert sorted(os.listdir(tmp_path)) == [str(size)]


def test_file_system_without_unnamed_files(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the kernel refuses O_TMPFILE (an old one opens the folder: EISDIR), the
    partial file takes over for the rest of the run."""
    monkeypatch.setattr(_part, "_O_TMPFILE", os.O_DIRECTORY)
    size = 20_000
    url = f"{server.url}/faults/drip/{size}?interval=0.02&chunk=2000"
    report, seen = _download_watched(url, tmp_path)
    assert report.results[0].status is Status.OK
    assert f".{size}.part" in seen
    assert (tmp_path / str(size)).read_bytes() == served(size)


def test_name_taken_meanwhile_is_replaced_whole(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """A file put under the final name while the body arrives is replaced by the whole
    download, as a rename replaces it, and no spare name is left behind."""
    size = 20_000
    url = f"{server.url}/faults/drip/{size}?interval=0.02&chunk=1000"
    (tmp_path / "other").write_bytes(b"")  # not empty: the run looks before it skips

    def intrude() -> None:
        time.sleep(0.15)
        (tmp_path / str(size)).write_bytes(b"someone else")

    thread = threading.Thread(target=intrude)
    thread.start()
    report = manyget.download([url], tmp_path, engine=engine)
    thread.join()
    assert report.results[0].status is Status.OK
    assert (tmp_path / str(size)).read_bytes() == served(size)
    assert sorted(os.listdir(tmp_path)) == [str(size), "other"]


def test_cut_small_body_is_kept_for_a_resume(server: Server, engine: str, tmp_path: Path) -> None:
    """A small body cut short is named .NAME.part with its sidecar, and resumed."""
    size = 100_000
    url = f"{server.url}/truncate/{size}"
    (first,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert first.status is Status.ERROR
    assert first.kept == size // 2
    assert sorted(os.listdir(tmp_path)) == [f".{size}.part", f".{size}.part.json"]
    (second,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert second.status is Status.OK
    assert second.history[-1].http_status == 206
    assert os.listdir(tmp_path) == [str(size)]
    assert (tmp_path / str(size)).read_bytes() == served(size)


def test_checksum_of_a_body_with_no_name(server: Server, tmp_path: Path) -> None:
    """The sha256 of a small body is read back from the unnamed file before it is linked."""
    size = 30_000
    import hashlib

    good = hashlib.sha256(served(size)).hexdigest()
    url = f"{server.url}/bytes/{size}"
    ok = manyget.download([f"{url}\tsha256={good}"], tmp_path).results[0]
    assert ok.status is Status.OK
    other = tmp_path / "other"
    other.mkdir()
    bad = manyget.download([f"{url}\tsha256={'0' * 64}"], other).results[0]
    assert bad.status is Status.ERROR
    assert "sha256 mismatch" in (bad.error or "")
    assert os.listdir(other) == []


def test_fresh_only_for_an_empty_destination(tmp_path: Path) -> None:
    """A run skips the look for complete files only where the folder was empty."""
    config = configure(tmp_path, {})
    assert _for_run(config).settings.fresh
    (tmp_path / "x").write_bytes(b"")
    assert not _for_run(config).settings.fresh
    (tmp_path / "x").unlink()
    assert not _for_run(configure(tmp_path, {"overwrite": True})).settings.fresh
    assert not _for_run(configure(tmp_path, {"content_disposition": True})).settings.fresh


def test_complete_file_skipped_when_folder_not_empty(server: Server, tmp_path: Path) -> None:
    """The look a fresh run skips still happens on a rerun: complete files are skipped."""
    url = f"{server.url}/bytes/1000"
    assert manyget.download([url], tmp_path).results[0].status is Status.OK
    assert manyget.download([url], tmp_path).results[0].status is Status.SKIPPED


@pytest.mark.parametrize("engine", ["multi", "sequential", "threads", "asyncio"])
def test_unnamed_file_that_cannot_be_linked_is_copied(
    server: Server, engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where linking through /proc is refused (a sandbox without it), the finished body is
    copied to .NAME.part and published as before, cut bodies are kept the same way, and
    the rest of the run uses partial files. (Engines in this process: the patch that
    refuses the link does not reach worker processes.)"""
    monkeypatch.setattr(_part, "_PROC_FD", "/nonexistent-proc/self/fd/")
    urls = [f"{server.url}/bytes/{size}" for size in (1000, 2000, 3000)]
    report = manyget.download([*urls, f"{server.url}/truncate/50000"], tmp_path, engine=engine,
                              retries=0)  # fmt: skip
    by_url = {r.url.rpartition("/")[2]: r for r in report.results}
    assert [by_url[str(size)].status for size in (1000, 2000, 3000)] == [Status.OK] * 3
    for size in (1000, 2000, 3000):
        assert (tmp_path / str(size)).read_bytes() == served(size)
    cut = by_url["50000"]
    assert (cut.status, cut.kept) == (Status.ERROR, 25000)
    assert sorted(os.listdir(tmp_path)) == [".50000.part", ".50000.part.json", "1000", "2000",
                                            "3000"]  # fmt: skip


def test_dir_puts_files_in_folders_of_their_own(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """dir= (aria2c's) saves a file in a folder under the destination, made when its
    first byte arrives; names are unique per folder; a rerun skips what is complete."""
    entries = [
        f"{server.url}/bytes/1000\tdir=a/b",
        f"{server.url}/bytes/1000\tdir=a/b",  # the same name in the same folder: a suffix
        f"{server.url}/bytes/1000\tdir=c",
        f"{server.url}/bytes/2000000\tdir=big",  # over 1 MiB: a partial file in the folder
        f"{server.url}/status/404\tdir=never",  # no body: no folder either
    ]
    report = manyget.download(entries, tmp_path, engine=engine)
    assert sorted(r.status.value for r in report.results) == ["not_found"] + ["ok"] * 4
    done = [r for r in report.results if r.path is not None]
    paths = sorted(str(Path(r.path).relative_to(tmp_path)) for r in done if r.path)
    assert paths[0] == "a/b/1000"
    assert paths[1].startswith("a/b/1000~")
    assert paths[2:] == ["big/2000000", "c/1000"]
    for result in done:
        assert result.path is not None
        assert Path(result.path).read_bytes() == served(result.bytes)
    assert sorted(os.listdir(tmp_path)) == ["a", "big", "c"]
    again = manyget.download(entries[:4], tmp_path, engine=engine)
    assert [r.status for r in again.results] == [Status.SKIPPED] * 4


def test_dir_never_follows_a_planted_link(server: Server, tmp_path: Path) -> None:
    """A symbolic link where a dir= folder should be is refused, not written through;
    '..' and absolute folders are bad lines."""
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "evil").symlink_to(outside)
    entries = [
        f"{server.url}/bytes/1000\tdir=evil",
        f"{server.url}/bytes/1000\tdir=evil/deeper",
        f"{server.url}/bytes/1000\tdir=../outside",
        f"{server.url}/bytes/1000\tdir=/tmp",
    ]
    results = manyget.download(entries, dest, retries=0).results
    assert [r.status for r in results] == [Status.ERROR] * 4
    errors = [r.error or "" for r in results]
    assert sum("absolute path" in error for error in errors) == 1
    assert sum("no '..'" in error for error in errors) == 1
    assert sum("'evil' on the way is not a folder" in error for error in errors) == 2
    assert os.listdir(outside) == []


def test_dir_from_aria2c_and_json_lists(server: Server, tmp_path: Path) -> None:
    """An aria2c input file's indented dir= and a JSON line's "dir" both work."""
    import json
    import subprocess
    import sys

    aria = tmp_path / "list.txt"
    aria.write_text(f"{server.url}/bytes/1000\n  dir=from-aria2c\n  out=one.bin\n")
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text(json.dumps({"url": f"{server.url}/bytes/2000", "dir": "from-json"}) + "\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    for listing in (aria, jsonl):
        run = subprocess.run(
            [sys.executable, "-m", "manyget", "get", "-q", "-i", str(listing), "-d", str(dest)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
    assert (dest / "from-aria2c" / "one.bin").read_bytes() == served(1000)
    assert (dest / "from-json" / "2000").read_bytes() == served(2000)


def test_chunks_are_written_together_and_all_reach_the_disk(tmp_path: Path) -> None:
    """libcurl's 16 KiB chunks go out in one writev per 256 KiB or 16 chunks (a slow
    stream's small chunks reach the disk often); keeping the file writes what is held."""
    part = _part.Part(f"{tmp_path}/", "f")
    part.open(0)
    sent = [bytes([i % 251]) * (1 + (i * 37) % 3000) for i in range(15)]
    for chunk in sent:
        part.write(chunk)
    assert os.fstat(part.fd).st_size == 0  # 15 small chunks: still held
    part.write(b"x")
    assert os.fstat(part.fd).st_size == sum(map(len, sent)) + 1  # the 16th: written
    big = os.urandom(16 << 10)
    for _ in range(15):
        part.write(big)
    assert os.fstat(part.fd).st_size == sum(map(len, sent)) + 1  # 240 KiB held
    tail = [os.urandom(n) for n in (5, 16 << 10, 77)]
    for chunk in tail:
        part.write(chunk)
    kept = part.keep(Saved("http://x/f", '"v1"', None, None))
    expected = b"".join([*sent, b"x", *([big] * 15), *tail])
    assert kept == len(expected)
    assert (tmp_path / ".f.part").read_bytes() == expected


def test_a_published_file_holds_every_byte_written(tmp_path: Path) -> None:
    """Publishing (here a file with no name, linked when complete) writes what is held."""
    folder = _part.Folder(f"{tmp_path}/")
    part = _part.Part(f"{tmp_path}/", "g", folder)
    if not part.open_unnamed(folder):
        part.open(0)
    data = os.urandom(50_000)
    for at in range(0, len(data), 7_000):
        part.write(data[at : at + 7_000])
    part.publish()
    folder.close()
    assert (tmp_path / "g").read_bytes() == data
    assert os.listdir(tmp_path) == ["g"]


def _on_tmpfs(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        found = _part.file_system(fd)
    finally:
        os.close(fd)
    assert found is not None  # Linux: the tests run there
    return found[0] == _part.TMPFS_MAGIC


def test_blocks_are_reserved_without_changing_the_size(tmp_path: Path) -> None:
    """A big body's blocks are allocated before its bytes arrive (ext4 then writes them
    for less CPU), past the end of the file: its size stays what was written."""
    if _on_tmpfs(tmp_path):
        pytest.skip("tmpfs: nothing is reserved there")
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x" * 100)
        _part.reserve(fd, 100, 16 << 20)
        st = os.fstat(fd)
        assert st.st_size == 100
        assert st.st_blocks * 512 >= 16 << 20
        _part.reserve(fd, 0, _part.RESERVE_FROM - 1)  # too small to be worth it
    finally:
        os.close(fd)


def test_a_cut_big_body_resumes_from_its_bytes_not_its_blocks(
    server: Server, engine: str, tmp_path: Path
) -> None:
    """The blocks reserved for a 20 MB body do not count as received: after a reset half
    way, the partial file holds the bytes that came, and the next run fetches the rest
    and publishes a file of exactly the body's blocks."""
    size = 20_000_000
    url = f"{server.url}/faults/reset-mid/{size}"
    (first,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert first.status is Status.ERROR
    part = tmp_path / f".{size}.part"
    assert 0 < part.stat().st_size == first.kept < size
    if not _on_tmpfs(tmp_path):
        assert part.stat().st_blocks * 512 >= size  # the rest stays reserved for the resume
    (second,) = manyget.download([url], tmp_path, engine=engine, retries=0).results
    assert second.status is Status.OK
    assert second.history[-1].http_status == 206
    final = tmp_path / str(size)
    assert final.read_bytes() == served(size)
    assert final.stat().st_blocks * 512 < size + (1 << 20)  # nothing reserved left over
