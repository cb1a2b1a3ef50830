"""The pure core of one download, without a server, a thread or a clock.

The body state machine (`_fetch._state`), the resume decision, `conclude` (attempts to a
Result) and the `Feeder` every driver follows. End-to-end behaviour of the same rules
against real servers is in test_faults.py; these pin each decision on its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from manyget import Attempt, AttemptKind, Status
from manyget._fetch._state import SIDECAR_FROM, End, Opening, Phase, fits, on_end, on_response
from manyget._hosts import Feeder, HostGate
from manyget._jobs import Job, plan
from manyget._policy import Resume, RetryPolicy, Saved, resume_decision
from manyget._results import conclude

pytestmark = pytest.mark.timeout(10)

SAVED = Saved("http://h/f", etag='"v1"', last_modified=None, length=1000)


# -- resume_decision: the answer to "Range: bytes=OFFSET-" -------------------------------


@pytest.mark.parametrize(
    ("offset", "saved", "status", "content_range", "etag", "expected"),
    [
        (400, SAVED, 200, None, None, Resume.FRESH),  # whole file: never appended
        (0, None, 200, "bytes 0-9/10", None, Resume.FRESH),
        (400, SAVED, 206, "bytes 400-999/1000", '"v1"', Resume.APPEND),
        (400, SAVED, 206, "bytes 400-999/1000", None, Resume.APPEND),  # no ETag to compare
        (400, SAVED, 206, "bytes 400-999/*", '"v1"', Resume.APPEND),  # total unknown
        (400, SAVED, 206, " bytes 400-999/1000 ", '"v1"', Resume.APPEND),  # spaces around
        (400, SAVED, 206, "bytes 0-999/1000", '"v1"', Resume.RESTART),  # wrong start
        (400, SAVED, 206, "bytes 400-1999/2000", '"v1"', Resume.RESTART),  # file changed size
        (400, SAVED, 206, "bytes 400-999/1000", '"v2"', Resume.RESTART),  # ETag changed
        (400, SAVED, 206, None, '"v1"', Resume.RESTART),  # 206 without Content-Range
        (400, SAVED, 206, "items 400-999/1000", '"v1"', Resume.RESTART),  # not bytes
        (0, None, 206, "bytes 0-9/10", None, Resume.RESTART),  # a range never asked for
        (1000, SAVED, 416, "bytes */1000", None, Resume.COMPLETE),  # already whole
        (400, SAVED, 416, "bytes */1000", None, Resume.RESTART),  # 416 but not whole
        (1000, SAVED, 416, "bytes */2000", None, Resume.RESTART),  # whole once, not now
        (1000, SAVED, 416, None, None, Resume.RESTART),  # 416 saying nothing
        (400, SAVED, 204, None, None, Resume.RESTART),  # any other 2xx
    ],
)
def test_resume_decision(
    offset: int,
    saved: Saved | None,
    status: int,
    content_range: str | None,
    etag: str | None,
    expected: Resume,
) -> None:
    """Only a 206 that continues the partial file exactly, of the same file, is appended."""
    assert resume_decision(offset, saved, status, content_range, etag) is expected


# -- on_response: the phase after a successful answer's headers -------------------------


def respond(
    status: int,
    length: int | None,
    *,
    offset: int = 0,
    saved: Saved | None = None,
    content_range: str | None = None,
    etag: str | None = None,
    max_size: int | None = None,
) -> Opening:
    return on_response(
        status,
        length,
        offset=offset,
        saved=saved,
        content_range=content_range,
        etag=etag,
        max_size=max_size,
    )


def test_a_small_fresh_body_opens_at_zero_without_a_sidecar() -> None:
    """A 200 of known small size is written from byte 0; its sidecar would be wasted work."""
    assert respond(200, 10) == Opening(Phase.OPEN, 0, 10, sidecar=False)


@pytest.mark.parametrize("length", [None, SIDECAR_FROM + 1])
def test_a_big_or_unsized_fresh_body_gets_its_sidecar_at_once(length: int | None) -> None:
    """Big or unsized bodies are resumable from their first byte, even after kill -9."""
    assert respond(200, length) == Opening(Phase.OPEN, 0, length, sidecar=True)


def test_a_200_to_a_resume_starts_over_at_zero() -> None:
    """A server that ignores the range sends everything: write it from byte 0."""
    assert respond(200, 1000, offset=400, saved=SAVED).offset == 0


def test_a_fitting_206_appends_with_the_whole_files_length() -> None:
    """A resume continues at the partial file's size; the expected size is the whole file's."""
    got = respond(206, 600, offset=400, saved=SAVED, content_range="bytes 400-999/1000")
    assert got == Opening(Phase.OPEN, 400, 1000, sidecar=False)


def test_a_416_for_a_whole_partial_file_is_complete() -> None:
    """Nothing left to fetch: the kept bytes are the file."""
    got = respond(416, None, offset=1000, saved=SAVED, content_range="bytes */1000")
    assert got == Opening(Phase.COMPLETE, 1000)


def test_a_206_that_does_not_fit_restarts() -> None:
    """A changed file is never glued onto the old bytes."""
    got = respond(206, 600, offset=400, saved=SAVED, content_range="bytes 400-999/1000", etag="x")
    assert got.phase is Phase.RESTART


def test_an_announced_body_over_max_size_is_refused_before_any_byte() -> None:
    """Content-Length over --max-size: nothing is written."""
    assert respond(200, 101, max_size=100).phase is Phase.TOO_BIG
    assert respond(200, 100, max_size=100).phase is Phase.OPEN
    assert respond(200, None, max_size=100).phase is Phase.OPEN  # checked while streaming


def test_fits_counts_what_the_file_holds_already() -> None:
    """The limit is on the file's size, resumed bytes included, not on this attempt's."""
    assert fits(None, 10**12, 10**12)
    assert fits(100, 60, 40)
    assert not fits(100, 60, 41)


# -- on_end: what to do when the transfer ends ----------------------------------------


@pytest.mark.parametrize(
    ("phase", "status", "failed", "expected"),
    [
        (Phase.OPEN, 200, False, End.PUBLISH),
        (Phase.OPEN, 206, False, End.PUBLISH),
        (Phase.OPEN, 200, True, End.KEEP),  # reset, timeout, short body: keep for a resume
        (Phase.IDLE, None, True, End.KEEP),  # no answer at all (nothing to keep)
        (Phase.IDLE, 404, False, End.NO_FILE),
        (Phase.IDLE, 503, False, End.NO_FILE),
        (Phase.IDLE, 304, False, End.NO_FILE),
        (Phase.IDLE, None, False, End.NO_FILE),
        (Phase.IDLE, 200, False, End.EMPTY),  # a 2xx with no body: an empty file
        (Phase.IDLE, 204, False, End.EMPTY),
        (Phase.COMPLETE, 416, False, End.PUBLISH_KEPT),
        (Phase.RESTART, 206, False, End.DROP_RESTART),
        (Phase.RESTART, 206, True, End.DROP_RESTART),  # stopped on purpose: libcurl says so
        (Phase.TOO_BIG, 200, True, End.DROP_TOO_BIG),
        (Phase.BUSY, 200, True, End.BUSY),
        (Phase.DISK, 200, True, End.LOCAL),
        (Phase.LOCAL, 200, True, End.LOCAL),
    ],
)
def test_on_end(phase: Phase, status: int | None, failed: bool, expected: End) -> None:
    """Each phase, status and transport verdict leads to one end, and only a whole 2xx
    body (or a whole partial file) is published."""
    assert on_end(phase, status, failed) is expected


def test_only_whole_bodies_are_ever_published() -> None:
    """Over every phase, status and transport verdict: PUBLISH needs an open body, a 2xx
    and no transport error; nothing that failed is ever published."""
    for phase in Phase:
        for status in (None, 100, 200, 204, 206, 299, 300, 404, 416, 500):
            for failed in (False, True):
                end = on_end(phase, status, failed)
                if end is End.PUBLISH:
                    assert phase is Phase.OPEN
                    assert not failed
                    assert status is not None
                    assert 200 <= status < 300
                if failed:
                    assert end not in (End.PUBLISH, End.EMPTY, End.NO_FILE)


# -- conclude: the attempts at a job become its Result ------------------------------------


JOB = Job(index=0, url="http://h/a.gif", name="a.gif")


def test_conclude_a_resumed_file_keeps_size_and_received_apart() -> None:
    """A file finished after a failure: its size, and the bytes this run received."""
    history = [
        Attempt(http_status=200, kind=AttemptKind.READ, error="reset", received=300, kept=300),
        Attempt(http_status=206, nbytes=1000, received=700, complete=True),
    ]
    got = conclude(JOB, "/d/a.gif", history, 1.5)
    assert (got.status, got.path, got.bytes, got.received) == (Status.OK, "/d/a.gif", 1000, 1000)
    assert (got.attempts, got.seconds, got.error, got.kept) == (2, 1.5, None, 0)


def test_conclude_a_content_disposition_name_wins() -> None:
    """The server's name, when it was used, is the Result's path."""
    attempt = Attempt(http_status=200, nbytes=1, complete=True, saved_as="/d/real.gif")
    assert conclude(JOB, "/d/a.gif", [attempt], 0.1).path == "/d/real.gif"


@pytest.mark.parametrize("code", [404, 410])
def test_conclude_not_found_has_no_path(code: int) -> None:
    """404 and 410 are NOT_FOUND, with the status's phrase, and no file."""
    got = conclude(JOB, "/d/a.gif", [Attempt(http_status=code, kind=AttemptKind.STATUS)], 0.1)
    assert got.status is Status.NOT_FOUND
    assert got.path is None
    assert got.error is not None
    assert got.error.startswith(f"HTTP {code} ")


