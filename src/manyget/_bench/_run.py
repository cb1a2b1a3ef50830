"""Running ``manyget bench``: servers, data, measured runs, verification.

Theory of operation. For each scenario the bench generates its files once (into a tmpfs
when there is one), starts one loopback server for the whole scenario (the embedded server
in its own process, or a private nginx), then runs every contender strictly one at a time,
rotating the order each round so that drift in the machine spreads evenly. A run is one
whole process timed from spawn to exit. Its CPU is what ``time`` would say: the user and
system seconds of the process and of every process it waited for (the processes engine
joins its workers). Each run first waits (briefly, boundedly) for the machine to go quiet;
the machine's busy time over the run (from /proc/stat), less the contender's and the
server's (from /proc/PID/stat), is kept as ``other``, and a run where it reaches a third
of a core is marked noisy. After each run the output folder is
checked file by file (name, size, SHA-256) and emptied. Each contender first runs once
unrecorded, to warm caches; Python contenders run with bytecode caching allowed even when
``PYTHONDONTWRITEBYTECODE`` is set, as an installed package has its bytecode.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .._exceptions import DestinationError, ServerError
from ._contenders import Contender
from ._nginx import PrivateNginx, proc_cpu_seconds
from ._scenarios import MIB, Expected, Scenario, contents, expect, expected

__all__ = ["Run", "ScenarioRuns", "cpu_busy_seconds", "run_scenario", "wait_quiet"]

SERVER_START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Run:
    """One measured run of one contender."""

    wall: float
    cpu: float  # user + system seconds of the contender and the processes it waited for
    exit_status: int
    files: int  # files that match what was expected
    nbytes: int  # bytes in those files
    problem: str  # empty when the run left exactly the expected files
    other: float = 0.0  # CPU the machine spent meanwhile beyond contender and server

    @property
    def noisy(self) -> bool:
        """Whether something else used a third of a core or more during the run."""
        return self.other > 0.33 * self.wall + 0.02

    @property
    def complete(self) -> bool:
        return not self.problem


@dataclass
class ScenarioRuns:
    """Everything measured for one scenario."""

    scenario: Scenario
    server: str
    total_bytes: int
    limit: float | None
    limit_how: str
    runs: dict[str, list[Run]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # contender -> why it did not run
    peers: set[str] = field(default_factory=set)


def cpu_busy_seconds() -> float:
    """The machine's busy CPU seconds so far, all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait: float, busy_cores: float = 0.3, window: float = 0.25) -> None:
    """Wait, at most ``max_wait`` seconds, for the machine to use under ``busy_cores``."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        before = cpu_busy_seconds()
        time.sleep(window)
        if (cpu_busy_seconds() - before) / window < busy_cores:
            return


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Served:
    base_url: str
    pids: tuple[int, ...]  # whose CPU is the server's
    name: str


@contextlib.contextmanager
def embedded_server(delay: float, data: Path | None) -> Iterator[Served]:
    """``manyget serve`` in its own process, on a free loopback port."""
    cmd = [sys.executable, "-m", "manyget", "serve", "--port", "0", "--delay", str(delay)]
    if data is not None:
        cmd += ["--data", str(data)]
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, text=True
        )
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT
            match = None
            while match is None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
                log.seek(0)
                match = re.search(r"http://\S+", log.read())
            if match is None:
                log.seek(0)
                last = (log.read().strip().splitlines() or ["no output"])[-1]
                raise ServerError(f"the embedded server did not start: {last}")
            yield Served(match.group(0), (proc.pid,), "embedded server (manyget serve)")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextlib.contextmanager
def nginx_server(data: Path, rate: int = 0) -> Iterator[Served]:
    nginx = PrivateNginx(data, rate=rate)
    try:
        nginx.start()
    except (RuntimeError, OSError) as exc:
        text = str(exc).removeprefix("nginx did not start:").strip()
        last = (text.splitlines() or [type(exc).__name__])[-1]
        raise ServerError(f"nginx did not start: {last}") from exc
    try:
        pids = (nginx.worker_pid,) if nginx.worker_pid else ()
        yield Served(nginx.base_url, pids, "nginx (1 worker, sendfile)")
    finally:
        nginx.stop()


def write_files(scenario: Scenario, root: Path) -> list[Expected]:
    """Write the files to serve; what each must be, from the very bytes written."""
    want = []
    for name, body in contents(scenario):
        (root / name).write_bytes(body)
        want.append(expect(name, body))
    return want


# --------------------------------------------------------------------------- one run


def verify(out: Path, want: Sequence[Expected]) -> tuple[int, int, str]:
    """How many expected files ``out`` holds intact, their bytes, and what is wrong."""
    good = nbytes = 0
    wrong: list[str] = []
    for item in want:
        path = out / item.name
        try:
            with open(path, "rb") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            size = os.path.getsize(path)
        except OSError:
            continue
        if size == item.size and digest == item.sha256:
            good += 1
            nbytes += size
        else:
            wrong.append(item.name)
    problems = []
    if good < len(want):
        problems.append(f"{good}/{len(want)} files intact")
    if wrong:
        problems.append(f"{len(wrong)} with wrong content")
    names = {item.name for item in want}
    extra = sum(1 for entry in os.scandir(out) if entry.name not in names)
    if extra:
        problems.append(f"{extra} unexpected files")
    return good, nbytes, ", ".join(problems)


def run_once(
    contender: Contender,
    urls: Sequence[str],
    want: Sequence[Expected],
    served: Served,
    tmp: Path,
    timeout: float,
) -> Run:
    work = Path(tempfile.mkdtemp(prefix="run-", dir=tmp))
    keep = False  # left for the bench's own clean-up at the very end
    try:
        out = work / "out"
        out.mkdir()
        cmd = contender.command(urls, [w.name for w in want], work)
        env = dict(os.environ)
        # Python contenders run with their bytecode cached, as an installed package has it.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(contender.environment())
        wait_quiet(3.0)
        busy0 = cpu_busy_seconds()
        own0 = _children_cpu()
        server0 = sum(proc_cpu_seconds(pid) for pid in served.pids)
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=timeout,
                check=False,
                env=env,
            )
            status, err = proc.returncode, proc.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            status, err = -1, f"timed out after {timeout:g} s"
        wall = time.perf_counter() - start
        server = sum(proc_cpu_seconds(pid) for pid in served.pids) - server0
        cpu = _children_cpu() - own0
        other = max(0.0, cpu_busy_seconds() - busy0 - server - cpu)
        good, nbytes, problem = verify(out, want)
        if status != 0:
            last = err.strip().splitlines()[-1:] or [""]
            problem = "; ".join(p for p in (problem, f"exit {status} {last[0][:80]}") if p)
        keep = nbytes < KEEP_UNDER
        return Run(wall, cpu, status, good, nbytes, problem, other)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
            os.sync()  # the deletions (and a disk's discards) are not the next contender's cost


# Runs of many small files are removed only when the bench ends: on ext4, files created
# just after thousands were deleted cost several times more CPU (the inode allocator
# skips each recently deleted inode, reading the inode table), so the next contender
# would pay for this one's clean-up. Runs of a few big files are removed at once.
KEEP_UNDER = 256 << 20


# --------------------------------------------------------------------------- the limit


def _read_discarding(url: str, first: int = 0, last: int = -1) -> int:
    """GET ``url`` over a raw socket (bytes ``first`` to ``last`` with ``last`` >= 0) and
    throw the body away; the bytes read, head included. A range must come back as a 206
    of exactly its length (ServerError otherwise: the limit would be wrong)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    ranged = f"Range: bytes={first}-{last}\r\n" if last >= 0 else ""
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {host}\r\n{ranged}Connection: close\r\n\r\n"
    total = 0
    view = memoryview(bytearray(1 << 20))
    head = b""
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(request.encode())
        while n := sock.recv_into(view):
            if total < 65536 and b"\r\n\r\n" not in head:
                head += view[:n].tobytes()
            total += n
    if last >= 0:
        status = head[9:12]
        body = total - (head.find(b"\r\n\r\n") + 4)
        if status != b"206" or body != last - first + 1:
            raise ServerError(
                f"{url}: bytes {first}-{last} came back as HTTP {status.decode(errors='replace')}"
                f" with {body:,} bytes"
            )
    return total


