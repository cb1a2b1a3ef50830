"""Pure results: statuses, tallies, reports and the retry policy's decisions."""

from __future__ import annotations

import email.utils
import random
import subprocess
import sys

import pytest

import manyget
from manyget import (
    Attempt,
    AttemptKind,
    Report,
    Result,
    RetryPolicy,
    Status,
    Timeouts,
    UsageError,
)
from manyget._policy import parse_retry_after
from manyget._results import Tally

PUBLIC = {
    "AsyncDownloader",
    "Attempt",
    "AttemptKind",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_ENGINE",
    "DEFAULT_PER_HOST",
    "DestinationError",
    "DiskFull",
    "Downloader",
    "ENGINES",
    "EngineError",
    "EngineUnavailable",
    "InputError",
    "Job",
    "Limits",
    "ManygetError",
    "Options",
    "Report",
    "Result",
    "RetryPolicy",
    "Status",
    "Timeouts",
    "UsageError",
    "__version__",
    "adownload",
    "aiter_download",
    "download",
    "iter_download",
    "safe_name",
}


def test_public_api_is_sorted_and_complete() -> None:
    """__all__ is sorted and lists exactly the public names, so changes are deliberate."""
    assert manyget.__all__ == sorted(manyget.__all__)
    assert set(manyget.__all__) == PUBLIC
    for name in manyget.__all__:  # every listed name resolves (lazy ones included)
        assert getattr(manyget, name) is not None, name
    # Nothing public is reachable that __all__ does not list.
    names = {n for n in vars(manyget) if not n.startswith("_")}
    module_names = names - {"annotations", "TYPE_CHECKING"}
    assert module_names <= PUBLIC


