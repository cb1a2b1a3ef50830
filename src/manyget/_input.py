"""Reading a slow source of URLs without ever stalling the downloads in flight.

A list arriving through a pipe, or a generator that pauses between items, would block the
engine's thread on ``next()`` while transfers wait to be served. :class:`ReadAhead` reads
such a source on a thread of its own and hands each item over as soon as it is read, or
:data:`~manyget._jobs.PENDING` when none is ready, so the engine goes on moving bytes (the
host gate answers WAIT and asks again soon). At most ``ahead`` items wait in memory; the
reader blocks beyond that. Items are handed over one by one: the source may block after
any of them, so holding some back to batch them could stall the run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from ._jobs import PENDING, _Pending

__all__ = ["ReadAhead"]

T = TypeVar("T")


class _End:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Iterate a slow source on a thread of its own; see the module's docstring."""

    def __init__(self, source: Iterable[T], ahead: int = 4096) -> None:
        self._items: queue.SimpleQueue[T | _End] = queue.SimpleQueue()
        self._room = threading.Semaphore(max(1, ahead))  # items read and not yet taken
        self._closed = False
        self._thread = threading.Thread(
            target=self._read, args=(source,), name="manyget-input", daemon=True
        )
        self._thread.start()

    def _read(self, source: Iterable[T]) -> None:
        error: BaseException | None = None
        try:
            for item in source:
                self._room.acquire()
                if self._closed:
                    return
                self._items.put(item)
        except BaseException as exc:  # handed to the consumer, raised there
            error = exc
        self._items.put(_End(error))

    def __iter__(self) -> Iterator[T | _Pending]:
        try:
            while True:
                try:
                    item = self._items.get_nowait()
                except queue.Empty:
                    yield PENDING
                    continue
                if isinstance(item, _End):
                    if item.error is not None:
                        raise item.error
                    return
                self._room.release()
                yield item
        finally:
            self._closed = True
            self._room.release()  # a reader blocked on room sees it is closed