def probe_limit(urls: Sequence[str], concurrency: int, rounds: int) -> float:
    """The fastest of ``rounds`` reads of every URL, bodies discarded, nothing written:
    what loopback and the server allow before any downloader does its work."""
    best = float("inf")
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(rounds):
            start = time.perf_counter()
            list(pool.map(_read_discarding, urls))
            best = min(best, time.perf_counter() - start)
    return best


def probe_ranges(url: str, size: int, split: int, rounds: int) -> float:
    """The fastest of ``rounds`` reads of ``url`` as ``split`` equal byte ranges at once,
    bodies discarded: what a per-connection cap, loopback and the server allow ``split``
    connections, before any downloader does its work (above the cap's paper figure by
    the server's own pacing and the connections' start)."""
    step = -(-size // split)
    ranges = [(url, a, min(size, a + step) - 1) for a in range(0, size, step)]
    best = float("inf")
    with ThreadPoolExecutor(len(ranges)) as pool:
        for _ in range(rounds):
            start = time.perf_counter()
            list(pool.map(lambda r: _read_discarding(*r), ranges))
            best = min(best, time.perf_counter() - start)
    return best


# --------------------------------------------------------------------------- a scenario


def run_scenario(
    scenario: Scenario,
    contenders: Sequence[Contender],
    *,
    rounds: int,
    use_nginx: bool,
    tmp: Path,
    timeout: float,
    say: Callable[[str], None],
) -> ScenarioRuns:
    """Measure ``contenders`` on ``scenario``, ``rounds`` times each, one at a time."""
    size = max(scenario.sizes, default=0)
    ready = [c.at(scenario.concurrency, scenario.split, size) for c in contenders if not c.missing]
    with contextlib.ExitStack() as stack:
        data = None
        if scenario.is_flags:
            want = expected(scenario)
        else:
            data = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=tmp)))
            say(f"{scenario.name}: writing {scenario.files:,} files to serve")
            try:
                want = write_files(scenario, data)
            except OSError as exc:
                raise DestinationError(
                    f"cannot write the files to serve under {str(tmp)!r}: {exc.strerror or exc}"
                ) from exc
        if scenario.rate and not use_nginx:
            raise ServerError(f"{scenario.name} caps each connection with nginx: add --nginx")
        if use_nginx and scenario.nginx_ok and data is not None:
            served = stack.enter_context(nginx_server(data, scenario.rate))
        else:
            served = stack.enter_context(embedded_server(scenario.delay, data))
        urls = [served.base_url + path for path in scenario.paths()]
        total = sum(w.size for w in want)
        limit, how = scenario.limit(), "latency rounds"
        if limit is None and scenario.sizes and min(scenario.sizes) >= (1 << 20):
            bare = [u.replace("/limited/", "/", 1) for u in urls]  # the loopback limit
            limit = probe_limit(bare, scenario.concurrency, rounds=max(3, rounds))
            how = "fastest raw read, bodies discarded"
            paper = scenario.paper_limit()
            if paper is not None:  # a cap per connection: read it as the split would
                capped = probe_ranges(urls[0], size, scenario.split, max(3, rounds))
                ranges = f"{scenario.split} ranges at once through the cap"
                if capped > limit:
                    limit = capped
                    how = f"fastest raw read as {ranges}, bodies discarded"
                else:
                    how += f"; {ranges}: {capped:.2f} s"
                how += f"; on paper {paper:.2f} s ({scenario.rate / MIB:g} MiB/s each)"
        if limit is None:
            how = ""
        result = ScenarioRuns(scenario, served.name, total, limit, how)
        result.missing = {c.name: c.missing for c in contenders if c.missing}
        result.peers = {c.name for c in contenders if c.peer}
        for c in ready:
            result.runs[c.name] = []
        for contender in ready:  # warm-up, not recorded: caches, bytecode, connections
            run_once(contender, urls, want, served, tmp, timeout)
        for r in range(rounds):
            order = ready[r % len(ready) :] + ready[: r % len(ready)] if ready else []
            for contender in order:
                run = run_once(contender, urls, want, served, tmp, timeout)
                result.runs[contender.name].append(run)
                mark = "" if run.complete else f"  INCOMPLETE: {run.problem}"
                say(
                    f"{scenario.name} round {r + 1}/{rounds}: {contender.name:<18} "
                    f"{run.wall:7.2f} s  cpu {run.cpu:6.2f} s{mark}"
                )
    return result
