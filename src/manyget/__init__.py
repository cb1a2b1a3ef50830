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
    from ._engines import DEFAULT_ENGINE, ENGINES
    from ._jobs import Job, safe_name
    from ._options import DEFAULT_CONCURRENCY, DEFAULT_PER_HOST, Limits, Options
    from ._policy import RetryPolicy, Timeouts
    from ._results import Attempt, AttemptKind, Report, Result, Status
    from ._session import (
        AsyncDownloader,
        Downloader,
        adownload,
        aiter_download,
        download,
        iter_download,
    )

__version__ = "0.1.0"

_LAZY = {
    "AsyncDownloader": "._session",
    "Attempt": "._results",
    "AttemptKind": "._results",
    "DEFAULT_CONCURRENCY": "._options",
    "DEFAULT_ENGINE": "._engines",
    "DEFAULT_PER_HOST": "._options",
    "Downloader": "._session",
    "ENGINES": "._engines",
    "Job": "._jobs",
    "Limits": "._options",
    "Options": "._options",
    "Report": "._results",
    "Result": "._results",
    "RetryPolicy": "._policy",
    "Status": "._results",
    "Timeouts": "._policy",
    "adownload": "._session",
    "aiter_download": "._session",
    "download": "._session",
    "iter_download": "._session",
    "safe_name": "._jobs",
}

__all__ = [  # noqa: RUF022 - plain sorted(), checked by a test
    "AsyncDownloader",
    "Attempt",
    "AttemptKind",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_ENGINE",
    "DEFAULT_PER_HOST",
    "DestinationError",
    "DiskFull",
    "Downloader",
    "ENGINES",
    "EngineError",
    "EngineUnavailable",
    "InputError",
    "Job",
    "Limits",
    "ManygetError",
    "Options",
    "Report",
    "Result",
    "RetryPolicy",
    "Status",
    "Timeouts",
    "UsageError",
    "__version__",
    "adownload",
    "aiter_download",
    "download",
    "iter_download",
    "safe_name",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'manyget' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
