"""`manyget bench`: it runs, verifies every file, marks incomplete runs, and draws a plot.

The benchmark itself is not run here (its figures mean nothing on a busy CI machine); the
`tiny` scenario keeps the command, its servers and its outside-tool runners working.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import need_program
from manyget._bench import SCENARIOS, rows, table, to_json
from manyget._bench._report import from_json
from manyget._bench._run import Run, ScenarioRuns, verify
from manyget._bench._scenarios import Expected, block_content, expected

pytestmark = pytest.mark.timeout(180)


def bench(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manyget", "bench", "--tmp", str(tmp), *args],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )


def test_tiny_scenario_runs_engines_and_a_peer(tmp_path: Path) -> None:
    """Each engine and curl download the tiny scenario completely, verified, in JSON."""
    proc = bench(
        "--scenario", "tiny", "--engines", "multi,threads", "--against", "curl,parfive",
        "--runs", "2", "--json", tmp=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (scenario,) = doc["scenarios"]
    assert scenario["name"] == "tiny"
    assert scenario["files"] == 24
    ran = scenario["runs"]
    for name in ("manyget multi", "manyget threads"):
        assert len(ran[name]) == 2
        assert all(r["complete"] and r["files"] == 24 for r in ran[name])
        assert all(r["nbytes"] == scenario["bytes"] for r in ran[name])
    for peer in ("curl", "parfive"):  # ran and complete, or listed with the reason it did not
        if peer in ran:
            assert all(r["complete"] for r in ran[peer]), ran[peer]
        else:
            assert scenario["not_run"][peer]
    assert "tiny round 2/2: manyget multi" in proc.stderr
    # Under the table: what each ratio compares with, naming this run's best peer.
    assert "`x limit`: -, this scenario has no computed lower bound" in proc.stderr
    peers = [p for p in ("curl", "parfive") if p in ran]
    if peers:
        assert re.search(
            r"`x best peer`: wall time over the fastest outside tool in this same "
            r"run, (curl|parfive) \(\d+\.\d\d s\)",
            proc.stderr,
        ), proc.stderr
    assert list(tmp_path.iterdir()) == []  # served files and downloads are cleaned up


def test_tiny_scenario_from_nginx_as_a_table(tmp_path: Path) -> None:
    """--nginx serves the generated files; the table names the server and every contender."""
    need_program("nginx")
    proc = bench(
        "--scenario", "tiny", "--engines", "multi", "--against", "none", "--runs", "1",
        "--nginx", tmp=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "from the nginx (1 worker, sendfile)" in proc.stdout
    assert "| manyget multi |" in proc.stdout
    assert "INCOMPLETE" not in proc.stdout
    assert "`x best peer`: -, no outside tool ran to completion in this run." in proc.stdout


def test_plot_is_a_png(tmp_path: Path) -> None:
    """--plot writes a PNG picture of the results."""
    pytest.importorskip("matplotlib")
    picture = tmp_path / "bench.png"
    work = tmp_path / "work"
    work.mkdir()
    proc = bench(
        "--scenario", "tiny", "--engines", "multi", "--against", "none", "--runs", "1",
        "--plot", str(picture), tmp=work,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "S9"], "unknown scenario 'S9'"),
        (["--engines", "turbo"], "unknown engine 'turbo'"),
        (["--against", "lynx"], "unknown tool 'lynx'"),
        (["--runs", "0"], "must be >= 1"),
        (["--tree", "src"], "expected NAME=SRC"),
        (["--tree", "old=/nonexistent"], "no manyget package in that folder"),
        (["--tree", "a=src", "--tree", "a=src"], "a name of its own"),
    ],
)
def test_bad_choices_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    """A bad scenario, engine, tool or count fails with exit 2 before anything runs."""
    proc = bench(*args, tmp=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_trees_race_versions_of_manyget_side_by_side(tmp_path: Path) -> None:
    """``--tree NAME=SRC`` runs each engine from each source folder: this checkout's
    src downloads everything, a version that exits at once is marked incomplete."""
    broken = tmp_path / "broken"
    (broken / "manyget").mkdir(parents=True)
    (broken / "manyget" / "__init__.py").write_text("")
    (broken / "manyget" / "__main__.py").write_text("raise SystemExit(7)\n")
    here = Path(__file__).resolve().parent.parent / "src"
    out = tmp_path / "bench"
    out.mkdir()
    proc = bench(
        "--scenario", "tiny", "--engines", "multi", "--against", "none", "--runs", "1",
        "--tree", f"now={here}", "--tree", f"broken={broken}", "--json", tmp=out,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # a manyget run did not download everything
    ran = json.loads(proc.stdout)["scenarios"][0]["runs"]
    assert sorted(ran) == ["manyget multi (broken)", "manyget multi (now)"]
    assert all(r["complete"] and r["files"] == 24 for r in ran["manyget multi (now)"])
    (failed,) = ran["manyget multi (broken)"]
    assert not failed["complete"]
    assert "exit 7" in failed["problem"]


def test_verify_finds_missing_corrupt_and_extra_files(tmp_path: Path) -> None:
    """Verification checks every expected file's bytes and notices strays."""
    want = expected(SCENARIOS["tiny"])
    for i, item in enumerate(want):
        (tmp_path / item.name).write_bytes(block_content(i, item.size))
    total = sum(w.size for w in want)
    assert verify(tmp_path, want) == (24, total, "")
    (tmp_path / want[0].name).unlink()
    body = bytearray((tmp_path / want[1].name).read_bytes())
    body[-1] ^= 1  # same size, one bit off
    (tmp_path / want[1].name).write_bytes(body)
    (tmp_path / ".f000002.bin.part").write_bytes(b"x")
    good, nbytes, problem = verify(tmp_path, want)
    assert good == 22
    assert nbytes == total - want[0].size - want[1].size
    assert problem == "22/24 files intact, 1 with wrong content, 1 unexpected files"


