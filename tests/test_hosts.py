"""Pure per-host scheduling: limits, fairness under a flooding host, pauses after 429/503."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from manyget import Attempt, Result, Status
from manyget._hosts import WAIT, HostGate
from manyget._jobs import PENDING, Job, plan, plan_lines


def jobs_for(*hosts: str) -> Iterator[Job]:
    return plan(f"http://{host}/f{i}.bin" for i, host in enumerate(hosts))


def take_all(gate: HostGate, now: float = 0.0) -> list[Job]:
    taken = []
    while True:
        job = gate.take(now)
        if job is None or job is WAIT:
            return taken
        assert isinstance(job, Job)
        taken.append(job)


def result(job: Job, status: int, retry_after: float | None = None) -> Result:
    attempt = Attempt(http_status=status, retry_after=retry_after, complete=status == 200)
    return Result(
        url=job.url, path=job.name, status=Status.OK, http_status=status, history=(attempt,)
    )


def test_per_host_limit() -> None:
    """No more than per_host jobs of one host start until one finishes."""
    gate = HostGate(jobs_for(*["a"] * 10), per_host=3)
    started = take_all(gate)
    assert len(started) == 3
    assert gate.take(0.0) is WAIT
    gate.done(started[0], result(started[0], 200), 0.0)
    assert isinstance(gate.take(0.0), Job)


def test_flooding_host_does_not_starve_others() -> None:
    """A list of 100 URLs of one host, then 5 of others: the others start at once."""
    gate = HostGate(jobs_for(*(["flood"] * 100 + ["b", "c", "d", "e", "f"])), per_host=2)
    started = take_all(gate)
    hosts = sorted({job.host for job in started})
    assert hosts == sorted(f"http://{h}:80" for h in ["flood", "b", "c", "d", "e", "f"])
    assert sum(job.host == "http://flood:80" for job in started) == 2


def test_lookahead_bounds_memory() -> None:
    """Jobs held aside never exceed the lookahead."""
    gate = HostGate(jobs_for(*(["a"] * 10_000)), per_host=1, lookahead=50)
    assert len(take_all(gate)) == 1
    assert gate._held_count == 50


def test_round_robin_between_held_hosts() -> None:
    """Held jobs of several hosts are served in turn, not host by host."""
    gate = HostGate(jobs_for(*(["a"] * 5 + ["b"] * 5)), per_host=1)
    first = take_all(gate)
    assert [j.host[7] for j in first] == ["a", "b"]
    order = []
    for _ in range(6):
        done = first.pop(0)
        gate.done(done, result(done, 200), 0.0)
        nxt = gate.take(0.0)
        assert isinstance(nxt, Job)
        order.append(nxt.host[7])
        first.append(nxt)
    assert order == ["a", "b", "a", "b", "a", "b"]


def test_429_pauses_only_that_host() -> None:
    """After a 429 with Retry-After, that host waits; other hosts go on."""
    gate = HostGate(jobs_for("a", "a", "b", "b"), per_host=1)
    a1, b1 = take_all(gate)
    gate.done(a1, result(a1, 429, retry_after=5.0), 10.0)
    gate.done(b1, result(b1, 200), 10.0)
    nxt = gate.take(10.0)
    assert isinstance(nxt, Job)
    assert nxt.host == "http://b:80"
    assert gate.take(10.0) is WAIT
    assert gate.wake_in(10.0) == 5.0
    later = gate.take(15.0)
    assert isinstance(later, Job)
    assert later.host == "http://a:80"


def test_done_when_list_is_exhausted() -> None:
    """take() returns None once every job has been handed out."""
    gate = HostGate(jobs_for("a"), per_host=4)
    (only,) = take_all(gate)
    gate.done(only, result(only, 200), 0.0)
    assert gate.take(0.0) is None


def test_rejected_jobs_pass_straight_through() -> None:
    """Jobs with a problem (no host) are handed out regardless of limits."""
    gate = HostGate(plan(["file:///x", "javascript:1"]), per_host=1)
    assert len(take_all(gate)) == 2


def test_an_input_with_nothing_ready_means_wait_and_ask_again_soon() -> None:
    """PENDING from a slow input: WAIT with a short wake-up, then the jobs still come."""
    first, second = jobs_for("a", "b")
    gate = HostGate(iter([first, PENDING, PENDING, second]), per_host=2)
    assert gate.take(0.0) == first
    assert gate.wake_in(0.0) is None
    assert gate.take(0.0) is WAIT
    assert gate.wake_in(0.0) == pytest.approx(0.02)
    assert gate.take(0.0) is WAIT
    assert gate.take(0.0) == second
    assert gate.wake_in(0.0) is None
    assert gate.take(0.0) is None


def test_planning_passes_pending_through() -> None:
    """plan_lines hands PENDING on untouched and numbers the jobs around it."""
    items = [(1, "http://h/a"), PENDING, (3, "http://h/b")]
    out = list(plan_lines(items))
    assert out[1] is PENDING
    jobs = [j for j in out if isinstance(j, Job)]
    assert [(j.index, j.line, j.name) for j in jobs] == [(0, 1, "a"), (1, 3, "b")]
