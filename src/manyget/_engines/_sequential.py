"""One download at a time, in list order: the book's ``flags.py``.

It is the multi loop with room for one transfer: the same code path as the default engine,
one kept-alive connection, and a main thread that returns to Python at least once a
second, so Ctrl-C is handled promptly even while a server keeps us waiting.
"""

from __future__ import annotations

from collections.abc import Iterator

from .._hosts import Feeder
from .._policy import Settings
from . import _multi
from ._drive import Batch

__all__ = ["run"]


def run(feeder: Feeder, settings: Settings) -> Iterator[Batch]:
    """Fetch each job in turn (the options make ``feeder.capacity`` 1: ``fixed_concurrency``)."""
    feeder.capacity = 1
    return _multi.run(feeder, settings)
