"""``manyget bench``: manyget's engines against other downloaders, side by side.

Private to the command line; ``benchmarks/`` and the docs build on it. See ``_run`` for
how a run is measured and ``_scenarios`` for the workloads.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .._engines import ENGINES
from .._exceptions import DestinationError, UsageError
from ._contenders import PEERS, engine_contender, peer_contender
from ._nginx import find_nginx
from ._report import plot, rows, table, to_json
from ._run import ScenarioRuns, run_scenario
from ._scenarios import DEFAULT_SCENARIOS, SCENARIOS

__all__ = [
    "DEFAULT_SCENARIOS",
    "PEERS",
    "SCENARIOS",
    "ScenarioRuns",
    "bench",
    "default_tmp",
    "plot",
    "rows",
    "table",
    "to_json",
]


def default_tmp() -> str:
    """A tmpfs when there is one, so the runs measure downloaders rather than a disk."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


def _choose(kind: str, asked: Sequence[str], known: Sequence[str]) -> list[str]:
    unknown = [name for name in asked if name not in known]
    if unknown:
        raise UsageError(f"unknown {kind} {unknown[0]!r}; choose from: {', '.join(known)}")
    return list(dict.fromkeys(asked))


def bench(
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    *,
    engines: Sequence[str] | None = None,
    against: Sequence[str] = PEERS,
    runs: int = 5,
    use_nginx: bool = False,
    tmp: str | None = None,
    timeout: float = 600.0,
    plot_to: str | None = None,
    trees: Sequence[tuple[str, str]] = (),
    say: Callable[[str], None] = lambda line: None,
) -> list[ScenarioRuns]:
    """Run the chosen scenarios; check every choice before the first run.

    ``trees`` ((name, source folder), ...) races those versions of manyget, each engine
    of each, instead of the installed one: before and after a change, in one run.
    """
    chosen = [SCENARIOS[name] for name in _choose("scenario", scenarios, list(SCENARIOS))]
    engine_names = None if engines is None else _choose("engine", engines, list(ENGINES))
    peers = [peer_contender(name) for name in _choose("tool", against, PEERS)]
    if use_nginx and find_nginx() is None:
        raise UsageError("--nginx: nginx is not installed (Debian: apt-get install nginx)")
    if plot_to is not None and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib: pip install 'manyget[plot]'")
    labels = [label for label, _ in trees]
    if len(set(labels)) < len(labels):
        raise UsageError("--tree: each version needs a name of its own")
    for label, source in trees:
        if not os.path.isfile(os.path.join(source, "manyget", "__init__.py")):
            raise UsageError(f"--tree {label}={source}: no manyget package in that folder")
    versions: list[tuple[str, str] | None] = [*trees] if trees else [None]
    root = Path(tmp if tmp is not None else default_tmp())
    if not root.is_dir() or not os.access(root, os.W_OK | os.X_OK):
        raise DestinationError(f"cannot write benchmark files under {str(root)!r}")
    results = []
    with tempfile.TemporaryDirectory(prefix="manyget-bench-", dir=root) as work:
        for scenario in chosen:
            names = engine_names if engine_names is not None else scenario.engines
            contenders = [engine_contender(e, tree) for e in names for tree in versions]
            if scenario.peers:
                contenders += peers
            results.append(
                run_scenario(
                    scenario,
                    contenders,
                    rounds=runs,
                    use_nginx=use_nginx,
                    tmp=Path(work),
                    timeout=timeout,
                    say=say,
                )
            )
            if plot_to is not None:  # redrawn after each scenario: a long run shows progress
                plot(results, plot_to)
    return results
