"""Bandwidth caps: one for the whole run, one for each host, shared by every transfer.

Theory of operation: a :class:`Bucket` holds tokens (bytes) that refill at ``rate`` per
second up to a small burst (a tenth of a second's worth, at least 16 KiB, so the cap holds
over any stretch of a second or more). A transfer asks :meth:`Rates.allow` before each
chunk of body it is given; a chunk is let through while the buckets it draws on are not
empty, and may leave them in debt (a chunk is at most 16 KiB), so the average holds
without ever splitting a chunk. A refused chunk is not consumed: the transfer waits,
either by pausing the libcurl transfer (``CURL_WRITEFUNC_PAUSE``: libcurl keeps the
chunk and gives it again once its driver unpauses it, after :meth:`Rates.delay`), or,
on a thread of its own, by sleeping. libcurl's own per-transfer cap is no use here: 64
transfers capped at 1 MB/s each are not a 1 MB/s cap, and a cap cannot be moved while a
transfer runs. With worker processes each gets its share of the caps. No clock is read
here: callers pass ``now``.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["Bucket", "Rates"]

_MIN_BURST = 16 * 1024


class Bucket:
    """``rate`` bytes per second; see the module's docstring."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.burst = max(rate / 10, _MIN_BURST)
        self._tokens = self.burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def ready(self, now: float) -> bool:
        """True when a chunk may go through now."""
        self._refill(now)
        return self._tokens > 0

    def spend(self, size: int) -> None:
        self._tokens -= size

    def delay(self, now: float) -> float:
        """Seconds until a chunk may go through."""
        self._refill(now)
        return 0.0 if self._tokens > 0 else -self._tokens / self.rate + 1e-4


class Rates:
    """The run's cap and each host's, in this process; transfers paused by them."""

    def __init__(self, rate: float | None, host_rate: float | None, now: float) -> None:
        self._run = Bucket(rate, now) if rate else None
        self._host_rate = host_rate
        self._hosts: dict[str, Bucket] = {}
        self._lock = threading.Lock()  # the threads engine shares one Rates
        self.paused: list[Any] = []  # transfers waiting for allow(); their drivers resume them

    def _buckets(self, host: str, now: float) -> list[Bucket]:
        found = [] if self._run is None else [self._run]
        if self._host_rate:
            bucket = self._hosts.get(host)
            if bucket is None:
                bucket = self._hosts[host] = Bucket(self._host_rate, now)
            found.append(bucket)
        return found

    def allow(self, host: str, size: int, now: float) -> bool:
        """Whether a chunk of ``size`` bytes from ``host`` may go through now (it is then
        counted); when not, nothing is counted and the caller waits :meth:`delay`."""
        with self._lock:
            buckets = self._buckets(host, now)
            if not all(bucket.ready(now) for bucket in buckets):
                return False
            for bucket in buckets:
                bucket.spend(size)
            return True

    def delay(self, host: str, now: float) -> float:
        """Seconds until a chunk from ``host`` may go through."""
        with self._lock:
            return max((b.delay(now) for b in self._buckets(host, now)), default=0.0)