def test_scenarios_expect_what_the_server_serves() -> None:
    """Expected digests are those of the generated files and of the served flags."""
    tiny = expected(SCENARIOS["tiny"])
    assert tiny[3] == Expected(
        "f000003.bin",
        SCENARIOS["tiny"].sizes[3],
        hashlib.sha256(block_content(3, SCENARIOS["tiny"].sizes[3])).hexdigest(),
    )
    s1 = SCENARIOS["S1"]
    assert s1.files == 194
    assert s1.limit() == pytest.approx(0.4)  # 4 rounds of 64 at 0.1 s
    assert SCENARIOS["S1@20"].limit() == pytest.approx(1.0)
    assert SCENARIOS["BOOK"].limit() == pytest.approx(0.5)
    assert SCENARIOS["S2"].limit() is None
    assert len({w.sha256 for w in expected(SCENARIOS["S1"])}) == 194


def test_incomplete_runs_are_marked_not_hidden() -> None:
    """A contender that missed files keeps its row, marked, and is no peer baseline."""
    sr = ScenarioRuns(SCENARIOS["tiny"], "test", 1000, None, "")
    sr.peers = {"curl", "wget2"}
    sr.runs = {
        "manyget multi": [Run(1.0, 0.5, 0, 24, 1000, "")],
        "curl": [Run(0.5, 0.2, 0, 20, 900, "20/24 files intact")],
        "wget2": [Run(2.0, 0.4, 0, 24, 1000, "")],
    }
    by_name = {row.name: row for row in rows(sr)}
    assert by_name["curl"].incomplete == 1
    assert by_name["manyget multi"].to_best_peer == pytest.approx(0.5)  # against wget2
    text = table([sr])
    assert "| curl | 0.50 (0.50-0.50) |" in text
    assert "INCOMPLETE in 1 of 1 runs" in text


def test_json_round_trip_redraws_the_same_table() -> None:
    """Results written as JSON read back to the same table (benchmarks/replot.py)."""
    sr = ScenarioRuns(SCENARIOS["S1"], "test", 2_000, 0.4, "latency rounds")
    sr.peers = {"wget2"}
    sr.missing = {"aria2c": "not on PATH"}
    sr.runs = {
        "manyget multi": [Run(0.48, 0.08, 0, 194, 2_000, ""), Run(0.49, 0.09, 0, 194, 2_000, "")],
        "wget2": [Run(0.42, 0.03, 0, 193, 1_990, "193/194 files intact")],
    }
    doc = json.loads(json.dumps(to_json([sr])))
    assert table(from_json(doc)) == table([sr])


