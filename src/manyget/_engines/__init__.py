"""Engines: interchangeable ways to run many downloads at once.

An engine is one function, ``run(feeder, settings) -> Iterator[Batch]``: it builds a
runner (a libcurl multi loop, an event loop, a thread pool, worker processes) and drives
it with the :class:`~manyget._hosts.Feeder`, which hands out attempts within the per-host
limits and ``feeder.capacity``, decides retries and concludes results; each batch is the
``(job, result)`` pairs that completed in one turn. Every engine runs the same libcurl
transfer (``manyget._fetch``); they differ only in how they wait. An engine module may
set ``CONCURRENCY`` when it always runs that many at once (``sequential``: 1). Engines are
imported only when chosen, so ``import manyget`` and ``manyget --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .._exceptions import EngineError, EngineUnavailable

if TYPE_CHECKING:  # only types: the command line imports this module for engine names
    from collections.abc import Callable, Iterator
    from typing import TypeAlias

    from .._hosts import Feeder
    from .._policy import Settings
    from ._drive import Batch

    EngineRun: TypeAlias = Callable[[Feeder, Settings], Iterator[Batch]]

__all__ = ["DEFAULT_ENGINE", "ENGINES", "fixed_concurrency", "get_engine"]

# name -> (module, what to install when its import fails)
ENGINES: dict[str, tuple[str, str]] = {
    "sequential": ("._sequential", "pycurl"),
    "threads": ("._threads", "pycurl"),
    "processes": ("._processes", "pycurl"),
    "asyncio": ("._asyncio", "pycurl"),
    "multi": ("._multi", "pycurl"),
    "dask": ("._dask", "manyget[dask]"),  # a Dask cluster: distributed, imported only here
}
DEFAULT_ENGINE = "multi"
_FIXED = {"sequential": 1}  # engines that always run this many downloads at once


def fixed_concurrency(name: str) -> int | None:
    """How many downloads engine ``name`` runs at once whatever it is asked, if fixed."""
    return _FIXED.get(name)


def get_engine(name: str) -> EngineRun:
    """The ``run`` function of the engine called ``name``."""
    try:
        module_name, needs = ENGINES[name]
    except KeyError:
        known = ", ".join(ENGINES)
        raise EngineError(f"unknown engine {name!r}; choose one of: {known}") from None
    try:
        module = importlib.import_module(module_name, __name__)
    except ImportError as exc:
        raise EngineUnavailable(
            f"engine {name!r} needs {needs}, which cannot be imported ({exc}); "
            f"install it with: pip install {needs}"
        ) from exc
    run: EngineRun = module.run
    return run
