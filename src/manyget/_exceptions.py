"""The one exception tree of manyget.

Everything manyget raises to its users derives from :class:`ManygetError`::

    ManygetError
    ├── UsageError            bad arguments or options (CLI exit status 2)
    │   └── InputError        a URL list that cannot be read at all (exit status 2)
    ├── DestinationError      the destination cannot be used or written (exit status 3);
    │                         an object store: no such bucket, not listable, extra missing
    │   └── DiskFull          the disk filled up during the run, which then stopped
    ├── ServerError           a loopback server manyget starts (bench) did not start (exit 3)
    └── EngineError           an engine that is unknown or cannot run here
        └── EngineUnavailable an engine whose optional dependency is missing

A failed download is not an exception: it is a :class:`~manyget.Result` whose status
is ``NOT_FOUND`` or ``ERROR``, so one bad URL never stops a run.
"""

from __future__ import annotations

__all__ = [
    "DestinationError",
    "DiskFull",
    "EngineError",
    "EngineUnavailable",
    "InputError",
    "ManygetError",
    "ServerError",
    "UsageError",
]


class ManygetError(Exception):
    """Root of every exception manyget raises on purpose."""


class UsageError(ManygetError, ValueError):
    """An argument or option has a value manyget cannot use."""


class InputError(UsageError):
    """A list of URLs could not be opened or read."""


class DestinationError(ManygetError, OSError):
    """The destination folder is missing, not a folder, or not writable."""


class DiskFull(DestinationError):
    """No space left (or quota exceeded) while writing: the run stops, partial files stay."""


class ServerError(ManygetError, OSError):
    """A server manyget starts for itself on loopback (for ``bench``) could not start."""


class EngineError(ManygetError):
    """An engine name is unknown, or an engine failed as a whole."""


class EngineUnavailable(EngineError, ImportError):
    """An engine needs an optional dependency that is not installed."""
