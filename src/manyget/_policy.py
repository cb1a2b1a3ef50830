"""Pure option values and decisions: timeouts, retry policy, run settings.

Each option is a small frozen value validated once when built. Retry state is a value too:
:meth:`RetryPolicy.delay_for` answers "retry after how long, or not at all" from the
attempt number and the outcome, with no clock and no sleeping, so the fetchers share one
decision and tests can check it directly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from ._exceptions import UsageError

__all__ = ["RETRY_STATUSES", "RetryPolicy", "Settings", "Timeouts"]

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """``connect``: seconds to open a connection; ``idle``: seconds with no byte received."""

    connect: float = 10.0
    idle: float = 30.0

    def __post_init__(self) -> None:
        for name in ("connect", "idle"):
            value = getattr(self, name)
            if not value > 0:
                raise UsageError(f"timeout {name} must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many times a failed download is tried again, and how long to wait first.

    Only transient failures are retried: no response at all (``http_status is None``,
    a reset or timeout), or a status in :data:`RETRY_STATUSES`. The wait is capped
    exponential backoff with full jitter.
    """

    retries: int = 0
    backoff: float = 0.25
    max_wait: float = 10.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise UsageError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.max_wait < 0:
            raise UsageError("backoff and max_wait must be >= 0")

    def delay_for(
        self, attempt: int, http_status: int | None, rng: random.Random | None = None
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

        ``attempt`` counts the attempts made so far (1 after the first request).
        """
        if attempt > self.retries:
            return None
        if http_status is not None and http_status not in RETRY_STATUSES:
            return None
        ceiling = min(self.max_wait, self.backoff * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a fetcher needs, in one picklable value shipped to workers."""

    dest: Path
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = "manyget"
