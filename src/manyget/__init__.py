"""manyget: download many files concurrently, fast, politely, without losing a byte.

>>> import manyget
>>> report = manyget.download(urls, "downloads", engine="threads")  # doctest: +SKIP
>>> report.counts  # doctest: +SKIP
Counter({<Status.OK: 'ok'>: 20})

Names are imported on first use (PEP 562), so ``import manyget`` loads neither the HTTP
clients nor asyncio; ``manyget --help`` stays quick for the same reason.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING

from ._exceptions import (
    DestinationError,
    DiskFull,
    EngineError,
    EngineUnavailable,
    InputError,
    ManygetError,
    UsageError,
)

if TYPE_CHECKING:
    from ._api import DEFAULT_CONCURRENCY, download, iter_download
    from ._engines import DEFAULT_ENGINE, ENGINES
    from ._jobs import Job, safe_name
    from ._policy import RetryPolicy, Timeouts
    from ._results import Attempt, Report, Result, Status

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022 - plain sorted(), checked by a test
    "Attempt",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_ENGINE",
    "DestinationError",
    "DiskFull",
    "ENGINES",
    "EngineError",
    "EngineUnavailable",
    "InputError",
    "Job",
    "ManygetError",
    "Report",
    "Result",
    "RetryPolicy",
    "Status",
    "Timeouts",
    "UsageError",
    "__version__",
    "download",
    "iter_download",
    "safe_name",
]

_LAZY = {
    "Attempt": "._results",
    "DEFAULT_CONCURRENCY": "._api",
    "DEFAULT_ENGINE": "._engines",
    "ENGINES": "._engines",
    "Job": "._jobs",
    "Report": "._results",
    "Result": "._results",
    "RetryPolicy": "._policy",
    "Status": "._results",
    "Timeouts": "._policy",
    "download": "._api",
    "iter_download": "._api",
    "safe_name": "._jobs",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'manyget' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
