"""The asyncio HTTP/1.1 server: ``Server`` in a background thread, ``serve`` in the foreground.

Theory of operation
-------------------
Each connection is an ``asyncio.Protocol`` (``_Connection``) with a receive buffer. Requests are
answered strictly in arrival order, which is all HTTP/1.1 pipelining needs, in one of two modes:

* **Inline.** ``data_received`` parses every complete head in the buffer and, as long as each
  answer can be sent at once (no injected delay, a body of at most 64 KiB, the transport not
  paused), renders them and writes them all with a single ``write``. No task, no future: this
  is what makes thousands of small keep-alive requests a second cheap.
* **Pumped.** The first request that needs to wait (a delay, a streamed body, a full socket
  buffer) starts one task, the pump, which answers it and then every request behind it,
  awaiting ``asyncio.sleep`` and the protocol's pause/resume signals as needed. While the pump
  runs, ``data_received`` only buffers (and stops reading once too much is queued). When the
  buffer holds no complete request the pump ends and the connection is inline again.

Back-pressure and limits (``ServerLimits``, see ``_limits``): inline writes go out at least
every 256 KiB, and whenever the transport's buffer is above that mark (``pause_writing``) or
too many unanswered request bytes are buffered, the connection stops reading until the client
catches up. Each connection has one deadline for whichever limit applies: the head of a
request (from its first byte), the idle time between requests, or a client that takes nothing
of an answer; a pump that waits on purpose (a delay, a drip) has none. No timer per
connection: the listener ticks (once a second, or a quarter of the shortest timeout) and
closes whatever is due, so a keep-alive request moves its deadline for one addition.

``_App`` owns the decisions (faults, routing, what to answer), the protocol only moves bytes.
An ``Exchange`` says everything the protocol needs: a head, a body or a stream (optionally one
chunk per ``interval``), whether to close, and whether to end with a TCP reset. A reset after
bytes were sent first waits (briefly, bounded) until the client has acknowledged them, because
a reset throws away whatever the kernel has not delivered yet.

``_Listener`` owns the listening sockets, the accept loop (which stops at the connection cap
and backs off, logging once, when descriptors run out) and the live connections, so that
closing it closes everything; ``Server`` runs one in a private event loop on a daemon thread,
``serve`` runs one on the caller's thread until SIGTERM or Ctrl-C.

TLS (``Server(tls=context)``) is asyncio's own layer between the socket and the protocol, so
the protocol sees the same callbacks and nothing above changes, with three exceptions. A
connection reaches ``connection_made`` (and ``open_connections``) only once its handshake is
done; a handshake still under way (bounded by the header timeout) is a task of the
listener's, which it cancels on close. TLS has no half-close: after the client's EOF the
layer shuts the connection down whatever ``eof_received`` says. And the bytes not yet sent
live in two buffers, the TLS layer's and the TCP transport's below it, which a reset must both
wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import signal
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Callable
from types import TracebackType

from ._fault_routes import FaultRoutes
from ._faults import Faults
from ._http import (
    BadRequest,
    Exchange,
    Request,
    error_exchange,
    find_head_end,
    parse_request,
    resource_exchange,
)
from ._limits import ServerLimits
from ._resources import Reply, Router

__all__ = ["Server", "serve"]

logger = logging.getLogger(__name__)

_BACKLOG = 1024
_ACCEPT_BATCH = 64  # connections accepted per readiness event, as asyncio does
_ACCEPT_BACKOFF = 0.5  # seconds without accepting after running out of descriptors
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_DEFAULT_LIMITS = ServerLimits()
_YIELD_EVERY = 1 << 20  # streamed bytes between turns given to the other connections
_RESET_FLUSH_TIMEOUT = 2.0  # seconds a reset waits for the bytes before it to be acknowledged

if sys.platform == "linux":
    import fcntl
    import termios

    def _unacknowledged(sock: socket.socket) -> int:
        """Bytes in the socket's send queue that the peer has not acknowledged (SIOCOUTQ)."""
        try:
            out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            return 0
        count: int = struct.unpack("i", out)[0]
        return count

