"""The workloads ``manyget bench`` measures: pure descriptions, no I/O.

A scenario says what is served (the embedded server's flags, or generated files), with how
much added latency, how many downloads run at once, which manyget engines take part by
default, and whether outside tools are compared. What the files must contain is known up
front (``Expected``), so every run can be checked byte for byte.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

__all__ = [
    "DEFAULT_SCENARIOS",
    "MIB",
    "SCENARIOS",
    "Expected",
    "Scenario",
    "block_content",
    "contents",
    "expect",
    "expected",
]

MIB = 1 << 20
CONCURRENT_STYLES = ("threads", "processes", "asyncio", "multi")
BOOK_STYLES = ("sequential", "threads", "processes", "asyncio", "multi")


@dataclass(frozen=True)
class Expected:
    """One file a run must leave: its name, size and SHA-256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Scenario:
    """One workload. ``sizes`` is None for the flag scenarios (served from /flags/)."""

    name: str
    title: str
    concurrency: int
    delay: float = 0.0
    flags: int = 0  # how many flags, from the first of the sorted codes (0: not flags)
    pop20: bool = False  # the book's 20 most populous countries instead
    sizes: tuple[int, ...] = ()
    engines: tuple[str, ...] = CONCURRENT_STYLES
    peers: bool = True
    nginx_ok: bool = False  # may be served by nginx (no added latency needed)
    split: int = 1  # connections per file: each contender's way to fetch one file as ranges
    rate: int = 0  # bytes a second nginx allows each connection (0: no cap)

    @property
    def files(self) -> int:
        return len(self.codes) if self.is_flags else len(self.sizes)

    @property
    def is_flags(self) -> bool:
        return self.flags > 0 or self.pop20

    @cached_property
    def codes(self) -> tuple[str, ...]:
        from .._server import COUNTRY_CODES, POP20_CC

        if self.pop20:
            return tuple(sorted(POP20_CC))
        return tuple(sorted(COUNTRY_CODES)[: self.flags])

    def names(self) -> list[str]:
        """The file names, in list order, that every downloader derives from the URLs."""
        if self.is_flags:
            return [f"{cc.lower()}.gif" for cc in self.codes]
        return [f"f{i:06d}.bin" for i in range(len(self.sizes))]

    def paths(self) -> list[str]:
        """The URL paths, in list order."""
        if self.is_flags:
            return [f"/flags/{cc.lower()}/{cc.lower()}.gif" for cc in self.codes]
        prefix = "/limited/" if self.rate else "/"
        return [prefix + name for name in self.names()]

    def paper_limit(self) -> float | None:
        """With a per-connection cap: the least wall time ``split`` capped connections
        a file allow (the bench takes the loopback limit instead where that is slower)."""
        if not self.rate:
            return None
        return max(self.sizes) / (self.split * self.rate)

    def limit(self) -> float | None:
        """The least wall time latency allows: rounds of ``concurrency`` requests each
        waiting ``delay``. None when latency is not what bounds the scenario."""
        if self.delay <= 0:
            return None
        return math.ceil(self.files / self.concurrency) * self.delay


def block_content(index: int, size: int) -> bytes:
    """The bytes of generated file ``index``: a seeded random block, repeated to ``size``.

    A block of at most 1 MiB keeps generating 512 MiB quick; each file still differs
    from every other, so a file saved under the wrong name fails verification.
    """
    rng = random.Random(index)
    block = rng.randbytes(min(size, MIB))
    whole, rest = divmod(size, len(block)) if block else (0, 0)
    return block * whole + block[:rest]


def contents(scenario: Scenario) -> Iterator[tuple[str, bytes]]:
    """Every file of ``scenario``: its name and the bytes the server sends, one at a time."""
    names = scenario.names()
    if scenario.is_flags:
        from .._server import flag_gif

        yield from zip(names, (flag_gif(cc) for cc in scenario.codes), strict=True)
        return
    for i, (name, size) in enumerate(zip(names, scenario.sizes, strict=True)):
        yield name, block_content(i, size)


def expect(name: str, body: bytes) -> Expected:
    return Expected(name, len(body), hashlib.sha256(body).hexdigest())


def expected(scenario: Scenario) -> list[Expected]:
    """What a complete run of ``scenario`` leaves, file by file (computes the digests)."""
    return [expect(name, body) for name, body in contents(scenario)]


def _small_sizes(count: int, low: int, high: int, seed: int) -> tuple[int, ...]:
    rng = random.Random(seed)
    return tuple(rng.randint(low, high) for _ in range(count))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("S1", "194 flags, 0.1 s latency each, 64 at once", 64, 0.1, flags=194),
        Scenario("S1@20", "194 flags, 0.1 s latency each, 20 at once", 20, 0.1, flags=194),
        Scenario(
            "S2",
            "10,000 files of 4-16 KB, 64 at once",
            64,
            sizes=_small_sizes(10_000, 4_000, 16_000, seed=42),
            nginx_ok=True,
        ),
        Scenario(
            "S3",
            "4 files of 128 MiB, 4 at once",
            4,
            sizes=(128 * MIB,) * 4,
            nginx_ok=True,
        ),
        Scenario(
            "S4",
            "1 GiB, nginx capping each connection at 50 MiB/s, 16 connections",
            16,
            sizes=(1 << 30,),
            nginx_ok=True,
            split=16,
            rate=50 * MIB,
            engines=("multi",),
        ),
        Scenario(
            "S5",
            "1 GiB, no cap: each contender's own defaults for one big file",
            1,
            sizes=(1 << 30,),
            nginx_ok=True,
            engines=("multi",),
        ),
        Scenario(
            "BOOK",
            "the book's experiment: 20 flags, 0.5 s latency each, by style",
            20,
            0.5,
            pop20=True,
            engines=BOOK_STYLES,
            peers=False,
        ),
        Scenario(
            "tiny",
            "24 files of 1-8 KB, 4 at once (a smoke test)",
            4,
            sizes=_small_sizes(24, 1_000, 8_000, seed=1),
            nginx_ok=True,
        ),
    )
}
DEFAULT_SCENARIOS: tuple[str, ...] = ("S1", "S1@20", "S2", "S3", "BOOK")