def test_conclude_a_failure_reports_the_last_error_and_the_kept_bytes() -> None:
    """A failed job: ERROR, the last attempt's text, what a rerun can resume from."""
    history = [
        Attempt(http_status=None, kind=AttemptKind.CONNECT, error="connect timeout"),
        Attempt(http_status=200, kind=AttemptKind.READ, error="stalled", received=5, kept=5),
    ]
    got = conclude(JOB, "/d/a.gif", history, 3.0)
    assert (got.status, got.path, got.error) == (Status.ERROR, None, "stalled")
    assert (got.received, got.kept, got.attempts, got.http_status) == (5, 5, 2, 200)


def test_conclude_a_failed_status_without_text_names_the_status() -> None:
    """A 500 with no transport error still says what went wrong."""
    got = conclude(JOB, "/d/a.gif", [Attempt(http_status=500, kind=AttemptKind.STATUS)], 0.1)
    assert got.status is Status.ERROR
    assert got.error == "HTTP 500 Internal Server Error"


# -- the Feeder: which attempt starts next, and when a job is done ------------------------


def feeder(urls: list[str], *, capacity: int = 8, per_host: int = 8, **retry: float) -> Feeder:
    policy = RetryPolicy(**retry)  # type: ignore[arg-type]
    gate = HostGate(iter(plan(urls)), per_host)
    return Feeder(gate, policy, capacity, "/d/")