else:  # pragma: no cover -- elsewhere a reset may cut the last bytes short

    def _unacknowledged(sock: socket.socket) -> int:
        return 0


class _App:
    """Per-server state: what to answer, and which connections and tasks are alive."""

    def __init__(
        self,
        faults: Faults,
        data_dir: str | os.PathLike[str] | None,
        fault_routes: bool,
        *,
        tls: bool = False,
        limits: ServerLimits = _DEFAULT_LIMITS,
        hidden: bool = False,
    ) -> None:
        self.faults = faults
        self.faults_active = faults.active
        self.rng = faults.rng()
        self.router = Router(data_dir, hidden=hidden)
        self.tls = tls
        self.limits = limits
        self.fault_routes = FaultRoutes(scheme=_scheme(tls)) if fault_routes else None
        self.connections: set[_Connection] = set()
        self.pumps: set[asyncio.Task[None]] = set()
        self.on_close: Callable[[], None] = _nothing  # the listener may accept again
        self.clock = 0.0  # the loop's time at the listener's last tick

    def tick(self, now: float) -> None:
        """Advance the clock and close the connections whose deadline has passed."""
        self.clock = now
        for connection in list(self.connections):
            connection.expire_if_due(now)

    def answer(self, request: Request) -> Exchange:
        delay, failure = self.faults.draw(self.rng) if self.faults_active else (0.0, None)
        limits = self.limits
        path = request.path
        if len(path) + len(request.query) > limits.max_target or (
            len(path) > limits.max_segments  # else it cannot hold that many "/"
            and path.count("/") + path.lower().count("%2f") > limits.max_segments
        ):
            # Before any routing: resolving a huge path would stall every other client.
            return error_exchange(414, request, close=True, delay=delay)
        if failure is not None:
            return error_exchange(failure, request, delay=delay)
        if request.method not in ("GET", "HEAD"):
            return error_exchange(405, request, extra="Allow: GET, HEAD\r\n", delay=delay)
        if self.fault_routes is not None:
            exchange = self.fault_routes.answer(request)
            if exchange is not None:
                if delay:
                    exchange = dataclasses.replace(exchange, delay=exchange.delay + delay)
                return exchange
        target = self.router.route(request)
        if isinstance(target, Reply):
            if target.reset:
                return Exchange(head=b"", reset=True, delay=delay)
            return error_exchange(target.status, request, extra=target.extra, delay=delay)
        return resource_exchange(target, request, delay=delay)


def _nothing() -> None:
    pass


