"""manyget: download many files concurrently, fast, politely, without losing a byte.

>>> import manyget
>>> report = manyget.download(urls, "downloads", engine="threads")  # doctest: +SKIP
>>> report.counts  # doctest: +SKIP
Counter({<Status.OK: 'ok'>: 20})
"""

from ._api import DEFAULT_CONCURRENCY, download, iter_download
from ._engines import DEFAULT_ENGINE, ENGINES
from ._exceptions import (
    DestinationError,
    DiskFull,
    EngineError,
    EngineUnavailable,
    InputError,
    ManygetError,
    UsageError,
)
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
