"""One download at a time, in list order: the book's ``flags.py``.

It is the multi loop with room for one transfer: the same code path as the default engine,
one kept-alive connection, and a main thread that returns to Python at least once a
second, so Ctrl-C is handled promptly even while a server keeps us waiting.
"""

from __future__ import annotations

from collections.abc import Iterator

from .._hosts import HostGate
from .._policy import Settings
from .._results import Result
from . import _multi

__all__ = ["run"]


def run(gate: HostGate, settings: Settings, concurrency: int) -> Iterator[Result]:
    """Fetch each job in turn; ``concurrency`` is ignored."""
    return _multi.run(gate, settings, 1)