def drain(feed: Feeder, now: float) -> Iterator[tuple[Job, bool]]:
    while (got := feed.next(now)) is not None:
        yield got


FAILED = Attempt(http_status=503, kind=AttemptKind.STATUS)
OK = Attempt(http_status=200, nbytes=1, complete=True)


def test_feeder_starts_up_to_capacity_then_one_per_ended_job() -> None:
    """Capacity bounds attempts in flight; each end makes room for exactly one more."""
    feed = feeder([f"http://h{i}/f" for i in range(5)], capacity=2)
    first = list(drain(feed, 0.0))
    assert [(job.index, new) for job, new in first] == [(0, True), (1, True)]
    result = feed.ended(first[0][0], OK, 0.1)
    assert result is not None
    assert result.status is Status.OK
    assert result.path == "/d/f"
    assert [job.index for job, _ in drain(feed, 0.1)] == [2]
    assert feed.running == 2
    assert not feed.finished


def test_feeder_holds_a_retry_until_its_backoff_is_over() -> None:
    """A failed attempt comes back, not as a first attempt, only once its delay passed;
    meanwhile it holds its place against capacity, so nothing else starts."""
    feed = feeder(["http://h/a", "http://h/b"], capacity=1, backoff=0.0, max_wait=5.0)
    ((job, new),) = drain(feed, 0.0)
    assert new
    busy = Attempt(http_status=503, kind=AttemptKind.STATUS, retry_after=2.0)
    assert feed.ended(job, busy, 1.0) is None
    assert list(drain(feed, 2.9)) == []  # the retry waits, and holds the only slot
    assert list(drain(feed, 3.0)) == [(job, False)]


