"""A small ASGI app for tests that need a server manyget does not ship (HTTP/3 through
hypercorn): ``/bytes/N`` answers the same N bytes as the embedded server's ``/bytes/N``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from manyget._server._resources import bytes_chunks

Scope = dict[str, Any]
Message = dict[str, Any]


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path: str = scope["path"]
    head, _, number = path.rpartition("/")
    if head != "/bytes" or not number.isdigit() or int(number) > 64 << 20:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not found"})
        return
    size = int(number)
    headers = [
        (b"content-length", str(size).encode()),
        (b"content-type", b"application/octet-stream"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    chunks = list(bytes_chunks(size, 0, size))
    for i, chunk in enumerate(chunks):
        await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})
    if not chunks:
        await send({"type": "http.response.body", "body": b""})
