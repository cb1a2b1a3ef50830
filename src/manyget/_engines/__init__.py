"""Engines: interchangeable ways to run many downloads at once.

An engine is one function, ``run(gate, settings, concurrency) -> Iterator[Result]``: it
takes jobs from the :class:`~manyget._hosts.HostGate` (which reads the list lazily and
applies the per-host limits) as slots free up, keeps at most ``concurrency`` downloads in
flight, tells the gate when each one ends, and yields each result as it completes.
Engines are imported only when chosen, so ``import manyget`` and ``manyget --help`` stay
fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .._exceptions import EngineError, EngineUnavailable

if TYPE_CHECKING:  # only types: the command line imports this module for engine names
    from collections.abc import Callable, Iterator
    from typing import TypeAlias

    from .._hosts import HostGate
    from .._policy import Settings
    from .._results import Result

    EngineRun: TypeAlias = Callable[[HostGate, Settings, int], Iterator[Result]]

__all__ = ["DEFAULT_ENGINE", "ENGINES", "get_engine"]

# name -> (module, what to install when its import fails)
ENGINES: dict[str, tuple[str, str]] = {
    "sequential": ("._sequential", "pycurl"),
    "threads": ("._threads", "pycurl"),
    "processes": ("._processes", "pycurl"),
    "asyncio": ("._asyncio", "aiohttp"),
    "multi": ("._multi", "pycurl"),
}
DEFAULT_ENGINE = "multi"


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
