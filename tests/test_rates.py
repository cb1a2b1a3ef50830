"""Bandwidth caps (--limit-rate, --limit-rate-host) and --max-rps.

The caps' accuracy over a long run is measured by benchmarks/rate_cap.py; here the pure
buckets are checked with a made-up clock, and each engine is checked to never go faster
than a cap allows (a lower bound on time, which a busy machine cannot break).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import manyget
from manyget import Status
from manyget._fetch._rate import Bucket, Rates
from manyget._hosts import WAIT, HostGate
from manyget._jobs import Job, plan
from manyget._server import Server

pytestmark = pytest.mark.timeout(60)


def test_bucket_lets_chunks_through_at_its_rate_on_average() -> None:
    """A chunk passes while tokens remain (debt allowed); refills at the rate; the burst
    is a tenth of a second's worth."""
    bucket = Bucket(100_000, now=0.0)
    assert bucket.burst == 16 * 1024  # at least 16 KiB
    assert bucket.ready(0.0)
    bucket.spend(50_000)  # into debt
    assert not bucket.ready(0.0)
    assert bucket.delay(0.0) == pytest.approx((50_000 - 16 * 1024) / 100_000, abs=1e-3)
    assert bucket.ready(0.4)
    big = Bucket(10_000_000, now=0.0)
    assert big.burst == 1_000_000


def test_rates_draw_on_the_run_and_the_host() -> None:
    """A chunk needs both the run's cap and its host's; another host has its own."""
    rates = Rates(1_000_000, 20_000, now=0.0)
    assert rates.allow("a", 40_000, 0.0)  # a's bucket: 16 KiB burst, now in debt
    assert not rates.allow("a", 1, 0.0)
    assert rates.delay("a", 0.0) > 0
    assert rates.allow("b", 1000, 0.0)  # b is not held back by a
    assert rates.allow("a", 1, 2.0)


def test_max_rps_spaces_one_hosts_starts() -> None:
    """At most N starts a second per host; wake_in says when the next may go; other
    hosts are not held back."""
    jobs = iter(plan(["http://a/1", "http://a/2", "http://a/3", "http://b/1"]))
    gate = HostGate(jobs, per_host=8, max_rps=4)
    first = gate.take(0.0)
    assert isinstance(first, Job)
    assert first.url == "http://a/1"
    second = gate.take(0.0)
    assert isinstance(second, Job)
    assert second.url == "http://b/1"  # a must wait 0.25 s; b goes
    assert gate.take(0.1) is WAIT
    assert gate.wake_in(0.1) == pytest.approx(0.15)
    third = gate.take(0.25)
    assert isinstance(third, Job)
    assert third.url == "http://a/2"


def test_limit_rate_holds_on_every_engine(server: Server, engine: str, tmp_path: Path) -> None:
    """2 MiB under a 1 MiB/s cap takes at least about 2 s, whatever the engine, and
    every byte arrives."""
    urls = [f"{server.url}/bytes/{524_288 + i}" for i in range(4)]
    start = time.monotonic()
    report = manyget.download(urls, tmp_path, engine=engine, limit_rate=1 << 20)
    elapsed = time.monotonic() - start
    assert report.counts == {Status.OK: 4}
    assert report.bytes == sum(524_288 + i for i in range(4))
    burst = (1 << 20) / 10 * (2 if engine == "processes" else 1)  # a burst per worker
    assert elapsed >= (report.bytes - burst) / (1 << 20) * 0.95, elapsed


def test_max_rps_on_the_command_line(server: Server, tmp_path: Path) -> None:
    """--max-rps 5: six requests to one host take at least five gaps of 0.2 s."""
    import subprocess
    import sys

    urls = [f"{server.url}/bytes/{10 + i}" for i in range(6)]
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "manyget", "get", "-q", "-d", str(tmp_path), "--max-rps", "5",
         *urls],
        capture_output=True, text=True, timeout=50, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed >= 1.0
    assert len(list(tmp_path.iterdir())) == 6


@pytest.mark.parametrize("value", ["0", "-1", "fast"])
def test_bad_rates_are_usage_errors(value: str, tmp_path: Path) -> None:
    """A rate of 0, a negative one or a word: one line, exit 2."""
    import subprocess
    import sys

    for option in ("--limit-rate", "--max-rps"):
        proc = subprocess.run(
            [sys.executable, "-m", "manyget", "get", "-d", str(tmp_path), option, value, "x"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert proc.returncode == 2
        assert len(proc.stderr.splitlines()) == 2  # the error, and where the help is
