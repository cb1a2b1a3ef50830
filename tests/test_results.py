"""Pure results: statuses, tallies, reports and the retry policy's decisions."""

from __future__ import annotations

import random

import pytest

import manyget
from manyget import Report, Result, RetryPolicy, Status, Timeouts, UsageError
from manyget._results import Tally


def test_public_api_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists exactly the public names, so changes are deliberate."""
    assert manyget.__all__ == sorted(manyget.__all__)
    public = {name for name in dir(manyget) if not name.startswith("_")}
    assert public == set(manyget.__all__) - {"__version__"}


def test_tally_counts_like_the_book() -> None:
    """A tally counts results by status and adds the bytes of completed downloads."""
    tally = Tally(keep_results=True)
    tally.add(Result("u1", "p1", Status.OK, 200, 10))
    tally.add(Result("u2", "p2", Status.NOT_FOUND, 404))
    tally.add(Result("u3", "p3", Status.ERROR, 503, error="HTTP 503"))
    tally.add(Result("u4", "p4", Status.OK, 200, 5))
    report = tally.report(2.0)
    assert report.counts[Status.OK] == 2
    assert report.counts[Status.NOT_FOUND] == 1
    assert report.total == 4
    assert report.failed == 2
    assert report.bytes == 15
    assert not report.ok
    assert len(report.results) == 4
    assert report.files_per_second == 2.0
    assert "2 ok, 1 not found, 1 error" in report.summary()


def test_tally_without_results_keeps_nothing() -> None:
    """By default a tally keeps counts only, so memory stays flat."""
    tally = Tally()
    for _ in range(1000):
        tally.add(Result("u", "p", Status.OK, 200, 1))
    report = tally.report(1.0)
    assert report.results == ()
    assert report.ok


def test_report_of_skipped_is_ok() -> None:
    """Skipped files count as complete."""
    from collections import Counter

    assert Report(Counter({Status.SKIPPED: 3}), 0, 0.1).ok


def test_result_to_dict_is_json_ready() -> None:
    """The JSON record names the status by value."""
    record = Result("u", "p", Status.NOT_FOUND, 404, error="HTTP 404 Not Found").to_dict()
    assert record["status"] == "not_found"
    assert record["http_status"] == 404


def test_retry_policy_retries_transient_failures_only() -> None:
    """Resets and 5xx are retried within the budget; 404 and a spent budget are not."""
    policy = RetryPolicy(retries=2, backoff=0.5, max_wait=0.75)
    rng = random.Random(1)
    assert policy.delay_for(1, None, rng) is not None
    assert policy.delay_for(1, 503, rng) is not None
    assert policy.delay_for(1, 404, rng) is None
    assert policy.delay_for(3, 503, rng) is None
    for attempt in (1, 2):
        delay = policy.delay_for(attempt, 500, rng)
        assert delay is not None
        assert 0 <= delay <= 0.75


def test_no_retries_by_default() -> None:
    """The default policy never retries, like the book."""
    assert RetryPolicy().delay_for(1, 503) is None


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"backoff": -1.0}])
def test_retry_policy_validates(kwargs: dict[str, float]) -> None:
    """Bad retry settings fail when built, with a UsageError."""
    with pytest.raises(UsageError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_timeouts_validate() -> None:
    """Timeouts must be positive."""
    with pytest.raises(UsageError):
        Timeouts(connect=0)
