"""What ``manyget bench`` shows: medians and ratios as a table, JSON, or a plot."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._run import ScenarioRuns

__all__ = ["Row", "from_json", "plot", "rows", "table", "to_json"]


@dataclass(frozen=True)
class Row:
    """One contender's summary on one scenario (medians over its runs)."""

    name: str
    peer: bool
    wall: float
    wall_min: float
    wall_max: float
    cpu: float
    files_per_s: float
    mb_per_s: float
    cpu_per_1000: float
    to_limit: float | None
    to_best_peer: float | None
    incomplete: int
    noisy: int
    runs: int


def rows(sr: ScenarioRuns) -> list[Row]:
    files, mb = sr.scenario.files, sr.total_bytes / 1e6
    medians = {name: statistics.median(r.wall for r in runs) for name, runs in sr.runs.items()}
    best = best_peer(sr)
    best_wall = best[1] if best is not None else None
    out = []
    for name, runs in sr.runs.items():
        wall = medians[name]
        walls = [r.wall for r in runs]
        cpu = statistics.median(r.cpu for r in runs)
        out.append(
            Row(
                name=name,
                peer=name in sr.peers,
                wall=wall,
                wall_min=min(walls),
                wall_max=max(walls),
                cpu=cpu,
                files_per_s=files / wall,
                mb_per_s=mb / wall,
                cpu_per_1000=1000 * cpu / files,
                to_limit=wall / sr.limit if sr.limit else None,
                to_best_peer=wall / best_wall if best_wall else None,
                incomplete=sum(not r.complete for r in runs),
                noisy=sum(r.noisy for r in runs),
                runs=len(runs),
            )
        )
    return out


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def best_peer(sr: ScenarioRuns) -> tuple[str, float] | None:
    """The outside tool with the lowest median wall time among those complete every run."""
    found = [
        (statistics.median(r.wall for r in runs), name)
        for name, runs in sr.runs.items()
        if name in sr.peers and all(r.complete for r in runs)
    ]
    if not found:
        return None
    wall, name = min(found)
    return name, wall


def _legend(sr: ScenarioRuns) -> str:
    """What the ratio columns compare with, in this run; why one does not apply."""
    if sr.limit is not None:
        limit = (
            f"`x limit`: wall time over the scenario's lower bound ({sr.limit:.2f} s, "
            f"{sr.limit_how}); 1.00x would be perfect."
        )
    else:
        limit = "`x limit`: -, this scenario has no computed lower bound (it is bandwidth-bound)."
    peer = best_peer(sr)
    if peer is None:
        compare = "`x best peer`: -, no outside tool ran to completion in this run."
    else:
        compare = (
            f"`x best peer`: wall time over the fastest outside tool in this same run, "
            f"{peer[0]} ({peer[1]:.2f} s); below 1.00x is faster than it."
        )
    return f"{limit} {compare}"


def table(results: Sequence[ScenarioRuns]) -> str:
    """Markdown tables, one per scenario."""
    lines: list[str] = []
    for sr in results:
        s = sr.scenario
        runs = max((len(r) for r in sr.runs.values()), default=0)
        lines.append(f"### {s.name}: {s.title}")
        detail = f"{s.files:,} files, {sr.total_bytes / 1e6:,.1f} MB, from the {sr.server}"
        if sr.limit is not None:
            detail += f"; limit {sr.limit:.2f} s ({sr.limit_how})"
        lines.append(f"{detail}; medians of {runs} runs, whole process")
        lines.append("")
        lines.append(
            "| contender | wall s (min-max) | CPU s | files/s | MB/s | CPU s / 1000 files "
            "| x limit | x best peer | note |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for row in rows(sr):
            notes = []
            if row.incomplete:
                notes.append(f"INCOMPLETE in {row.incomplete} of {row.runs} runs")
            if row.noisy:
                notes.append(f"other load in {row.noisy} of {row.runs} runs")
            note = "; ".join(notes)
            lines.append(
                f"| {row.name} | {row.wall:.2f} ({row.wall_min:.2f}-{row.wall_max:.2f}) "
                f"| {row.cpu:.2f} | {row.files_per_s:,.0f} | {row.mb_per_s:,.0f} "
                f"| {row.cpu_per_1000:.3f} | {_ratio(row.to_limit)} "
                f"| {_ratio(row.to_best_peer)} | {note} |"
            )
        for name, why in sr.missing.items():
            lines.append(f"| {name} | - | - | - | - | - | - | - | not run: {why} |")
        lines.append("")
        lines.append(_legend(sr))
        lines.append("")
    return "\n".join(lines)


def to_json(results: Sequence[ScenarioRuns]) -> dict[str, Any]:
    """Every run and every summary, for scripts."""
    return {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": _cpus(),
        },
        "scenarios": [
            {
                "name": sr.scenario.name,
                "title": sr.scenario.title,
                "files": sr.scenario.files,
                "bytes": sr.total_bytes,
                "concurrency": sr.scenario.concurrency,
                "server": sr.server,
                "limit_s": sr.limit,
                "limit_how": sr.limit_how,
                "not_run": sr.missing,
                "summary": [row.__dict__ for row in rows(sr)],
                "runs": {
                    name: [
                        run.__dict__ | {"complete": run.complete, "noisy": run.noisy}
                        for run in runs
                    ]
                    for name, runs in sr.runs.items()
                },
            }
            for sr in results
        ],
    }