class _Connection(asyncio.Protocol):
    def __init__(self, app: _App) -> None:
        self._app = app
        self._limits = app.limits
        self._high_water = app.limits.write_high_water
        self._max_buffered = app.limits.max_queued - self._high_water
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closing = False
        self._lost = False
        self._eof = False
        self._reading_paused = False
        self._writing_paused = False
        self._writable: asyncio.Future[None] | None = None
        # No timer per connection: the listener's tick (``_App.tick``) compares the deadline
        # with the clock, so moving it on every request costs one addition.
        self._deadline: float | None = None
        self._expiry = "header"  # what the deadline ends: "header", "idle" or "send"

    # -- asyncio callbacks --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=self._high_water)
        self._app.connections.add(self)
        self._arm("header", self._limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._lost = True
        self._deadline = None
        self._app.connections.discard(self)
        if exc is not None:
            logger.debug("manyget server: client connection lost: %s", exc)
        if self._pump is not None:
            self._pump.cancel()
        self._wake_writer()
        self._app.on_close()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._pump is not None:
            self._buffer += data
            self._update_reading()
            return
        begins = not self._buffer and self._expiry == "idle"
        self._buffer += data
        if not self._serve_inline() and begins and not self._closing:
            self._arm("header", self._limits.header_timeout)  # a request began, unfinished

    def eof_received(self) -> bool:
        self._eof = True
        if self._app.tls:
            # TLS has no half-close: asyncio shuts the connection down whatever we answer
            # (and logs a warning if we ask otherwise), so answers still pending are lost.
            self._closing = True
            return False
        # Keep the write side open while the pump still has answers to send.
        return self._pump is not None

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake_writer()
        self._update_reading()

    # -- timeouts -----------------------------------------------------------------------

    def _arm(self, expiry: str, seconds: float) -> None:
        self._expiry = expiry
        self._deadline = self._app.clock + seconds

    def _arm_between_requests(self) -> None:
        if self._buffer:
            self._arm("header", self._limits.header_timeout)
        else:
            self._arm("idle", self._limits.keep_alive_timeout)

    def expire_if_due(self, now: float) -> None:
        """Act on the deadline if it has passed; called on every tick of the listener."""
        deadline = self._deadline
        if deadline is None or now < deadline or self._lost:
            return
        self._deadline = None
        assert self._transport is not None
        transport = self._transport
        unsent = transport.get_write_buffer_size()
        logger.debug("manyget server: %s timeout, closing a client connection", self._expiry)
        if self._expiry == "header" and self._buffer and not unsent and not self._closing:
            error = error_exchange(408, None)
            transport.write(error.head + error.body)
            self._close()
        elif self._expiry != "send" and not unsent and not self._closing:
            self._close()
        else:  # a client that does not read: closing would wait for it forever
            transport.abort()

    # -- answering ----------------------------------------------------------------------

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _close(self) -> None:
        self._closing = True
        transport = self._transport
        if self._lost or transport is None:
            return
        transport.close()
        if transport.get_write_buffer_size():
            # close() flushes first: bound how long a client that does not read can make it wait.
            self._arm("send", self._limits.send_timeout)

    def _write(self, data: bytes) -> bool:
        """Hand ``data`` to the transport; False once the connection is going away.

        Writing to a transport that lost its socket makes asyncio log "socket.send() raised
        exception." for every write after the fifth: stop instead.
        """
        transport = self._transport
        if self._lost or transport is None or transport.is_closing():
            self._closing = True
            return False
        transport.write(data)
        return True

    def _update_reading(self) -> None:
        """Read only while answers flow out and the unanswered requests are few."""
        transport = self._transport
        if transport is None or self._lost:
            return
        pause = self._writing_paused or len(self._buffer) > self._max_buffered
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _next(self) -> Exchange | None:
        """The answer to the next complete request in the buffer, or None."""
        buffer = self._buffer
        while buffer.startswith(b"\r\n"):  # RFC 9112: ignore blank lines before a request
            del buffer[:2]
        if not buffer:
            return None
        try:
            end = find_head_end(buffer)
            if end < 0:
                return None
            head = bytes(buffer[:end])
            del buffer[: end + 4]
            request = parse_request(head)
        except BadRequest as exc:
            buffer.clear()
            return error_exchange(exc.status, None)
        return self._app.answer(request)

    def _serve_inline(self) -> bool:
        """Answer what can be answered at once; False if no request was complete."""
        transport = self._transport
        assert transport is not None
        high_water = self._high_water
        out: list[bytes] = []
        size = 0
        answered = False
        while not self._closing:
            exchange = self._next()
            if exchange is None:
                break
            answered = True
            if exchange.delay or exchange.stream is not None or exchange.reset:
                break
            if self._writing_paused:
                break
            out.append(exchange.head)
            out.append(exchange.body)
            size += len(exchange.head) + len(exchange.body)
            if exchange.close:
                self._closing = True
            if size >= high_water:
                # Write now, so that a client that does not read pauses us (pause_writing)
                # instead of a whole read's worth of pipelined answers piling up.
                transport.write(b"".join(out))
                out.clear()
                size = 0
        else:
            exchange = None
        if out:
            # data_received comes only from a live transport, and nothing here closed it.
            transport.write(b"".join(out))
        if exchange is not None:
            self._start_pump(exchange)
        elif self._closing or self._eof:
            self._close()
        elif answered:  # _arm_between_requests, inline: this runs for every keep-alive read
            if self._buffer:
                self._expiry = "header"
                self._deadline = self._app.clock + self._limits.header_timeout
            else:
                self._expiry = "idle"
                self._deadline = self._app.clock + self._limits.keep_alive_timeout
        return answered

    def _start_pump(self, first: Exchange) -> None:
        self._deadline = None  # busy: delays and streams have their own pace
        pump = asyncio.get_running_loop().create_task(self._run_pump(first))
        self._pump = pump
        self._app.pumps.add(pump)
        pump.add_done_callback(self._app.pumps.discard)

    async def _run_pump(self, first: Exchange) -> None:
        transport = self._transport
        assert transport is not None
        try:
            exchange: Exchange | None = first
            while exchange is not None and not self._closing:
                if not await self._send(transport, exchange):
                    self._close()
                    return
                await self._drain()
                exchange = self._next()
                self._update_reading()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug must cost one connection, not the server; asyncio would only log it late.
            logger.exception("manyget server: connection failed")
            transport.abort()
            return
        finally:
            self._pump = None
        self._update_reading()
        if self._closing:
            return
        if self._eof:
            self._close()
        else:
            self._arm_between_requests()

    async def _send(self, transport: asyncio.Transport, exchange: Exchange) -> bool:
        """Send one exchange; False if the connection must close afterwards."""
        if exchange.delay:
            await asyncio.sleep(exchange.delay)
        data = exchange.head + exchange.body if exchange.body else exchange.head
        if data and not self._write(data):
            return False
        stream = exchange.stream
        complete = True
        if stream is not None:
            sent = unyielded = 0
            try:
                for chunk in stream:
                    if exchange.interval:
                        await asyncio.sleep(exchange.interval)
                    if self._closing or not self._write(chunk):
                        return False
                    sent += len(chunk)
                    unyielded += len(chunk)
                    if unyielded >= _YIELD_EVERY:
                        # A client that keeps up never pauses us: let other connections in.
                        unyielded = 0
                        await asyncio.sleep(0)
                    await self._drain()
            finally:
                stream.close()
            # A body that came up short: closing is the only honest signal.
            complete = sent == exchange.length
        if exchange.reset:
            await self._reset(transport, flush=bool(data) or stream is not None)
            return False
        return complete and not exchange.close

    async def _reset(self, transport: asyncio.Transport, *, flush: bool) -> None:
        """Abort with a TCP RST, after the client acknowledged what was sent if ``flush``."""
        sock = transport.get_extra_info("socket")
        if flush:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + _RESET_FLUSH_TIMEOUT
            while not self._closing and loop.time() < deadline:
                if not _unsent(transport) and (sock is None or not _unacknowledged(sock)):
                    break
                await asyncio.sleep(0.002)
        if sock is not None and not self._closing:
            # SO_LINGER with a zero timeout turns close() into a TCP RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def _drain(self) -> None:
        if self._writing_paused and not self._closing:
            self._arm("send", self._limits.send_timeout)
            self._writable = asyncio.get_running_loop().create_future()
            await self._writable
            self._writable = None
            self._deadline = None


def _unsent(transport: asyncio.Transport) -> int:
    """Bytes written to ``transport`` that the kernel has not taken yet.

    Under TLS ``transport`` is asyncio's TLS layer, whose buffer size leaves out the TCP
    transport beneath it, and asyncio offers no public way down to that one. So we look, and
    should the private attribute ever go away, count the TLS layer only: a reset may then
    come a little early after a large body, never late.
    """
    size = transport.get_write_buffer_size()
    below = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    if isinstance(below, asyncio.WriteTransport):
        size += below.get_write_buffer_size()
    return size


class _Listener:
    """Listening sockets, their accept loop, and the app; ``aclose`` shuts everything down.

    The accept loop is ours rather than ``loop.create_server``'s so that it can stop at the
    connection cap (the kernel's backlog holds the next clients until a connection closes)
    and back off quietly when the process runs out of descriptors: one warning, then a pause,
    instead of an error with a traceback for every attempt.
    """

    def __init__(
        self,
        sockets: list[socket.socket],
        app: _App,
        tls: ssl.SSLContext | None,
        address: tuple[str, int],
    ) -> None:
        self._sockets = sockets
        self._app = app
        self._tls = tls
        self._loop = asyncio.get_running_loop()
        self._cap = app.limits.connection_cap()
        self._accepting = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        self._warned = False
        self._handshakes: set[asyncio.Task[None]] = set()
        self.host, self.port = address
        app.on_close = self._resume_accepting
        app.clock = self._loop.time()
        self._ticker = self._loop.call_later(app.limits.tick, self._tick)
        self._resume_accepting()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        faults: Faults,
        data_dir: str | os.PathLike[str] | None,
        fault_routes: bool,
        *,
        tls: ssl.SSLContext | None = None,
        limits: ServerLimits = _DEFAULT_LIMITS,
        hidden: bool = False,
    ) -> _Listener:
        app = _App(
            faults, data_dir, fault_routes, tls=tls is not None, limits=limits, hidden=hidden
        )
        sockets = _bind(host, port)
        try:
            for sock in sockets:
                sock.listen(_BACKLOG)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        address = sockets[0].getsockname()
        return cls(sockets, app, tls, (address[0], address[1]))

    @property
    def url(self) -> str:
        return _url(_scheme(self._app.tls), self.host, self.port)

    @property
    def open_connections(self) -> int:
        return len(self._app.connections)

    def _tick(self) -> None:
        self._app.tick(self._loop.time())
        self._ticker = self._loop.call_later(self._app.limits.tick, self._tick)

    def _in_use(self) -> int:
        return len(self._app.connections) + len(self._handshakes)

    def _resume_accepting(self) -> None:
        if self._accepting or self._closed or self._retry is not None:
            return
        if self._in_use() >= self._cap:
            return
        self._accepting = True
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _pause_accepting(self) -> None:
        if self._accepting:
            self._accepting = False
            for sock in self._sockets:
                self._loop.remove_reader(sock.fileno())

    def _after_backoff(self) -> None:
        self._retry = None
        self._resume_accepting()

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(_ACCEPT_BATCH):
            if self._in_use() >= self._cap:
                self._pause_accepting()
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    logger.debug("manyget server: accept failed: %s", exc)
                    continue  # that client gave up already (ECONNABORTED and the like)
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "manyget server: cannot accept connections (%s); pausing %.1f s "
                        "each time this happens (logged once)",
                        exc.strerror,
                        _ACCEPT_BACKOFF,
                    )
                else:
                    logger.debug("manyget server: accept failed: %s", exc)
                self._pause_accepting()
                self._retry = self._loop.call_later(_ACCEPT_BACKOFF, self._after_backoff)
                return
            self._admit(conn)

    def _admit(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        handshake = self._loop.create_task(self._connect(conn), name="manyget-server-accept")
        self._handshakes.add(handshake)
        handshake.add_done_callback(self._handshake_done)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            if self._tls is None:
                await self._loop.connect_accepted_socket(lambda: _Connection(self._app), conn)
            else:
                await self._loop.connect_accepted_socket(
                    lambda: _Connection(self._app),
                    conn,
                    ssl=self._tls,
                    ssl_handshake_timeout=self._app.limits.header_timeout,
                )
        except asyncio.CancelledError:
            conn.close()
            raise
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            logger.debug("manyget server: connection setup failed: %s", exc)
            conn.close()

    def _handshake_done(self, task: asyncio.Task[None]) -> None:
        self._handshakes.discard(task)
        self._resume_accepting()

    async def aclose(self) -> None:
        self._closed = True
        self._ticker.cancel()
        self._pause_accepting()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self._sockets:
            sock.close()
        for connection in list(self._app.connections):
            connection.abort()
        for task in [*self._app.pumps, *self._handshakes]:
            task.cancel()
        await asyncio.gather(*self._app.pumps, *self._handshakes, return_exceptions=True)


def _bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address of ``host``, all on the same port.

    asyncio's own ``create_server(host, 0)`` would give each address family its own random
    port; we bind the first address, then the others on the port it got.
    """
    infos = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    addresses = list(dict.fromkeys((info[0], info[4]) for info in infos))
    sockets: list[socket.socket] = []
    chosen = port
    try:
        for family, address in addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            if os.name == "posix":
                # Restarting on a port whose old connections linger in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], chosen, *address[2:]))
            chosen = sock.getsockname()[1]
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _scheme(tls: bool) -> str:
    return "https" if tls else "http"


def _url(scheme: str, host: str, port: int) -> str:
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class Server:
    """The flag server on a daemon thread with its own event loop; for tests and embedding.

    ``start`` returns once the socket listens (raising ``OSError`` if it cannot bind) and
    ``stop`` closes the listener and every connection; both are thread-safe, ``stop`` is
    idempotent and a stopped server cannot be restarted. Because the loop is private, a
    ``Server`` works from code that runs its own event loop (``start`` blocks it only for
    the bind). ``port=0`` picks a free port: read it back from ``port`` or ``url``.

    The fault routes under ``/faults/`` (see ``_fault_routes``) are on unless
    ``fault_routes=False``: a ``Server`` is first of all a test fixture.

    ``tls`` is a server-side ``ssl.SSLContext`` (``tls_context`` makes one, and
    ``make_test_certificate`` a certificate for it): the server then speaks HTTPS only, and
    ``url`` starts with ``https://``. ``open_connections`` counts a TLS connection from the end
    of its handshake.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        faults: Faults = Faults(),  # noqa: B008 -- frozen value object, safe to share
        data_dir: str | os.PathLike[str] | None = None,
        fault_routes: bool = True,
        tls: ssl.SSLContext | None = None,
        limits: ServerLimits = _DEFAULT_LIMITS,
        hidden: bool = False,
    ) -> None:
        if data_dir is not None and not os.path.isdir(data_dir):
            raise NotADirectoryError(f"data directory not found: {os.fspath(data_dir)!r}")
        if tls is not None and tls.protocol == ssl.PROTOCOL_TLS_CLIENT:
            # Otherwise every handshake would fail, each with its own logged error.
            raise ValueError("tls must be a server-side context, not PROTOCOL_TLS_CLIENT")
        self._host = host
        self._port = port
        self._faults = faults
        self._data_dir = data_dir
        self._fault_routes = fault_routes
        self._tls = tls
        self._limits = limits
        self._hidden = hidden
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: _Listener | None = None
        self._stopped = False

    def __repr__(self) -> str:
        if self._listener is not None:
            where = self.url
        else:
            where = f"{_scheme(self._tls is not None)}://{self._host}:{self._port}"
        state = "stopped" if self._stopped else "running" if self._listener else "new"
        return f"<Server {where} {state} faults={self._faults!r}>"

    def start(self) -> Server:
        """Bind and start serving; returns ``self`` once listening."""
        with self._lock:
            if self._thread is not None or self._stopped:
                raise RuntimeError("a Server can only be started once")
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._run, args=(ready, failure), name="manyget-server", daemon=True
            )
            self._thread = thread
            thread.start()
            ready.wait()
            if failure:
                thread.join()
                self._stopped = True
                raise failure[0]
            return self

    def stop(self) -> None:
        """Close the listener and all connections and join the thread; safe to repeat."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is not None and thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop already died and closed
                loop.call_soon_threadsafe(loop.stop)
            thread.join()

    def __enter__(self) -> Server:
        """Start the server unless ``start`` was already called."""
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        try:
            try:
                listener = loop.run_until_complete(
                    _Listener.open(
                        self._host,
                        self._port,
                        self._faults,
                        self._data_dir,
                        self._fault_routes,
                        tls=self._tls,
                        limits=self._limits,
                        hidden=self._hidden,
                    )
                )
            except BaseException as exc:  # handed to start() in the caller's thread
                failure.append(exc)
                return
            self._listener = listener
            self._loop = loop
            ready.set()
            loop.run_forever()
            loop.run_until_complete(listener.aclose())
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            ready.set()
            loop.close()

    def _require_listener(self) -> _Listener:
        if self._listener is None:
            raise RuntimeError("the server is not started")
        return self._listener

    @property
    def host(self) -> str:
        """The address actually bound (the first one, if the host name had several)."""
        return self._require_listener().host

    @property
    def port(self) -> int:
        """The port actually bound."""
        return self._require_listener().port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8001``, ``http://[::1]:8001`` (``https`` with TLS)."""
        return self._require_listener().url

    @property
    def flags_url(self) -> str:
        """Base URL of the flags, as the book's clients expect: ``url + "/flags"``."""
        return self.url + "/flags"

    @property
    def faults(self) -> Faults:
        return self._faults

    @property
    def open_connections(self) -> int:
        """Client connections open right now (a snapshot; for tests that a client hung up)."""
        return self._require_listener().open_connections


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await the tasks left on the loop, as ``asyncio.run`` does before it closes.

    On a ``Server``'s loop these are asyncio's own: accepted connections whose TLS handshake
    is still under way (cancelling one closes its socket), so that none outlives ``stop``.
    """
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    # Closed transports finish in callbacks scheduled by the cancellations: let them run.
    loop.run_until_complete(asyncio.sleep(0))


def serve(
    host: str = "127.0.0.1",
    port: int = 8001,
    *,
    faults: Faults = Faults(),  # noqa: B008 -- frozen value object, safe to share
    data_dir: str | os.PathLike[str] | None = None,
    on_ready: Callable[[str], None] | None = None,
    fault_routes: bool = False,
    limits: ServerLimits = _DEFAULT_LIMITS,
    hidden: bool = False,
) -> None:
    """Serve in the foreground until SIGTERM (returns) or Ctrl-C (raises KeyboardInterrupt).

    ``on_ready`` receives the base URL once the socket listens. Bind errors raise ``OSError``.
    The SIGTERM handler is installed only when called from the main thread, and removed on exit.
    ``fault_routes=True`` adds the routes under ``/faults/`` (``manyget serve --faults``); they
    include an open redirect, so keep such a server on loopback. ``limits`` bounds what each
    client may take (``ServerLimits``); ``hidden=True`` serves dotfiles under ``data_dir``.
    """
    asyncio.run(_serve(host, port, faults, data_dir, on_ready, fault_routes, limits, hidden))


async def _serve(
    host: str,
    port: int,
    faults: Faults,
    data_dir: str | os.PathLike[str] | None,
    on_ready: Callable[[str], None] | None,
    fault_routes: bool,
    limits: ServerLimits,
    hidden: bool,
) -> None:
    listener = await _Listener.open(
        host, port, faults, data_dir, fault_routes, limits=limits, hidden=hidden
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handles_sigterm = False
    try:
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):  # e.g. Windows
                loop.add_signal_handler(signal.SIGTERM, stop.set)
                handles_sigterm = True
        if on_ready is not None:
            on_ready(listener.url)
        await stop.wait()
    finally:
        if handles_sigterm:
            loop.remove_signal_handler(signal.SIGTERM)
        await listener.aclose()
