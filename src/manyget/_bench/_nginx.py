"""A private, throw-away nginx on 127.0.0.1 for ``manyget bench --nginx`` and benchmarks/.

The server gets its own prefix directory (config, pid file, error log, temp paths), runs in
the foreground (``daemon off``) as a child of this process with one worker, and is stopped by
its own PID. Nothing outside the temporary directory is touched and no other nginx is
signalled.

Usage::

    with PrivateNginx(root="/dev/shm/data") as srv:
        print(srv.base_url)          # http://127.0.0.1:PORT
        print(srv.worker_cpu())      # user+sys seconds used so far by the worker
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["PrivateNginx", "find_nginx", "free_port", "proc_cpu_seconds"]


def find_nginx() -> str | None:
    """The nginx binary: on PATH, or where Debian puts it (often off a user's PATH)."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


_CONF = """\
{user_line}
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
worker_rlimit_nofile 4096;

events {{
    worker_connections 2048;
}}

http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    server_tokens off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen 127.0.0.1:{port} backlog=1024;
        root {root};
        location / {{ }}
        location /limited/ {{ alias {root}/; limit_rate {rate}; }}
    }}
{extra}}}
"""

# With ``tls=``: the same files over HTTPS with HTTP/2 (ALPN), and over h2c (HTTP/2 in
# clear text, prior knowledge only) on a port of its own.
_TLS_SERVERS = """
    log_format connections '$connection $server_protocol $uri';
    server {{
        access_log {tmp}/tls-access.log connections;
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols {protocols};
        {client}
        root {root};
        location / {{ }}
    }}
    server {{
        listen 127.0.0.1:{h2c_port} http2;
        root {root};
        location / {{ }}
    }}
"""


def free_port() -> int:
    """A currently unused TCP port on 127.0.0.1 (small race with other binders, retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds of one process from /proc (0.0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # fields[0] is state (field 3); utime/stime are fields 14/15 -> indexes 11/12 here.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        for task in task_dir.iterdir():
            text = (task / "children").read_text().split()
            kids.extend(int(x) for x in text)
    except OSError:
        pass
    if kids:
        return kids
    # Fallback: scan /proc for processes whose parent is ``pid``.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry.name))
    return kids


class PrivateNginx:
    """A private nginx serving ``root`` on 127.0.0.1:<free port>."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        startup_timeout: float = 10.0,
        *,
        tls: tuple[Path, Path] | None = None,
        client_ca: Path | None = None,
        protocols: str = "TLSv1.2 TLSv1.3",
        rate: int = 0,
    ) -> None:
        """``tls`` (certificate, key) adds an HTTPS + HTTP/2 port and an h2c port;
        ``client_ca`` makes the HTTPS port require a client certificate it signed."""
        self.root = Path(root).resolve()
        self.startup_timeout = startup_timeout
        self._tls = tls
        self._client_ca = client_ca
        self._protocols = protocols
        self.rate = rate  # bytes a second per request under /limited/ (0: none)
        self.tls_port = 0
        self.h2c_port = 0
        self.tmp: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.worker_pid = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}"

    @property
    def h2c_url(self) -> str:
        return f"http://127.0.0.1:{self.h2c_port}"

    def tls_requests(self) -> list[tuple[str, str, str]]:
        """(connection number, protocol, path) of each request to the HTTPS port so far."""
        assert self.tmp is not None
        log = self.tmp / "tls-access.log"
        if not log.exists():
            return []
        rows = (line.split(" ", 2) for line in log.read_text().splitlines())
        return [(row[0], row[1], row[2]) for row in rows if len(row) == 3]

    def _extra(self) -> str:
        if self._tls is None:
            return ""
        self.tls_port, self.h2c_port = free_port(), free_port()
        client = ""
        if self._client_ca is not None:
            client = f"ssl_client_certificate {self._client_ca}; ssl_verify_client on;"
        cert, key = self._tls
        return _TLS_SERVERS.format(
            tls_port=self.tls_port,
            h2c_port=self.h2c_port,
            cert=cert,
            key=key,
            protocols=self._protocols,
            client=client,
            root=self.root,
            tmp=self.tmp,
        )

    def worker_cpu(self) -> float:
        """CPU seconds (user+sys) consumed so far by the single nginx worker."""
        return proc_cpu_seconds(self.worker_pid) if self.worker_pid else 0.0

    def start(self) -> PrivateNginx:
        self.tmp = Path(tempfile.mkdtemp(prefix="manyget-nginx-"))
        user_line = ""
        if os.geteuid() == 0:
            # As root nginx would drop the worker to "nobody", which cannot read our 0700
            # temp directories; keep the worker as the invoking user instead.
            user_line = f"user {pwd.getpwuid(os.geteuid()).pw_name};"
        last_err = ""
        for _attempt in range(5):
            self.port = free_port()
            conf = self.tmp / "nginx.conf"
            conf.write_text(
                _CONF.format(
                    user_line=user_line,
                    tmp=self.tmp,
                    port=self.port,
                    root=self.root,
                    rate=self.rate,
                    extra=self._extra(),
                )
            )
            log = open(self.tmp / "stderr.log", "wb")  # noqa: SIM115 - closed below
            try:
                self.proc = subprocess.Popen(
                    [
                        find_nginx() or "nginx",
                        "-p",
                        str(self.tmp),
                        "-e",
                        str(self.tmp / "error.log"),
                        "-c",
                        str(conf),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            finally:
                log.close()
            if self._wait_ready():
                kids = _children(self.proc.pid)
                self.worker_pid = kids[0] if kids else 0
                return self
            last_err = (self.tmp / "stderr.log").read_text(errors="replace")
            err_log = self.tmp / "error.log"
            if err_log.exists():
                last_err += err_log.read_text(errors="replace")
            self._stop_proc()
        self._cleanup_tmp()
        raise RuntimeError(f"nginx did not start: {last_err[-2000:]}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(self.base_url + "/", timeout=1.0) as r:
                    r.read()
            except urllib.error.HTTPError:
                return True  # 403/404 on "/" still proves it is serving
            except OSError:
                time.sleep(0.05)
                continue
            return True
        return False

    def _stop_proc(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # the master; it stops its own worker
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self.worker_pid:
            # The worker exits with the master; make sure, by its own PID only.
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and os.path.exists(f"/proc/{self.worker_pid}"):
                time.sleep(0.05)
            self.worker_pid = 0

    def _cleanup_tmp(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def stop(self) -> None:
        try:
            self._stop_proc()
        finally:
            self._cleanup_tmp()

    def __enter__(self) -> PrivateNginx:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
