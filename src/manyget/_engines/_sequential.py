"""One download at a time, in list order: the book's ``flags.py``."""

from __future__ import annotations

from collections.abc import Iterator

from .._fetch import Fetcher
from .._jobs import Job
from .._policy import Settings
from .._results import Result

__all__ = ["run"]


def run(jobs: Iterator[Job], settings: Settings, concurrency: int) -> Iterator[Result]:
    """Fetch each job in turn over one kept-alive connection; ``concurrency`` is ignored."""
    with Fetcher(settings) as fetcher:
        for job in jobs:
            yield fetcher.fetch(job)
