"""Injected faults: the book's DELAY and ERROR servers (Vaurien proxies) as a value object."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = ["ERROR_STATUSES", "Faults", "parse_delay"]

ERROR_STATUSES = (500, 502, 503)


def _check_delay(delay: tuple[float, float]) -> tuple[float, float]:
    if len(delay) != 2:
        raise ValueError(f"delay must be a (low, high) pair of seconds, got {delay!r}")
    low, high = float(delay[0]), float(delay[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"delay must be finite, got {delay!r}")
    if low < 0 or high < low:
        raise ValueError(f"delay must satisfy 0 <= low <= high, got {delay!r}")
    return low, high


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """How the server misbehaves, drawn independently for every request.

    With probability ``delay_rate`` the response waits ``uniform(*delay)`` seconds; with
    probability ``error_rate`` it is a 500, 502 or 503 instead of the resource. A request that
    is both delayed and failed waits first, like a slow upstream that finally gives up. Draws
    come from ``random.Random(seed)`` in arrival order, so a fixed seed and a sequential client
    replay exactly. The book's servers::

        Faults(delay=(0.5, 0.5))                                   # DELAY: +0.5 s each
        Faults(delay=(0.5, 0.5), delay_rate=0.5, error_rate=0.25)  # ERROR
        Faults(delay=(0.5, 5.0), error_rate=0.25, error_status=418)  # the slow server
    """

    delay: tuple[float, float] = (0.0, 0.0)
    delay_rate: float = 1.0
    error_rate: float = 0.0
    seed: int | None = None
    error_status: int | None = None  # one status for every failure (the book's slow server: 418)

    def __post_init__(self) -> None:
        object.__setattr__(self, "delay", _check_delay(self.delay))
        for name in ("delay_rate", "error_rate"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:  # also rejects NaN
                raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")
        if self.error_status is not None and not 400 <= self.error_status <= 599:
            raise ValueError(f"error_status must be 400 to 599, got {self.error_status!r}")

    @property
    def active(self) -> bool:
        """Whether any request can be delayed or failed."""
        return (self.delay[1] > 0 and self.delay_rate > 0) or self.error_rate > 0

    def rng(self) -> random.Random:
        """A fresh generator for one server run."""
        return random.Random(self.seed)

    def draw(self, rng: random.Random) -> tuple[float, int | None]:
        """Decide one request's fate: (seconds to wait, error status or None)."""
        # Always consume the same number of draws, so one knob does not shift the others.
        failed = rng.random() < self.error_rate
        delayed = rng.random() < self.delay_rate
        seconds = rng.uniform(*self.delay)
        status = rng.choice(ERROR_STATUSES)
        if self.error_status is not None:
            status = self.error_status
        return (seconds if delayed else 0.0), (status if failed else None)


def parse_delay(text: str) -> tuple[float, float]:
    """Parse ``"0.5"`` (fixed) or ``"0.2:0.8"`` (uniform range) into a (low, high) pair."""
    parts = text.strip().split(":")
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise ValueError(f"delay must look like '0.5' or '0.2:0.8' (seconds), got {text!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"delay must be numbers of seconds, got {text!r}") from None
    low, high = values[0], values[-1]
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"delay must be finite, got {text!r}")
    if low < 0 or high < 0:
        raise ValueError(f"delay cannot be negative, got {text!r}")
    if high < low:
        raise ValueError(f"delay range must be low:high with low <= high, got {text!r}")
    return low, high
