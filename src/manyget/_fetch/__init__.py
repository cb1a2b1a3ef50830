"""One download attempt, the same on every engine.

Theory of operation: a driver (see ``manyget._engines``) runs :class:`Transfer` attempts:
one libcurl request each, in a ``CurlMulti``, on an event loop, or blocking in a thread
(:class:`Blocking`). A :class:`~manyget._fetch._body.Body` streams a 2xx body into the
hidden partial file ``.NAME.part`` beside its final name (:class:`~manyget._fetch._part.Part`,
the only code that writes downloads), opened and locked only when the first byte of a
successful response arrives (a 404 creates no file at all). When the body is complete,
libcurl has already checked it against ``Content-Length``; the file is renamed onto its
final name in one ``os.replace``, so a name under the destination is never a
half-written file (a small body of known length goes to a file with no name instead,
linked to its final name when complete). A failure or cancellation after some bytes
keeps the partial file with a sidecar, so the next attempt or run asks only for the rest
(:func:`~manyget._fetch._state.on_response` judges the answer). Whether to try again, and
when, is the driver's :class:`~manyget._hosts.Feeder`'s decision.

Modules: ``_part`` (the disk), ``_state`` (pure: the body's phases and the decisions on
status and headers), ``_body`` (carries them out on a ``_part``), ``_curl`` (the libcurl
handle). asyncio, http and json are imported where used: most runs never
need them, and they are a good part of the start-up time of a short run.
"""

from __future__ import annotations

from ._curl import (
    BIG_BODY,
    CANCELLED,
    Blocking,
    Transfer,
    Transfers,
    add_cookie_lines,
    cookie_lines,
    curl_error,
    inflight_for,
    rates_for,
    read_size,
    resume_paused,
)
from ._part import preflight, split_files

__all__ = [
    "BIG_BODY",
    "CANCELLED",
    "Blocking",
    "Transfer",
    "Transfers",
    "add_cookie_lines",
    "cookie_lines",
    "curl_error",
    "inflight_for",
    "preflight",
    "rates_for",
    "read_size",
    "resume_paused",
    "split_files",
]
