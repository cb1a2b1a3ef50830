"""A thread pool of blocking libcurl downloads: the book's ``flags_threadpool.py``.

libcurl releases the GIL while it waits and moves bytes, so threads overlap well; each
thread keeps its own handle and so its own kept-alive connection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from .._hosts import Feeder
from .._policy import Settings
from ._drive import Batch
from ._window import run_executor

__all__ = ["run"]


def run(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
    """Fetch jobs on ``feeder.capacity`` threads, yielding results as they complete."""
    pool = ThreadPoolExecutor(max_workers=feeder.capacity, thread_name_prefix="manyget")
    abort = threading.Event()
    try:
        yield from run_executor(pool, feeder, settings, abort=abort)
    finally:
        abort.set()
        pool.shutdown(wait=True, cancel_futures=True)