def test_feeder_retry_delay_follows_retry_after() -> None:
    """The server's Retry-After (capped by max_wait) is the wait before the retry."""
    feed = feeder(["http://h/a"], capacity=4, backoff=0.0, max_wait=5.0)
    ((job, _),) = drain(feed, 0.0)
    busy = Attempt(http_status=503, kind=AttemptKind.STATUS, retry_after=2.0)
    assert feed.ended(job, busy, 10.0) is None
    assert list(drain(feed, 11.9)) == []
    assert feed.wait(10.0) == pytest.approx(2.0)
    assert list(drain(feed, 12.0)) == [(job, False)]


def test_feeder_concludes_after_the_retry_budget() -> None:
    """retries=2: three attempts, then the job's Result holds all three."""
    feed = feeder(["http://h/a"], retries=2, backoff=0.0, max_wait=0.0)
    ((job, _),) = drain(feed, 0.0)
    for n in range(3):
        result = feed.ended(job, FAILED, float(n))
        if n < 2:
            assert result is None
            assert list(drain(feed, float(n))) == [(job, False)]
    assert result is not None
    assert result.status is Status.ERROR
    assert result.attempts == 3
    assert feed.finished


def test_feeder_skipped_and_lost_jobs_free_their_slot() -> None:
    """A job needing no request, and one whose worker vanished, both give their slot back."""
    feed = feeder(["http://h/a", "http://h/b", "http://h/c"], capacity=2)
    (a, _), (b, _) = drain(feed, 0.0)
    skipped = conclude(a, "/d/a", [OK], 0.0)
    assert feed.skipped(a, skipped, 0.0) is skipped
    feed.lost(b, 0.0)
    assert feed.running == 0
    assert [job.index for job, _ in drain(feed, 0.0)] == [2]


def test_feeder_counts_what_cancelled_attempts_kept() -> None:
    """Ctrl-C: partial files left for a resume are counted for the summary."""
    feed = feeder(["http://h/a", "http://h/b"])
    (a, _), (b, _) = drain(feed, 0.0)
    feed.cancelled(a, Attempt(http_status=200, kind=AttemptKind.CANCELLED, kept=700))
    feed.cancelled(b, Attempt(http_status=None, kind=AttemptKind.CANCELLED))
    assert (feed.kept_files, feed.kept_bytes, feed.running) == (1, 700, 0)


def test_feeder_accept_hook_drops_jobs_cancelled_before_they_start() -> None:
    """A future cancelled while queued is never started and frees the host's slot."""
    urls = ["http://h/a", "http://h/b", "http://h/c"]
    gate = HostGate(iter(plan(urls)), 1)
    feed = Feeder(gate, RetryPolicy(), 8, "/d/", accept=lambda job: job.index != 0)
    assert [job.index for job, _ in drain(feed, 0.0)] == [1]  # per host 1: b runs, c waits
    assert feed.running == 1


