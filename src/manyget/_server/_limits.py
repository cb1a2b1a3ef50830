"""How much the server gives one client: timeouts, the connection cap, request and queue sizes.

A value object like the client's options: keyword-only, frozen, checked once. ``_app`` reads it;
nothing here touches a socket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["RESERVED_DESCRIPTORS", "ServerLimits"]

RESERVED_DESCRIPTORS = 32  # kept free under RLIMIT_NOFILE for the listener, files, logging
_MAX_CONNECTIONS_CEILING = 1 << 20  # when the descriptor limit is unlimited


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerLimits:
    """Limits of the embedded server; every default is what ``manyget serve`` uses.

    ``header_timeout``: seconds from a request's first byte (or from the accept) until its
    head is complete; then 408 and close. ``keep_alive_timeout``: seconds an idle connection
    stays open between requests. ``send_timeout``: seconds a client may go without taking any
    of an answer before the connection is aborted. ``max_connections``: open connections;
    beyond it the server stops accepting until one closes (``None``: the descriptor limit,
    ``RLIMIT_NOFILE``, less 32). ``max_target`` and ``max_segments``: the longest request
    target and the most ``/``-separated segments in its path; longer gets 414.
    ``max_queued``: bytes of pipelined requests plus unsent answers one connection may hold
    before the server stops reading from it. Deadlines are checked every ``tick`` seconds, so
    a timeout may end up to one tick early or late.
    """

    header_timeout: float = 10.0
    keep_alive_timeout: float = 15.0
    send_timeout: float = 30.0
    max_connections: int | None = None
    max_target: int = 8 * 1024
    max_segments: int = 128
    max_queued: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("header_timeout", "keep_alive_timeout", "send_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_connections is not None and self.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {self.max_connections}")
        if self.max_target < 16:
            raise ValueError(f"max_target must be at least 16, got {self.max_target}")
        if self.max_segments < 1:
            raise ValueError(f"max_segments must be at least 1, got {self.max_segments}")
        if self.max_queued < 64 * 1024:
            raise ValueError(f"max_queued must be at least 65536, got {self.max_queued}")

    def connection_cap(self) -> int:
        """``max_connections``, or what the process's descriptor limit leaves room for."""
        if self.max_connections is not None:
            return self.max_connections
        try:
            import resource
        except ImportError:  # pragma: no cover -- not POSIX: no descriptor limit to read
            return _MAX_CONNECTIONS_CEILING
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return _MAX_CONNECTIONS_CEILING
        return max(1, min(soft, _MAX_CONNECTIONS_CEILING) - RESERVED_DESCRIPTORS)

    @property
    def tick(self) -> float:
        """Seconds between two checks of the deadlines: a quarter of the shortest, 0.05-1."""
        shortest = min(self.header_timeout, self.keep_alive_timeout, self.send_timeout)
        return max(0.05, min(1.0, shortest / 4))

    @property
    def write_high_water(self) -> int:
        """Unsent answer bytes above which a connection stops reading and waits."""
        return min(256 * 1024, self.max_queued // 4)