def from_json(doc: dict[str, Any]) -> list[ScenarioRuns]:
    """The results :func:`to_json` wrote, back again (to redraw or re-tabulate them)."""
    from ._run import Run
    from ._scenarios import SCENARIOS

    results = []
    for item in doc["scenarios"]:
        sr = ScenarioRuns(
            SCENARIOS[item["name"]], item["server"], item["bytes"], item["limit_s"],
            item["limit_how"],
        )  # fmt: skip
        sr.missing = dict(item["not_run"])
        sr.peers = {row["name"] for row in item["summary"] if row["peer"]}
        fields = ("wall", "cpu", "exit_status", "files", "nbytes", "problem", "other")
        sr.runs = {
            name: [Run(*(run.get(f, 0.0) for f in fields)) for run in runs]
            for name, runs in item["runs"].items()
        }
        results.append(sr)
    return results


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def plot(results: Sequence[ScenarioRuns], path: str) -> None:
    """Draw each scenario as bars of median wall time (whiskers: min-max) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [sr for sr in results if sr.runs]
    fig, axes = plt.subplots(
        len(shown), 1, figsize=(9, 1.2 + sum(0.42 * len(sr.runs) + 0.9 for sr in shown))
    )
    axes_list = [axes] if len(shown) == 1 else list(axes)
    for ax, sr in zip(axes_list, shown, strict=True):
        summary = sorted(rows(sr), key=lambda row: row.wall, reverse=True)
        names = [row.name + (" (incomplete)" if row.incomplete else "") for row in summary]
        walls = [row.wall for row in summary]
        low = [row.wall - row.wall_min for row in summary]
        high = [row.wall_max - row.wall for row in summary]
        colors = ["#9a9a9a" if row.peer else "#1f6fb4" for row in summary]
        ax.barh(names, walls, xerr=[low, high], color=colors, capsize=3)
        for y, row in enumerate(summary):
            label = f" {row.wall:.2f} s"
            if row.files_per_s >= 1000:
                label += f"  {row.files_per_s:,.0f} files/s"
            if row.mb_per_s >= 100:
                label += f"  {row.mb_per_s:,.0f} MB/s"
            ax.text(row.wall_max, y, label, va="center", fontsize=8)
        if sr.limit is not None:
            ax.axvline(sr.limit, color="#c0392b", linestyle="--", linewidth=1)
            ax.text(sr.limit, -0.75, " limit", color="#c0392b", fontsize=8, va="center")
        ax.set_title(f"{sr.scenario.name}: {sr.scenario.title}", fontsize=10, loc="left")
        ax.set_xlabel("wall seconds, whole process (median; whiskers min-max)", fontsize=8)
        ax.set_xlim(0, max(row.wall_max for row in summary) * 1.45)
        ax.tick_params(labelsize=8)
    height = fig.get_figheight()
    fig.suptitle("manyget (blue) against other downloaders (grey), loopback", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / height))  # room for the title above
    fig.savefig(path, dpi=110)
    plt.close(fig)