def test_import_and_help_load_no_http_client() -> None:
    """`import manyget` and `manyget --help` stay quick: no client, asyncio or engine."""
    heavy = ["pycurl", "asyncio", "tqdm", "manyget._fetch", "manyget._session"]
    probe = (
        "import sys, runpy\n"
        "import manyget\n"
        "assert manyget.Status.OK.value == 'ok'  # lazy names still resolve\n"
        "sys.argv = ['manyget', '--help']\n"
        "try:\n"
        "    runpy.run_module('manyget', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in {heavy!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.splitlines()[-1] == "[]"


def ok(url: str, size: int, received: int | None = None) -> Result:
    return Result(
        url=url,
        path=url,
        status=Status.OK,
        http_status=200,
        bytes=size,
        received=size if received is None else received,
    )


def test_tally_counts_like_the_book() -> None:
    """A tally counts results by status and adds the bytes of completed downloads."""
    tally = Tally(keep_results=True)
    tally.add(ok("u1", 10))
    tally.add(Result(url="u2", path=None, status=Status.NOT_FOUND, http_status=404))
    tally.add(Result(url="u3", path=None, status=Status.ERROR, http_status=503, error="HTTP 503"))
    tally.add(ok("u4", 5))
    report = tally.report(2.0)
    assert report.counts[Status.OK] == 2
    assert report.counts[Status.NOT_FOUND] == 1
    assert report.total == 4
    assert report.failed == 2
    assert report.bytes == 15
    assert not report.ok
    assert len(report.results) == 4
    assert report.files_per_second == 2.0
    assert "2 downloaded, 1 not found, 1 failed; 15 B received" in report.summary()


def test_tally_without_results_keeps_nothing() -> None:
    """By default a tally keeps counts only, so memory stays flat."""
    tally = Tally()
    for _ in range(1000):
        tally.add(ok("u", 1))
    report = tally.report(1.0)
    assert report.results == ()
    assert report.ok


def test_report_of_skipped_is_ok() -> None:
    """Skipped files count as complete."""
    from collections import Counter

    report = Report(counts=Counter({Status.SKIPPED: 3}), bytes=0, elapsed=0.1)
    assert report.ok
    assert report.files_per_second == 0.0  # nothing was fetched


def test_result_to_dict_is_json_ready() -> None:
    """The JSON record names the status by value."""
    record = Result(
        url="u", path=None, status=Status.NOT_FOUND, http_status=404, error="HTTP 404 Not Found"
    ).to_dict()
    assert record["status"] == "not_found"
    assert record["http_status"] == 404


def fail(kind: str, status: int | None = None, retry_after: float | None = None) -> Attempt:
    if kind == "ok" and status is not None and status >= 400:
        kind = "status"
    return Attempt(
        http_status=status,
        kind=AttemptKind(kind),
        error=None if kind in ("ok", "status") else "boom",
        retry_after=retry_after,
    )


RNG = random.Random(1)


@pytest.mark.parametrize(
    ("attempt", "retried"),
    [
        (fail("ok", 200), False),
        (fail("ok", 404), False),
        (fail("ok", 403), False),
        (fail("ok", 408), True),
        (fail("ok", 429), True),
        (fail("ok", 500), True),
        (fail("ok", 502), True),
        (fail("ok", 503), True),
        (fail("ok", 504), True),
        (fail("ok", 501), False),
        (fail("read", 200), True),
        (fail("read"), True),
        (fail("connect"), True),
        (fail("refused"), False),
        (fail("tls"), False),
        (fail("fatal"), False),
    ],
)
def test_retry_policy_retries_transient_failures_only(attempt: Attempt, retried: bool) -> None:
    """Resets, timeouts, truncation and 408/429/5xx retry; other 4xx, TLS, refused do not."""
    assert (RetryPolicy().delay_for([attempt], RNG) is not None) is retried


def test_refused_retried_only_when_asked() -> None:
    """Refused connections are retried only with refused=True."""
    assert RetryPolicy(refused=True).delay_for([fail("refused")], RNG) is not None


def test_total_budget() -> None:
    """`retries` caps the number of retries of one URL."""
    policy = RetryPolicy(retries=2)
    assert policy.delay_for([fail("read")] * 2, RNG) is not None
    assert policy.delay_for([fail("read")] * 3, RNG) is None
    assert RetryPolicy(retries=0).delay_for([fail("ok", 503)], RNG) is None


def test_separate_budgets_per_kind() -> None:
    """Connect, read and status failures each draw on their own budget."""
    policy = RetryPolicy(retries=10, connect=1, read=2, status=0)
    assert policy.delay_for([fail("ok", 503)], RNG) is None
    assert policy.delay_for([fail("connect")], RNG) is not None
    assert policy.delay_for([fail("connect"), fail("connect")], RNG) is None
    assert policy.delay_for([fail("connect"), fail("read"), fail("read")], RNG) is not None
    assert policy.delay_for([fail("read")] * 3, RNG) is None


def test_backoff_is_capped_exponential_with_jitter() -> None:
    """Waits stay within backoff * 2**(n-1), never above max_wait, and vary."""
    policy = RetryPolicy(retries=20, backoff=0.5, max_wait=3.0)
    for n in range(1, 10):
        waits = {policy.delay_for([fail("read")] * n, RNG) for _ in range(20)}
        ceiling = min(3.0, 0.5 * 2 ** (n - 1))
        assert all(w is not None and 0 <= w <= ceiling for w in waits)
        assert len(waits) > 1


def test_retry_after_is_honoured_and_capped() -> None:
    """A Retry-After wait is used as given, but never beyond max_wait."""
    policy = RetryPolicy(max_wait=5.0)
    assert policy.delay_for([fail("ok", 503, retry_after=2.0)], RNG) == 2.0
    assert policy.delay_for([fail("ok", 429, retry_after=3600.0)], RNG) == 5.0


def test_parse_retry_after_seconds_and_dates() -> None:
    """Retry-After is read as seconds or as an HTTP-date relative to now."""
    now = 1_700_000_000.0
    assert parse_retry_after("7", now) == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30.0, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_no_retries_in_the_book_demo_policy() -> None:
    """RetryPolicy(retries=0) never retries, like the book."""
    assert RetryPolicy(retries=0).delay_for([fail("read")], RNG) is None


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"backoff": -1.0}, {"read": -1}])
def test_retry_policy_validates(kwargs: dict[str, float]) -> None:
    """Bad retry settings fail when built, with a UsageError."""
    with pytest.raises(UsageError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_timeouts_validate() -> None:
    """Timeouts must be positive."""
    with pytest.raises(UsageError):
        Timeouts(connect=0)


def test_records_made_once_per_file_stay_frozen_values() -> None:
    """Job, Attempt and Result get a faster __init__ (quick_init) and stay frozen,
    hashable, comparable and replaceable, with the dataclass's own signature."""
    import dataclasses
    import inspect

    from manyget import Attempt, Job, Result, Status
    from manyget._frozen import quick_init

    attempt = Attempt(http_status=200, complete=True, nbytes=5)
    assert attempt == Attempt(http_status=200, complete=True, nbytes=5)
    assert hash(attempt) == hash(Attempt(http_status=200, complete=True, nbytes=5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        attempt.nbytes = 6  # type: ignore[misc]
    assert dataclasses.replace(attempt, kept=3).kept == 3
    with pytest.raises(TypeError):
        Attempt(200)  # type: ignore[call-arg]  # keyword-only, as declared
    with pytest.raises(TypeError):
        Result(url="u", path=None)  # type: ignore[call-arg]  # status is required
    job = Job("http://h/x", "x", 3)
    assert (job.index, job.headers, job.mirrors) == (3, (), ())
    params = inspect.signature(Result).parameters
    assert [p.name for p in params.values()][:3] == ["url", "path", "status"]
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())
    assert Result(url="u", path=None, status=Status.ERROR).history == ()

    import copy
    import pickle

    result = Result(url="u", path="p", status=Status.OK, history=(attempt,))
    for value in (job, attempt, result):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        items: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError):
        quick_init(WithFactory)
