"""A trivial HTTP responder, so the `ceiling` scenario can measure the load generator itself.

It answers every request with the same tiny 200, at a cost close to nothing, in a process of its
own on a free loopback port. What the generator reaches against it (on the same shared cores) is
the most it could ever report against the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import cast

from booking_service.bench.load import new_event_loop

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class _Responder(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        # Requests here have no body: one blank line ends each.
        data = self._pending + data
        count = data.count(b"\r\n\r\n")
        self._pending = data[data.rfind(b"\r\n\r\n") + 4 :] if count else data
        if count and self._transport is not None:
            self._transport.write(ANSWER * count)


async def _serve(port_out: Connection) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Responder, "127.0.0.1", 0, backlog=4096)
    port_out.send(server.sockets[0].getsockname()[1])
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def _responder_process(port_out: Connection) -> None:
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(_serve(port_out))


@contextmanager
def trivial_responder() -> Iterator[int]:
    """Run the responder in a child process for the duration of the block; yields its port."""
    context = multiprocessing.get_context("spawn")
    port_in, port_out = context.Pipe(duplex=False)
    process = context.Process(
        target=_responder_process, args=(port_out,), name="bench-responder", daemon=True
    )
    process.start()
    try:
        if not port_in.poll(30):
            raise RuntimeError("the trivial responder did not start")
        port: int = port_in.recv()
        yield port
    finally:
        process.terminate()
        process.join(timeout=5)
        with contextlib.suppress(ValueError):
            process.close()
