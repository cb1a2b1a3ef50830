"""The chapter's example programs in ``examples/``, each run as a real subprocess."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from manyget._server import POP20_CC, flag_gif

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
FUTURE = r"<Future at 0x[0-9a-f]+ state=(pending|running|finished returned Result)>"
SUMMARY = (
    r"20 downloaded; [0-9.]+ kB received in \d+\.\d\ds \([0-9,.]+ files/s, [0-9.]+ [kMG]?B/s\)"
)


def run_example(
    name: str, *args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> list[str]:
    """Run ``examples/name.py`` (from the repository root by default); return its stdout lines."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc.stdout.splitlines()


def assert_summary(line: str, count: int) -> float:
    """Check the book's last line, ``N flags downloaded in S.SSs``; return the seconds."""
    match = re.fullmatch(rf"{count} flags downloaded in (\d+\.\d\d)s", line)
    assert match, line
    return float(match[1])


def assert_flags_saved(dest: Path, codes: list[str]) -> None:
    """Exactly these flags are in ``dest``, byte for byte what the server serves."""
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{cc.lower()}.gif" for cc in codes)
    for cc in codes:
        data = (dest / f"{cc.lower()}.gif").read_bytes()
        assert data.startswith(b"GIF89a")
        assert data == flag_gif(cc)


@pytest.mark.parametrize("name", ["flags_sequential", "flags_threadpool"])
def test_flags_print_codes_in_input_order(name: str, tmp_path: Path) -> None:
    """The sequential and executor.map versions print the 20 codes sorted, as they save them."""
    lines = run_example(name, "-d", tmp_path)
    assert lines[0].split() == sorted(POP20_CC)
    assert_summary(lines[-1], 20)
    assert_flags_saved(tmp_path, list(POP20_CC))


def test_flags_asyncio_prints_each_result_as_it_completes(tmp_path: Path) -> None:
    """The asyncio version prints all 20 codes, in completion order, and saves the flags."""
    lines = run_example("flags_asyncio", "-d", tmp_path, "--delay", "0.05:0.3")
    assert sorted(lines[0].split()) == sorted(POP20_CC)
    assert_summary(lines[-1], 20)
    assert_flags_saved(tmp_path, list(POP20_CC))


def test_flags_asyncio_sends_all_20_at_once(tmp_path: Path) -> None:
    """``--delay 0.3`` reaches the server, and the 20 downloads wait it out in one round."""
    lines = run_example("flags_asyncio", "-d", tmp_path, "--delay", "0.3")
    seconds = assert_summary(lines[-1], 20)
    # Rounds of 8 (manyget's default per host) would take 3 x 0.3 s at least.
    assert 0.3 <= seconds < 0.85


def test_flags_threadpool_runs_in_rounds_of_the_default_pool_size(tmp_path: Path) -> None:
    """``map`` on ``min(32, cpu + 4)`` threads: rounds of that many, far below sequential."""
    workers = min(32, (os.cpu_count() or 1) + 4)
    lines = run_example("flags_threadpool", "-d", tmp_path, "--delay", "0.2")
    assert lines[0].split() == sorted(POP20_CC)
    seconds = assert_summary(lines[-1], 20)
    assert math.ceil(20 / workers) * 0.2 <= seconds < 20 * 0.2


def test_flags_processpool_runs_manyget_on_a_process_pool(tmp_path: Path) -> None:
    """The ProcessPoolExecutor given as ``executor=`` downloads and saves all 20 flags."""
    lines = run_example("flags_processpool", "-d", tmp_path)
    assert re.fullmatch(SUMMARY, lines[0]), lines[0]
    assert_summary(lines[-1], 20)
    assert_flags_saved(tmp_path, list(POP20_CC))


