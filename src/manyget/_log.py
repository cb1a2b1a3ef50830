"""The library's log: ``logging.getLogger("manyget")``, and no handler of ours.

What goes there: each attempt's outcome and each retry with its reason and wait (DEBUG and
INFO), redirects and resume decisions (DEBUG), hosts paused after 429 or 503 (INFO).
Nothing is logged at WARNING for an ordinary failure such as a 404: failures are results,
reported to the caller. URLs are logged with their credentials masked.

The log costs nothing to a program that never set logging up: while the ``logging`` module
is not even imported, no record is made and ``logging`` is not loaded for it (its import
is a good part of a short run's start-up).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

__all__ = ["DEBUG", "INFO", "logger"]

DEBUG = 10
INFO = 20


_logger: logging.Logger | None = None


def logger(level: int) -> logging.Logger | None:
    """The ``manyget`` logger when it would record ``level``, else None."""
    global _logger
    log = _logger
    if log is None:
        module = sys.modules.get("logging")
        if module is None:
            return None
        log = _logger = module.getLogger("manyget")  # getLogger takes a lock: once
    return log if log.isEnabledFor(level) else None