def test_a_server_that_cannot_start_is_a_one_line_error(tmp_path: Path) -> None:
    """An nginx that fails to start ends the bench with exit 3 and one line, no traceback."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nginx").write_text("#!/bin/sh\necho 'nginx: [emerg] broken on purpose' >&2\nexit 1\n")
    (fake / "nginx").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "bench", "--scenario", "tiny", "--engines", "multi",
         "--against", "none", "--runs", "1", "--nginx", "--tmp", str(work)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "manyget: error: nginx did not start: nginx: [emerg] broken on purpose"
    assert "Traceback" not in proc.stderr
    assert list(work.iterdir()) == []


def test_big_file_scenarios_and_their_command_lines(tmp_path: Path) -> None:
    """S4 goes through nginx's capped location; each tool gets its own ranges options."""
    from manyget._bench._contenders import engine_contender, peer_contender

    s4, s5 = SCENARIOS["S4"], SCENARIOS["S5"]
    assert s4.paths() == ["/limited/f000000.bin"]
    assert s5.paths() == ["/f000000.bin"]
    assert s4.paper_limit() == pytest.approx((1 << 30) / (16 * 50 * (1 << 20)))
    assert s5.paper_limit() is None
    urls, names = ["http://127.0.0.1:1/limited/f000000.bin"], ["f000000.bin"]

    def argv(contender_name: str, split: int) -> list[str]:
        if contender_name.startswith("manyget"):
            contender = engine_contender("multi")
        else:
            contender = peer_contender(contender_name)
        return contender.at(16, split, 1 << 30).command(urls, names, tmp_path)

    manyget_argv = argv("manyget", 16)
    assert manyget_argv[manyget_argv.index("--split") + 1] == "16"
    assert "--split" not in argv("manyget", 1)
    assert "--split=16" in argv("aria2c", 16)
    assert "--max-connection-per-server=16" in argv("aria2c", 16)
    assert "--split=1" in argv("aria2c", 1)
    assert f"--chunk-size={(1 << 30) // 16}" in argv("wget2", 16)
    assert argv("parfive", 16)[-1] == "16"


def test_capped_location_serves_ranges_that_split_downloads_use(tmp_path: Path) -> None:
    """nginx's /limited/ location serves the root's files, with ranges: --split gets them
    whole and exact through it."""
    need_program("nginx")
    from manyget._bench._nginx import PrivateNginx

    root = tmp_path / "www"
    root.mkdir()
    body = block_content(7, 4 << 20)
    (root / "big.bin").write_bytes(body)
    out = tmp_path / "out"
    out.mkdir()
    with PrivateNginx(root, rate=32 << 20) as nginx:
        url = f"{nginx.base_url}/limited/big.bin"
        proc = subprocess.run(
            [sys.executable, "-m", "manyget", "get", "-q", "--split", "4", "--per-host", "4",
             "--min-split-size", "256K", "-d", str(out), "--json", url],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.splitlines()[-1])
    assert record["attempts"] > 2  # the first answer, then the ranges
    assert (out / "big.bin").read_bytes() == body


def test_the_capped_limit_reads_the_file_as_ranges_through_the_cap(tmp_path: Path) -> None:
    """S4's limit: the file read as N ranges at once through nginx's capped location, each
    checked to come back as a 206 of exactly its length (a wrong range is a ServerError,
    not a wrong limit)."""
    need_program("nginx")
    from manyget._bench._nginx import PrivateNginx
    from manyget._bench._run import probe_ranges
    from manyget._exceptions import ServerError

    root = tmp_path / "www"
    root.mkdir()
    size = (1 << 20) + 5
    (root / "big.bin").write_bytes(block_content(3, size))
    with PrivateNginx(root, rate=32 << 20) as nginx:
        url = f"{nginx.base_url}/limited/big.bin"
        assert probe_ranges(url, size, 3, rounds=1) > 0
        with pytest.raises(ServerError, match="came back as HTTP 206"):
            probe_ranges(url, size + 4096, 3, rounds=1)  # the last range runs past the end