def test_flags_threadpool_futures_shows_scheduled_and_finished_futures(tmp_path: Path) -> None:
    """submit/as_completed print each future unfinished as scheduled, then finished."""
    lines = run_example("flags_threadpool_futures", "-d", tmp_path, "--delay", "0.2")
    codes = sorted(POP20_CC[:5])
    scheduled = [re.fullmatch(rf"Scheduled for ([A-Z]{{2}}): {FUTURE}", x) for x in lines[:5]]
    assert [m[1] for m in scheduled if m] == codes
    states = [m[2] for m in scheduled if m]
    # Three threads: at most three running; none can have finished within its 0.2 s delay.
    assert states.count("running") <= 3
    assert states.count("pending") + states.count("running") == 5
    finished = [
        re.fullmatch(
            r"<Future at 0x[0-9a-f]+ state=finished returned Result> result: '([A-Z]{2})'", x
        )
        for x in lines[5:10]
    ]
    assert sorted(m[1] for m in finished if m) == codes
    seconds = assert_summary(lines[-1], 5)
    assert 2 * 0.2 <= seconds < 5 * 0.2  # two rounds of three, not one, not five
    assert_flags_saved(tmp_path, codes)


def test_flags_example_runs_with_no_arguments(tmp_path: Path) -> None:
    """With no arguments an example saves into a temporary folder and removes it at exit."""
    (cwd := tmp_path / "cwd").mkdir()
    (tmp := tmp_path / "tmp").mkdir()
    lines = run_example("flags_sequential", cwd=cwd, env={**os.environ, "TMPDIR": str(tmp)})
    assert_summary(lines[-1], 20)
    assert list(cwd.iterdir()) == []
    assert list(tmp.iterdir()) == []


def test_demo_executor_map_returns_results_in_submission_order() -> None:
    """executor.map returns a generator at once, runs 3 calls at a time, yields in order."""
    lines = [line.split("] ", 1)[1].strip() for line in run_example("demo_executor_map")]
    assert lines[0] == "Script starting."
    assert any(line.startswith("results: <generator object") for line in lines)
    results = [line for line in lines if line.startswith("result ")]
    assert results == [f"result {i}: {i * 10}" for i in range(5)]
    # loiter(4) waits for a free worker: loiter(0) and loiter(1) must end first.
    assert lines.index("loiter(1): done.") < lines.index("loiter(4): doing nothing for 2s...")
    assert lines[-1].startswith("Done in ")


def test_demo_executor_map_holds_early_finishers_behind_a_slow_first_call() -> None:
    """Results come in submission order even when the later calls finish first."""
    stamped = run_example("demo_executor_map", "4", "3", "2", "1", "0", "--unit", "0.3")
    lines = [line.split("] ", 1)[1].strip() for line in stamped]
    results = [i for i, line in enumerate(lines) if line.startswith("result ")]
    assert [lines[i] for i in results] == [f"result {i}: {(4 - i) * 10}" for i in range(5)]
    slowest = lines.index("loiter(4): done.")
    assert all(lines.index(f"loiter({n}): done.") < slowest for n in range(4))
    assert min(results) > slowest


def test_demo_session_map_holds_early_finishers_behind_a_slow_first_download() -> None:
    """Downloader.map: all submitted at once, three at a time, results in input order."""
    stamped = run_example("demo_session_map", "--unit", "0.3")
    lines = [line.split("] ", 1)[1].strip() for line in stamped]
    assert lines[0] == "Script starting."
    assert lines[1].startswith("results: <generator object Downloader.")
    assert lines[2] == "Waiting for individual results:"
    done = {
        int(m[1]): i
        for i, line in enumerate(lines)
        if (m := re.fullmatch(r"stall\((\d)\): done, ok in \d+\.\d\ds\.", line))
    }
    assert sorted(done) == [0, 1, 2, 3, 4]
    results = [i for i, line in enumerate(lines) if line.startswith("result ")]
    expected = [f"result {i}: stall({n}), {n} B" for i, n in enumerate([4, 3, 2, 1, 0])]
    assert [lines[i] for i in results] == expected
    # The later downloads finish before the first, whose result every other one waits for.
    assert all(done[n] < done[4] for n in range(4))
    assert min(results) > done[4]
    # Three at a time: stall(1) and stall(0) wait for stall(2)'s thread, else they would
    # finish first of all.
    assert done[2] < done[1]
    assert done[2] < done[0]
    assert lines[-1].startswith("Done in ")
