"""A lean HTTP/1.1 client for load: keep-alive connections, one request in flight on each.

The load generator shares two cores with the server and the database, so every microsecond it
spends per request is taken from what it measures. This client does only what our server's
answers need: requests are prebuilt bytes, and an answer is read as a status line, headers
up to the blank line, and a Content-Length body. Anything else is a protocol failure.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from booking_service.bench.records import CLOSED, CONNECT, PROTOCOL, TIMEOUT

_CONTENT_LENGTH = b"\r\ncontent-length:"
_CHUNKED = b"\r\ntransfer-encoding:"
_CLOSE = b"\r\nconnection: close"


class TransportFailure(Exception):
    """A request got no answer: `outcome` is one of the transport outcome codes."""

    def __init__(self, outcome: int, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome


class HttpConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._status = 0
        self._body_start = -1
        self._body_length = 0
        self._closing = False
        self.retry_after = False  # whether the last answer carried a Retry-After header
        self.sent_at = 0.0  # perf_counter() when the request in flight was sent; 0 when idle

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail(TransportFailure(CLOSED, f"connection closed ({exc or 'by the server'})"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._waiter is None:
            self._fail(TransportFailure(PROTOCOL, "data arrived with no request in flight"))
            return
        if self._body_start < 0 and not self._read_head():
            return
        end = self._body_start + self._body_length
        if len(buffer) < end:
            return
        if len(buffer) > end:
            self._fail(TransportFailure(PROTOCOL, "more bytes than Content-Length announced"))
            return
        body = bytes(buffer[self._body_start :])
        buffer.clear()
        self._body_start = -1
        waiter, self._waiter = self._waiter, None
        self.sent_at = 0.0
        if not waiter.done():
            waiter.set_result((self._status, body))
        if self._closing:
            self.close()

    def _read_head(self) -> bool:
        """Parse the status line and headers once they are complete; False until then."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self._buffer[:end]).lower()
        if not head.startswith(b"http/1.1 ") or not head[9:12].isdigit():
            self._fail(TransportFailure(PROTOCOL, f"not an HTTP/1.1 answer: {head[:40]!r}"))
            return False
        at = head.find(_CONTENT_LENGTH)
        if at < 0 or head.find(_CHUNKED) >= 0:
            self._fail(TransportFailure(PROTOCOL, "answer without a Content-Length"))
            return False
        line_end = head.find(b"\r\n", at + 2)
        try:
            self._body_length = int(
                head[at + len(_CONTENT_LENGTH) : line_end if line_end > 0 else None]
            )
        except ValueError:
            self._fail(TransportFailure(PROTOCOL, "unreadable Content-Length"))
            return False
        self._status = int(head[9:12])
        self.retry_after = head.find(b"\r\nretry-after:") >= 0
        self._closing = head.find(_CLOSE) >= 0
        self._body_start = end + 4
        return True

    # Requests

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send one prebuilt request and return (status, body)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            raise TransportFailure(CLOSED, "connection is closed")
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.sent_at = time.perf_counter()
        transport.write(raw)
        return await waiter

    def expire(self) -> None:
        """Give up on the request in flight (the caller's timeout) and drop the connection."""
        self._fail(TransportFailure(TIMEOUT, "no answer in time"))
        self.close()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()
            self._transport = None

    def _fail(self, failure: TransportFailure) -> None:
        self.sent_at = 0.0
        self._buffer.clear()
        self._body_start = -1
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)
        if failure.outcome == PROTOCOL:
            self.close()


async def open_connection(host: str, port: int) -> HttpConnection:
    loop = asyncio.get_running_loop()
    try:
        _, protocol = await loop.create_connection(HttpConnection, host, port)
    except OSError as exc:
        raise TransportFailure(CONNECT, f"cannot connect to {host}:{port}: {exc}") from exc
    return protocol


def build_request(
    method: str, path: str, *, host: str, token: str | None = None, body: bytes | None = None
) -> bytes:
    """The exact bytes of one request, built once and sent as they are."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body is not None else head
