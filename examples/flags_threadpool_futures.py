"""Schedule flag downloads with ``executor.submit`` and collect them with ``as_completed``.

Mirrors ``flags_threadpool_futures.py`` from *Fluent Python*, "Concurrency with Futures":
five countries on a pool of three threads, printing each ``Future`` as it is scheduled and
again as it finishes, so the states a future goes through can be seen.

What to notice:

* ``submit`` returns a ``Future`` at once. With three workers, the first futures may
  already be ``running`` when printed while the last two stay ``pending`` (at the mercy of
  the scheduler: ``--delay 0.5`` keeps the workers busy long enough to see it);
* ``as_completed`` yields each future when it is ``finished``, in completion order, not in
  the order they were submitted; ``future.result()`` then returns without blocking.

    python examples/flags_threadpool_futures.py [--delay S | --delay LOW:HIGH] [-d DIR]
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path

from flags_sequential import main
from flags_threadpool import flag_saver


def download_many(cc_list: list[str], base_url: str, dest: Path) -> int:
    cc_list = cc_list[:5]
    download_one = flag_saver(base_url, dest)
    with ThreadPoolExecutor(max_workers=3) as executor:
        to_do: list[Future[str]] = []
        for cc in sorted(cc_list):
            future = executor.submit(download_one, cc)
            to_do.append(future)
            print(f"Scheduled for {cc}: {future!r}")

        for future in as_completed(to_do):
            result = future.result()
            print(f"{future!r} result: {result!r}")
    return len(to_do)


if __name__ == "__main__":
    main(download_many)