def test_feeder_is_finished_only_when_every_job_concluded() -> None:
    """finished: the list is exhausted, nothing runs, no retry waits."""
    feed = feeder(["http://h/a"])
    ((job, _),) = drain(feed, 0.0)
    assert feed.next(0.0) is None
    assert feed.exhausted
    assert not feed.finished
    feed.ended(job, OK, 0.0)
    assert feed.finished
    assert feed.wait(0.0) is None


def test_feeder_measures_time_held_back_by_the_per_host_limit() -> None:
    """Room for more, but the only jobs left wait on their host's limit: that time is
    counted (the CLI's summary says so); a run with room per host counts none."""
    feed = feeder([f"http://h/f{i}" for i in range(4)], capacity=8, per_host=1)
    ((job, _),) = drain(feed, 0.0)  # one at a time: the rest are held for host h
    assert feed.gate.host_bound()
    feed.ended(job, OK, 2.5)
    list(drain(feed, 2.5))
    assert feed.host_bound == pytest.approx(2.5)
    roomy = feeder([f"http://h/f{i}" for i in range(4)], capacity=8, per_host=8)
    started = list(drain(roomy, 0.0))
    assert len(started) == 4
    for job, _ in started:
        roomy.ended(job, OK, 3.0)
    assert roomy.host_bound == 0.0


def test_a_queue_kept_fed_is_not_the_per_host_limit_holding_the_run_back() -> None:
    """The processes engine doubles the feeder's capacity to keep its workers fed; with
    --per-host equal to -j, every slot of the run is busy, so no time is host-bound."""
    feed = feeder([f"http://h/f{i}" for i in range(8)], capacity=2, per_host=2)
    feed.capacity *= 2  # as the processes engine does
    started = list(drain(feed, 0.0))
    assert len(started) == 2  # the host's limit: the rest are held
    for job, _ in started:
        feed.ended(job, OK, 5.0)
    list(drain(feed, 5.0))
    assert feed.host_bound == 0.0
    narrow = feeder([f"http://h/f{i}" for i in range(8)], capacity=2, per_host=1)
    narrow.capacity *= 2
    ((job, _),) = drain(narrow, 0.0)
    narrow.ended(job, OK, 5.0)
    list(drain(narrow, 5.0))
    assert narrow.host_bound == pytest.approx(5.0)  # here the host's limit is what binds


def test_feeder_tries_a_mirror_at_once_and_keeps_the_first_hosts_slot() -> None:
    """A failed attempt at a job with mirrors goes to the next URL with no backoff (even
    for a 404, which is never retried); the gate's count stays with the first host."""
    from manyget._jobs import plan_lines

    entry = "http://a/f.iso\thttp://b/f.iso\thttp://c/f.iso"
    gate = HostGate(iter(plan_lines([(1, entry)])), per_host=1)
    feed = Feeder(gate, RetryPolicy(retries=0), 8, "/d/")
    ((job, _),) = drain(feed, 0.0)
    assert (job.url, job.mirrors) == ("http://a/f.iso", ("http://b/f.iso", "http://c/f.iso"))
    missing = Attempt(http_status=404, kind=AttemptKind.STATUS)
    assert feed.ended(job, missing, 1.0) is None
    ((second, new),) = drain(feed, 1.0)
    assert (second.url, second.host, new) == ("http://b/f.iso", "http://b:80", False)
    assert feed.ended(second, Attempt(http_status=None, kind=AttemptKind.CONNECT), 2.0) is None
    ((third, _),) = drain(feed, 2.0)
    result = feed.ended(third, OK, 3.0)
    assert result is not None
    assert (result.url, result.attempts, result.status) == ("http://c/f.iso", 3, Status.OK)
    assert feed.finished
    assert not gate.host_bound()  # host a's slot was given back


def test_a_bad_mirror_makes_the_line_bad() -> None:
    """Mirrors are checked like any URL: a bad one is reported with the line."""
    from manyget._jobs import plan_lines

    (job,) = plan_lines([(4, "http://a/f\tftp://b/f")])
    assert job.problem is not None
    assert job.problem.startswith("line 4: URL 2 of the line: ")
