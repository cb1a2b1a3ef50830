#!/usr/bin/env python3
"""Compare Python HTTP clients for manyget, by measurement, against a private loopback nginx.

Run from the repository root::

    python benchmarks/clients.py                       # small + large, 3 runs, Markdown
    python benchmarks/clients.py --workload small --runs 5 --shapes pycurl-multi,aiohttp
    python benchmarks/clients.py --workload large --shapes pycurl-multi:256k,pycurl-multi:4m
    python benchmarks/clients.py --json > results.json

A *shape* is a client plus the way it is driven (``pycurl-multi``, ``urllib3``, ...); an
optional ``:SIZE`` suffix (``1m``, ``256k``, ``65536``) sets its read/buffer size (see
``SHAPES`` for what the size means for each client).

Method (also in benchmarks/README.md and docs/benchmarks.md):

* The data set is generated with a fixed seed into a tmpfs directory and served by a private
  nginx (one worker, sendfile, keep-alive, no access log) on 127.0.0.1:<free port>.
* Each (shape, run) downloads the whole workload in a **fresh child interpreter**
  (``python clients.py --child ...``). Every file goes to its own file under a tmpfs
  directory, which the parent verifies (count, every size, sampled contents) and deletes.
* ``wall`` is the in-child time from just before the client/session is created to the last
  byte written (library import and interpreter start excluded; both reported separately).
* ``CPU child`` is user+sys of the whole child from ``getrusage(RUSAGE_CHILDREN)`` in the
  parent (includes interpreter start and import); ``CPU dl`` is the in-child
  ``getrusage(RUSAGE_SELF)`` delta around the download only (all threads).
* Runs are strictly sequential; the order of shapes is rotated on every round; medians over
  the rounds are reported, and the ratio to the reference shape is the median of per-round
  ratios (both measured in the same round, so machine noise mostly cancels).
* Noise control: before each run wait (bounded, ``--quiet-wait``) for an idle machine; repeat
  (``--retries``, within ``--retry-budget`` seconds) a run during which other processes used
  more than ``--max-other`` cores; the kept run is flagged "noisy" if it still was.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manyget._bench._run import cpu_busy_seconds

Job = tuple[str, str, int]  # (url, destination path, expected size)

SMALL_FILES = 10_000
SMALL_MIN, SMALL_MAX = 4 * 1024, 16 * 1024
LARGE_FILES = 4
LARGE_SIZE = 128 * 1024 * 1024
SEED = 20240611
DEFAULT_CONCURRENCY = {"small": 64, "large": 4}
MiB = 1024 * 1024


# --------------------------------------------------------------------------------------
# Download functions. Each one runs inside the child, gets the full job list, and must
# raise on any error (bad status, short body, transport error).
# --------------------------------------------------------------------------------------


class DownloadError(RuntimeError):
    pass


def _run_threads(
    jobs: list[Job], n: int, body: Callable[[Callable[[], Job | None]], None]
) -> None:
    """Run ``body(next_job)`` in ``n`` threads; ``next_job()`` hands out jobs until exhausted."""
    it = iter(jobs)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def next_job() -> Job | None:
        if errors:
            return None
        with lock:
            return next(it, None)

    def run() -> None:
        try:
            body(next_job)
        except BaseException as e:  # propagated after join
            errors.append(e)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(min(n, len(jobs)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _arun(coro: Any, loop: str) -> None:
    """asyncio.run(), or uvloop.run() when ``loop == "uvloop"`` (optional, not a dependency)."""
    if loop == "uvloop":
        import uvloop

        uvloop.run(coro)
    else:
        import asyncio

        asyncio.run(coro)


def _curl_common(c: Any, pycurl: Any, bufsize: int | None) -> None:
    c.setopt(pycurl.NOSIGNAL, 1)
    c.setopt(pycurl.CONNECTTIMEOUT, 10)
    c.setopt(pycurl.LOW_SPEED_LIMIT, 1)
    c.setopt(pycurl.LOW_SPEED_TIME, 60)
    if bufsize:
        c.setopt(pycurl.BUFFERSIZE, bufsize)


def _curl_check(c: Any, pycurl: Any, url: str, size: int) -> None:
    code = c.getinfo(pycurl.RESPONSE_CODE)
    got = c.getinfo(pycurl.SIZE_DOWNLOAD_T)
    if code != 200 or got != size:
        raise DownloadError(f"{url}: status {code}, {got} of {size} bytes")


def dl_pycurl_multi(jobs: list[Job], conc: int, bufsize: int | None, variant: str = "") -> None:
    """One thread, one CurlMulti, ``conc`` reused easy handles; WRITEFUNCTION = file.write."""
    import pycurl

    m = pycurl.CurlMulti()
    free = []
    for _ in range(min(conc, len(jobs))):
        c = pycurl.Curl()
        _curl_common(c, pycurl, bufsize)
        free.append(c)
    pending = iter(jobs)
    active: dict[Any, tuple[Job, Any, Any]] = {}
    exhausted = False

    def start(c: Any, job: Job) -> None:
        url, path, _size = job
        f = open(path, "wb")  # noqa: SIM115 - closed when the transfer completes
        c.setopt(pycurl.URL, url)
        hdrs: list[bytes] | None = None
        if variant == "pycb":
            nbytes = [0]

            def write(data: bytes, _f: Any = f, _n: list[int] = nbytes) -> None:
                _n[0] += len(data)
                _f.write(data)

            c.setopt(pycurl.WRITEFUNCTION, write)
        else:
            c.setopt(pycurl.WRITEFUNCTION, f.write)
        if variant == "hdr":
            hdrs = []
            c.setopt(pycurl.HEADERFUNCTION, hdrs.append)
        active[c] = (job, f, hdrs)
        m.add_handle(c)

    while True:
        while free and not exhausted:
            job = next(pending, None)
            if job is None:
                exhausted = True
                break
            start(free.pop(), job)
        if not active:
            break
        while True:
            ret, _running = m.perform()
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        while True:
            queued, ok, failed = m.info_read()
            for c in ok:
                (url, _p, size), f, _h = active.pop(c)
                f.close()
                m.remove_handle(c)
                _curl_check(c, pycurl, url, size)
                free.append(c)
            for c, errno, msg in failed:
                (url, _p, _s), f, _h = active.pop(c)
                f.close()
                raise DownloadError(f"{url}: curl error {errno}: {msg}")
            if queued == 0:
                break
        if active:
            m.select(1.0)
    for c in free:
        c.close()
    m.close()


def dl_pycurl_threads(jobs: list[Job], conc: int, bufsize: int | None) -> None:
    """``conc`` threads, each with one reused pycurl.Curl (perform() releases the GIL)."""
    import pycurl

    def body(next_job: Callable[[], Job | None]) -> None:
        c = pycurl.Curl()
        _curl_common(c, pycurl, bufsize)
        try:
            while (job := next_job()) is not None:
                url, path, size = job
                with open(path, "wb") as f:
                    c.setopt(pycurl.URL, url)
                    c.setopt(pycurl.WRITEFUNCTION, f.write)
                    c.perform()
                _curl_check(c, pycurl, url, size)
        finally:
            c.close()

    _run_threads(jobs, conc, body)


def dl_pycurl_asyncio(
    jobs: list[Job], conc: int, bufsize: int | None, loop: str = "asyncio"
) -> None:
    """CurlMulti driven by the asyncio loop (socket_action + add_reader/add_writer)."""
    import asyncio

    import pycurl

    async def main() -> None:
        loop = asyncio.get_running_loop()
        m = pycurl.CurlMulti()
        done = loop.create_future()
        timer: list[asyncio.TimerHandle | None] = [None]
        pending = iter(jobs)
        active: dict[Any, tuple[Job, Any]] = {}

        def fail(exc: BaseException) -> None:
            if not done.done():
                done.set_exception(exc)

        def start(c: Any) -> bool:
            job = next(pending, None)
            if job is None:
                return False
            url, path, _size = job
            f = open(path, "wb")  # noqa: SIM115 - closed on completion
            c.setopt(pycurl.URL, url)
            c.setopt(pycurl.WRITEFUNCTION, f.write)
            active[c] = (job, f)
            m.add_handle(c)
            return True

        def reap() -> None:
            while True:
                queued, ok, failed = m.info_read()
                for c in ok:
                    (url, _p, size), f = active.pop(c)
                    f.close()
                    m.remove_handle(c)
                    try:
                        _curl_check(c, pycurl, url, size)
                    except DownloadError as e:
                        fail(e)
                        return
                    if not start(c):
                        c.close()
                for c, errno, msg in failed:
                    (url, _p, _s), f = active.pop(c)
                    f.close()
                    fail(DownloadError(f"{url}: curl error {errno}: {msg}"))
                    return
                if queued == 0:
                    break
            if not active and not done.done():
                done.set_result(None)

        def on_io(fd: int, ev: int) -> None:
            m.socket_action(fd, ev)
            reap()

        def on_timeout() -> None:
            timer[0] = None
            m.socket_action(pycurl.SOCKET_TIMEOUT, 0)
            reap()

        def socket_cb(what: int, fd: int, _multi: Any, _data: Any) -> None:
            if what == pycurl.POLL_REMOVE:
                loop.remove_reader(fd)
                loop.remove_writer(fd)
                return
            if what & pycurl.POLL_IN:
                loop.add_reader(fd, on_io, fd, pycurl.CSELECT_IN)
            else:
                loop.remove_reader(fd)
            if what & pycurl.POLL_OUT:
                loop.add_writer(fd, on_io, fd, pycurl.CSELECT_OUT)
            else:
                loop.remove_writer(fd)

        def timer_cb(ms: int) -> None:
            if timer[0] is not None:
                timer[0].cancel()
                timer[0] = None
            if ms >= 0:
                timer[0] = loop.call_later(ms / 1000.0, on_timeout)

        m.setopt(pycurl.M_SOCKETFUNCTION, socket_cb)
        m.setopt(pycurl.M_TIMERFUNCTION, timer_cb)
        for _ in range(min(conc, len(jobs))):
            c = pycurl.Curl()
            _curl_common(c, pycurl, bufsize)
            start(c)
        try:
            await done
        finally:
            for c, (_job, f) in list(active.items()):
                f.close()
                m.remove_handle(c)
                c.close()
            if timer[0] is not None:
                timer[0].cancel()
            m.close()

    _arun(main(), loop)


def dl_aiohttp(
    jobs: list[Job], conc: int, bufsize: int | None, mode: str = "chunked", loop: str = "asyncio"
) -> None:
    """aiohttp ClientSession, TCPConnector(limit=conc), ``conc`` worker tasks.

    SIZE sets both ``read_bufsize`` of the session and ``iter_chunked(SIZE)``; without it the
    session default read_bufsize is kept and chunks are read with ``iter_chunked(64 KiB)``.
    ``mode`` "any" uses ``iter_any()`` (whatever is buffered), "read" ``await resp.read()``.
    """
    import asyncio

    import aiohttp

    chunk = bufsize or 65536

    async def main() -> None:
        conn = aiohttp.TCPConnector(limit=conc)
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=60)
        kw: dict[str, Any] = {"read_bufsize": bufsize} if bufsize else {}
        async with aiohttp.ClientSession(connector=conn, timeout=timeout, **kw) as s:
            it = iter(jobs)

            async def worker() -> None:
                for url, path, size in it:
                    async with s.get(url) as r:
                        if r.status != 200:
                            raise DownloadError(f"{url}: status {r.status}")
                        got = 0
                        with open(path, "wb") as f:
                            if mode == "read":
                                got = f.write(await r.read())
                            else:
                                it2 = (
                                    r.content.iter_any()
                                    if mode == "any"
                                    else r.content.iter_chunked(chunk)
                                )
                                async for data in it2:
                                    f.write(data)
                                    got += len(data)
                        if got != size:
                            raise DownloadError(f"{url}: {got} of {size} bytes")

            await asyncio.gather(*(worker() for _ in range(min(conc, len(jobs)))))

    _arun(main(), loop)


def dl_httpx(jobs: list[Job], conc: int, bufsize: int | None, loop: str = "asyncio") -> None:
    """httpx.AsyncClient with Limits(conc, conc), ``conc`` worker tasks, aiter_raw()."""
    import asyncio

    import httpx

    async def main() -> None:
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0)) as client:
            it = iter(jobs)

            async def worker() -> None:
                for url, path, size in it:
                    async with client.stream("GET", url) as r:
                        if r.status_code != 200:
                            raise DownloadError(f"{url}: status {r.status_code}")
                        got = 0
                        with open(path, "wb") as f:
                            async for data in r.aiter_raw(bufsize):
                                f.write(data)
                                got += len(data)
                        if got != size:
                            raise DownloadError(f"{url}: {got} of {size} bytes")

            await asyncio.gather(*(worker() for _ in range(min(conc, len(jobs)))))

    _arun(main(), loop)


def dl_urllib3(jobs: list[Job], conc: int, bufsize: int | None) -> None:
    """urllib3.PoolManager(maxsize=conc, block=True) shared by ``conc`` threads;
    ``preload_content=False`` and ``stream(SIZE)`` (default 64 KiB)."""
    import urllib3

    amt = bufsize or 65536
    pm = urllib3.PoolManager(
        maxsize=conc, block=True, retries=False, timeout=urllib3.Timeout(connect=10, read=60)
    )

    def body(next_job: Callable[[], Job | None]) -> None:
        while (job := next_job()) is not None:
            url, path, size = job
            r = pm.request("GET", url, preload_content=False)
            try:
                if r.status != 200:
                    raise DownloadError(f"{url}: status {r.status}")
                got = 0
                with open(path, "wb") as f:
                    for data in r.stream(amt):
                        f.write(data)
                        got += len(data)
                if got != size:
                    raise DownloadError(f"{url}: {got} of {size} bytes")
            finally:
                r.release_conn()

    try:
        _run_threads(jobs, conc, body)
    finally:
        pm.clear()


@dataclass(frozen=True)
class Shape:
    func: Callable[..., None]
    modules: tuple[str, ...]
    size_means: str
    kwargs: tuple[tuple[str, str], ...] = ()


SHAPES: dict[str, Shape] = {
    "pycurl-multi": Shape(dl_pycurl_multi, ("pycurl",), "CURLOPT_BUFFERSIZE"),
    "pycurl-threads": Shape(dl_pycurl_threads, ("pycurl",), "CURLOPT_BUFFERSIZE"),
    "pycurl-asyncio": Shape(dl_pycurl_asyncio, ("asyncio", "pycurl"), "CURLOPT_BUFFERSIZE"),
    "aiohttp": Shape(dl_aiohttp, ("asyncio", "aiohttp"), "read_bufsize + iter_chunked"),
    "aiohttp-any": Shape(dl_aiohttp, ("asyncio", "aiohttp"), "read_bufsize", (("mode", "any"),)),
    "aiohttp-read": Shape(dl_aiohttp, ("asyncio", "aiohttp"), "read_bufsize", (("mode", "read"),)),
    "aiohttp-uvloop": Shape(
        dl_aiohttp,
        ("asyncio", "aiohttp", "uvloop"),
        "read_bufsize + iter_chunked",
        (("loop", "uvloop"),),
    ),
    "pycurl-asyncio-uvloop": Shape(
        dl_pycurl_asyncio,
        ("asyncio", "pycurl", "uvloop"),
        "CURLOPT_BUFFERSIZE",
        (("loop", "uvloop"),),
    ),
    "httpx": Shape(dl_httpx, ("asyncio", "httpx"), "aiter_raw(chunk_size) (re-chunks only)"),
    "urllib3": Shape(dl_urllib3, ("urllib3",), "HTTPResponse.stream(amt)"),
    # Extra pycurl variants for the integration notes (not run by default):
    "pycurl-multi-pycb": Shape(
        dl_pycurl_multi, ("pycurl",), "CURLOPT_BUFFERSIZE", (("variant", "pycb"),)
    ),
    "pycurl-multi-hdr": Shape(
        dl_pycurl_multi, ("pycurl",), "CURLOPT_BUFFERSIZE", (("variant", "hdr"),)
    ),
}

DEFAULT_SHAPES = {
    "small": ["pycurl-multi", "pycurl-threads", "pycurl-asyncio", "aiohttp", "httpx", "urllib3"],
    "large": [
        "pycurl-multi",
        "pycurl-multi:1m",
        "pycurl-threads",
        "pycurl-threads:1m",
        "pycurl-asyncio:1m",
        "aiohttp",
        "aiohttp:1m",
        "httpx",
        "urllib3",
        "urllib3:1m",
    ],
}


def parse_size(text: str) -> int:
    t = text.strip().lower()
    mult = 1
    if t.endswith(("k", "m")):
        mult = 1024 if t[-1] == "k" else MiB
        t = t[:-1]
    return int(t) * mult


def parse_shape(spec: str) -> tuple[str, Shape, int | None]:
    name, _, size = spec.partition(":")
    if name not in SHAPES:
        raise SystemExit(f"unknown shape {name!r}; known: {', '.join(SHAPES)}")
    return name, SHAPES[name], (parse_size(size) if size else None)


# --------------------------------------------------------------------------------------
# Child side
# --------------------------------------------------------------------------------------


def child_main(spec: str, job_file: str, dest: str, conc: int) -> None:
    t_start = time.perf_counter()
    _name, shape, bufsize = parse_shape(spec)
    for mod in shape.modules:
        importlib.import_module(mod)
    with open(job_file) as f:
        manifest = json.load(f)
    base = manifest["base_url"]
    jobs: list[Job] = [
        (f"{base}/{rel}", os.path.join(dest, os.path.basename(rel)), size)
        for rel, size in manifest["items"]
    ]
    t_ready = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    shape.func(jobs, conc, bufsize, **dict(shape.kwargs))
    t1 = time.perf_counter()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    out = {
        "wall": t1 - t0,
        "cpu_dl": cpu,
        "cpu_dl_user": ru1.ru_utime - ru0.ru_utime,
        "cpu_dl_sys": ru1.ru_stime - ru0.ru_stime,
        "setup": t_ready - t_start,
        "maxrss_kib": ru1.ru_maxrss,
    }
    print(json.dumps(out), flush=True)


# --------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------


def generate(root: Path, workload: str) -> list[tuple[str, int]]:
    """Create the workload's files under ``root/workload``; return [(relpath, size)]."""
    rng = random.Random(f"{SEED}-{workload}")
    d = root / workload
    d.mkdir(parents=True)
    items: list[tuple[str, int]] = []
    if workload == "small":
        for i in range(SMALL_FILES):
            size = rng.randint(SMALL_MIN, SMALL_MAX)
            name = f"{i:05d}.bin"
            (d / name).write_bytes(rng.randbytes(size))
            items.append((f"{workload}/{name}", size))
    else:
        block = rng.randbytes(MiB)
        for i in range(LARGE_FILES):
            name = f"big{i}.bin"
            with open(d / name, "wb") as f:
                for j in range(LARGE_SIZE // MiB):
                    # Make every MiB distinct so misplaced ranges would be detected.
                    f.write(j.to_bytes(4, "big") + i.to_bytes(4, "big") + block[8:])
            items.append((f"{workload}/{name}", LARGE_SIZE))
    return items


def verify(src_root: Path, dest: Path, items: list[tuple[str, int]], rng: random.Random) -> str:
    """'' if every file is present with the right size and sampled contents match."""
    names = set(os.listdir(dest))
    if len(names) != len(items):
        return f"{len(names)} files, expected {len(items)}"
    total = 0
    for rel, size in items:
        try:
            st = os.stat(dest / os.path.basename(rel))
        except FileNotFoundError:
            return f"missing {rel}"
        if st.st_size != size:
            return f"{rel}: {st.st_size} bytes, expected {size}"
        total += st.st_size
    if total != sum(s for _r, s in items):
        return "total bytes differ"
    for rel, size in rng.sample(items, min(16, len(items))):
        a, b = src_root / rel, dest / os.path.basename(rel)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            for off in sorted({0, size // 2, max(0, size - MiB)}):
                fa.seek(off)
                fb.seek(off)
                if fa.read(MiB) != fb.read(MiB):
                    return f"{rel}: content differs at {off}"
    return ""


def wait_quiet(max_wait: float, busy_cores: float = 0.3, window: float = 0.5) -> float:
    """Wait (at most ``max_wait`` s) until the machine uses < ``busy_cores`` cores over a
    ``window``; return the seconds waited. Keeps other people's jobs out of the numbers
    when possible, but never blocks for long."""
    t0 = time.monotonic()
    while True:
        b0 = cpu_busy_seconds()
        time.sleep(window)
        if (cpu_busy_seconds() - b0) / window < busy_cores:
            break
        if time.monotonic() - t0 >= max_wait:
            break
    return time.monotonic() - t0


@dataclass
class RunCtx:
    """Everything a measured run needs besides the shape."""

    workload: str
    job_file: Path
    out_root: Path
    src_root: Path
    items: list[tuple[str, int]]
    conc: int
    timeout: float
    worker_cpu: Callable[[], float]
    rng: random.Random
    quiet_wait: float = 5.0
    max_other: float = 0.25
    retries: int = 2
    retry_budget: list[float] = field(default_factory=lambda: [60.0])  # shared, seconds left
    client_cpus: set[int] | None = None


def run_one(spec: str, ctx: RunCtx) -> dict[str, Any]:
    """One child run of ``spec``: measure, verify, clean up."""
    dest = Path(tempfile.mkdtemp(prefix=f"{ctx.workload}-", dir=ctx.out_root))
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        spec,
        "--job-file",
        str(ctx.job_file),
        "--dest",
        str(dest),
        "--concurrency",
        str(ctx.conc),
    ]
    cpus = ctx.client_cpus
    preexec = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    rec: dict[str, Any] = {"shape": spec, "workload": ctx.workload, "concurrency": ctx.conc}
    try:
        rec["waited_quiet"] = wait_quiet(ctx.quiet_wait) if ctx.quiet_wait > 0 else 0.0
        load = os.getloadavg()[0]
        busy0, ng0 = cpu_busy_seconds(), ctx.worker_cpu()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        try:
            p = subprocess.run(
                cmd, capture_output=True, text=True, timeout=ctx.timeout, preexec_fn=preexec
            )
        except subprocess.TimeoutExpired:
            rec["error"] = f"timeout after {ctx.timeout:.0f}s"
            return rec
        t1 = time.perf_counter()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy1, ng1 = cpu_busy_seconds(), ctx.worker_cpu()
        if p.returncode != 0:
            rec["error"] = (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
            return rec
        res = json.loads(p.stdout.strip().splitlines()[-1])
        cpu_child = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        nginx_cpu = ng1 - ng0
        rec.update(res)
        rec.update(
            cpu_child=cpu_child,
            wall_process=t1 - t0,
            nginx_cpu=nginx_cpu,
            other_cpu=max(0.0, (busy1 - busy0) - cpu_child - nginx_cpu),
            loadavg1=load,
            files=len(ctx.items),
            bytes=sum(s for _r, s in ctx.items),
        )
        err = verify(ctx.src_root, dest, ctx.items, ctx.rng)
        if err:
            rec["error"] = "verify: " + err
        return rec
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def run_measured(spec: str, ctx: RunCtx) -> dict[str, Any]:
    """``run_one``, repeated (at most ``ctx.retries`` times, and while the shared retry time
    budget lasts) while other processes used more than ``ctx.max_other`` cores on average
    during the run; the last attempt is kept and flagged if it was still noisy."""
    rec: dict[str, Any] = {}
    for attempt in range(ctx.retries + 1):
        rec = run_one(spec, ctx)
        rec["attempts"] = attempt + 1
        if "error" in rec or rec["other_cpu"] <= ctx.max_other * rec["wall_process"]:
            return rec
        ctx.retry_budget[0] -= rec["wall_process"]
        if ctx.retry_budget[0] <= 0:
            break
    rec["noisy"] = True
    return rec


def _median(xs: Iterable[float]) -> float:
    vals = list(xs)
    return statistics.median(vals) if vals else float("nan")


def summarize(records: list[dict[str, Any]], specs: list[str], ref: str) -> list[dict[str, Any]]:
    rows = []
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for r in records:
        if "error" not in r:
            by_round.setdefault(r["round"], {})[r["shape"]] = r
    for spec in specs:
        ok = [r for r in records if r["shape"] == spec and "error" not in r]
        errs = [r["error"] for r in records if r["shape"] == spec and "error" in r]
        row: dict[str, Any] = {"shape": spec, "runs_ok": len(ok), "runs": len(ok) + len(errs)}
        if ok:
            row["files"], row["bytes"] = ok[0]["files"], ok[0]["bytes"]
        if errs:
            row["errors"] = sorted(set(errs))
        if ok:
            files, nbytes = ok[0]["files"], ok[0]["bytes"]
            for key in ("wall", "cpu_child", "cpu_dl", "nginx_cpu", "other_cpu", "setup"):
                row[key] = _median(r[key] for r in ok)
            row["files_per_s"] = _median(files / r["wall"] for r in ok)
            row["mb_per_s"] = _median(nbytes / r["wall"] / 1e6 for r in ok)
            row["cpu_child_per_1000"] = row["cpu_child"] / files * 1000
            row["cpu_dl_per_1000"] = row["cpu_dl"] / files * 1000
            row["cpu_child_per_gb"] = row["cpu_child"] / (nbytes / 1e9)
            row["cpu_dl_per_gb"] = row["cpu_dl"] / (nbytes / 1e9)
            row["cpu_dl_min"] = min(r["cpu_dl"] for r in ok)
            row["cpu_dl_max"] = max(r["cpu_dl"] for r in ok)
            row["waited_quiet"] = sum(r.get("waited_quiet", 0.0) for r in ok)
            row["retried"] = sum(1 for r in ok if r.get("attempts", 1) > 1)
            row["noisy"] = sum(1 for r in ok if r.get("noisy"))
            ratios = [
                rd[spec]["cpu_dl"] / rd[ref]["cpu_dl"]
                for rd in by_round.values()
                if spec in rd and ref in rd and rd[ref]["cpu_dl"] > 0
            ]
            speed = [
                rd[ref]["wall"] / rd[spec]["wall"]
                for rd in by_round.values()
                if spec in rd and ref in rd and rd[spec]["wall"] > 0
            ]
            row["cpu_ratio"] = _median(ratios)
            row["speed_ratio"] = _median(speed)
        rows.append(row)
    return rows


def markdown(workload: str, rows: list[dict[str, Any]], ref: str, conc: int) -> str:
    small = workload == "small"
    per = "per 1000 files" if small else "per GB"
    head = [
        "shape",
        "wall s",
        "files/s" if small else "MB/s",
        "CPU s child",
        f"CPU s {per} (child)",
        f"CPU s {per} (dl, min-max)",
        f"CPU x {ref}",
        f"speed x {ref}",
        "nginx CPU s",
        "other CPU s",
        "ok",
    ]
    if small:
        head.insert(3, "MB/s")
    lines = [
        f"**{workload}**, {conc} at once",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|",
    ]
    for r in rows:
        if not r["runs_ok"]:
            cells = [r["shape"]] + ["-"] * (len(head) - 2)
            cells.append(f"0/{r['runs']} ({'; '.join(r.get('errors', []))[:80]})")
            lines.append("| " + " | ".join(cells) + " |")
            continue
        k = "1000" if small else "gb"
        unit = r["files"] / 1000 if small else r["bytes"] / 1e9
        lo, hi = r["cpu_dl_min"] / unit, r["cpu_dl_max"] / unit
        cells = [
            r["shape"],
            f"{r['wall']:.2f}",
            f"{r['files_per_s']:.0f}" if small else f"{r['mb_per_s']:.0f}",
        ]
        if small:
            cells.append(f"{r['mb_per_s']:.0f}")
        cells += [
            f"{r['cpu_child']:.2f}",
            f"{r[f'cpu_child_per_{k}']:.3f}",
            f"{r[f'cpu_dl_per_{k}']:.3f} ({lo:.3f}-{hi:.3f})",
            f"{r['cpu_ratio']:.2f}",
            f"{r['speed_ratio']:.2f}",
            f"{r['nginx_cpu']:.2f}",
            f"{r['other_cpu']:.2f}",
            f"{r['runs_ok']}/{r['runs']}"
            + (f", {r['retried']} retried" if r["retried"] else "")
            + (f", {r['noisy']} noisy" if r["noisy"] else ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    from importlib import metadata

    env: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg": os.getloadavg(),
    }
    for dist in ("pycurl", "aiohttp", "httpx", "httpcore", "urllib3", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            env[dist] = metadata.version(dist)
    with contextlib.suppress(Exception):
        import pycurl

        env["libcurl"] = pycurl.version_info()[1]
    with contextlib.suppress(Exception):
        v = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10)
        env["nginx"] = v.stderr.strip().split("/")[-1]
    return env


def rotate(xs: list[str], k: int) -> Iterator[str]:
    n = len(xs)
    for i in range(n):
        yield xs[(i + k) % n]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="small,large", help="small,large (comma list)")
    ap.add_argument("--runs", type=int, default=3, help="rounds per workload (default 3)")
    ap.add_argument(
        "--shapes", default="", help="comma list of SHAPE[:SIZE]; default per workload"
    )
    ap.add_argument("--concurrency", type=int, default=0, help="override 64 (small) / 4 (large)")
    ap.add_argument("--ref", default="pycurl-multi", help="reference shape for ratios")
    ap.add_argument("--timeout", type=float, default=180.0, help="per-run child timeout, s")
    ap.add_argument("--warmup", type=int, default=1, help="unrecorded warm-up runs/workload")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=5.0,
        help="before each run wait up to this many s for the machine to be idle (0: never)",
    )
    ap.add_argument(
        "--max-other",
        type=float,
        default=0.25,
        help="repeat a run if other processes used more than this many cores during it",
    )
    ap.add_argument("--retries", type=int, default=2, help="max repeats of a noisy run")
    ap.add_argument(
        "--retry-budget",
        type=float,
        default=60.0,
        help="total seconds of noisy runs that may be repeated per workload",
    )
    ap.add_argument(
        "--client-cpus", default="", help="pin the client child to these CPUs, e.g. 1 or 0,1"
    )
    ap.add_argument("--tmp", default="/dev/shm", help="tmpfs for served data and downloads")
    ap.add_argument("--json", action="store_true", help="print JSON (env, runs, medians)")
    ap.add_argument("--json-out", default="", help="also write the JSON to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--job-file", help=argparse.SUPPRESS)
    ap.add_argument("--dest", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        child_main(args.child, args.job_file, args.dest, args.concurrency)
        return 0

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # run the finally blocks: stop nginx, remove temp dirs

    signal.signal(signal.SIGTERM, on_term)

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from manyget._bench._nginx import PrivateNginx

    client_cpus = {int(c) for c in args.client_cpus.split(",") if c} or None
    workloads = [w for w in args.workload.split(",") if w]
    for w in workloads:
        if w not in DEFAULT_CONCURRENCY:
            raise SystemExit(f"unknown workload {w!r}")
    env = environment()
    result: dict[str, Any] = {"env": env, "workloads": {}}
    base = Path(tempfile.mkdtemp(prefix="manyget-bench-", dir=args.tmp))
    os.chmod(base, 0o755)
    log = sys.stderr
    try:
        www, out = base / "www", base / "out"
        www.mkdir()
        out.mkdir()
        items_by_w = {}
        for w in workloads:
            t = time.perf_counter()
            items_by_w[w] = generate(www, w)
            print(f"generated {w} in {time.perf_counter() - t:.1f}s", file=log)
        with PrivateNginx(www) as srv:
            for w in workloads:
                items = items_by_w[w]
                conc = args.concurrency or DEFAULT_CONCURRENCY[w]
                specs = [s for s in args.shapes.split(",") if s] or DEFAULT_SHAPES[w]
                for s in specs:
                    parse_shape(s)
                ref = args.ref if args.ref in specs else specs[0]
                job_file = base / f"{w}.json"
                job_file.write_text(json.dumps({"base_url": srv.base_url, "items": items}))
                ctx = RunCtx(
                    workload=w,
                    job_file=job_file,
                    out_root=out,
                    src_root=www,
                    items=items,
                    conc=conc,
                    timeout=args.timeout,
                    worker_cpu=srv.worker_cpu,
                    rng=random.Random(SEED),
                    quiet_wait=args.quiet_wait,
                    max_other=args.max_other,
                    retries=args.retries,
                    retry_budget=[args.retry_budget],
                    client_cpus=client_cpus,
                )
                for _ in range(args.warmup):
                    run_one(ref, ctx)
                records = []
                for rnd in range(args.runs):
                    for spec in rotate(specs, rnd):
                        rec = run_measured(spec, ctx)
                        rec["round"] = rnd
                        records.append(rec)
                        if "error" in rec:
                            msg = f"ERROR {rec['error']}"
                        else:
                            msg = (
                                f"wall {rec['wall']:.2f}s cpu child {rec['cpu_child']:.2f}s "
                                f"dl {rec['cpu_dl']:.2f}s nginx {rec['nginx_cpu']:.2f}s "
                                f"other {rec['other_cpu']:.2f}s"
                            )
                            if rec["attempts"] > 1:
                                msg += f" (attempt {rec['attempts']})"
                            if rec.get("noisy"):
                                msg += " NOISY"
                        print(f"[{w} r{rnd}] {spec:24s} {msg}", file=log, flush=True)
                rows = summarize(records, specs, ref)
                result["workloads"][w] = {
                    "concurrency": conc,
                    "ref": ref,
                    "runs": records,
                    "medians": rows,
                    "files": len(items),
                    "bytes": sum(s for _r, s in items),
                }
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if k != "platform"))
    for w, res in result["workloads"].items():
        print()
        print(
            f"{w}: {res['files']} files, {res['bytes'] / 1e6:.1f} MB; medians of {args.runs} runs"
        )
        print()
        print(markdown(w, res["medians"], res["ref"], res["concurrency"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
