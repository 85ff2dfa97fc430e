"""A TCP proxy that holds every chunk for a fixed time each way: a server "further away".

These machines have no netem (`tc` answers "unknown qdisc"), so to measure the service with its
Redis (or anything) about a millisecond away, put this in front of the server and point the
client at it. Each direction of each connection has a reader and a writer thread: the reader
stamps every chunk with its due time, the writer sleeps until then and sends it on. Threads
with `time.sleep` keep each chunk to a fraction of a millisecond; event-loop timers would round
up to about a millisecond. Order is kept, and so is a half-close: when one side stops sending,
the other side sees its end of stream after the same delay.

    python -m booking_service.bench.delay_proxy --target 127.0.0.1:6379 --listen 127.0.0.1:6390 \\
        --round-trip-ms 1
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType

CHUNK_BYTES = 65536


class DelayProxy:
    """Listens on `listen` (port 0: any free one) and relays to `target`, each way after
    `round_trip_seconds / 2`."""

    def __init__(
        self,
        target: tuple[str, int],
        round_trip_seconds: float,
        listen: tuple[str, int] = ("127.0.0.1", 0),
    ) -> None:
        if round_trip_seconds < 0:
            raise ValueError("the round trip cannot be negative")
        self.target = target
        self.delay = round_trip_seconds / 2
        self._listener = socket.create_server(listen, backlog=128)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name="delay-proxy", daemon=True)

    @property
    def port(self) -> int:
        return self.address[1]

    def start(self) -> DelayProxy:
        self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)  # the target is down: so is the proxy, for this client
                continue
            server.settimeout(None)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._closed:
                    _close(client)
                    _close(server)
                    return
                self._sockets |= {client, server}
            pair = _Pair(client, server, self._forget)
            for source, sink in ((client, server), (server, client)):
                _Direction(source, sink, self.delay, pair).start()

    def _forget(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.difference_update(sockets)
        for sock in sockets:
            _close(sock)


class _Pair:
    """The two sockets of one relayed connection, closed once both directions have ended."""

    def __init__(
        self, client: socket.socket, server: socket.socket, forget: Callable[..., None]
    ) -> None:
        self._sockets = (client, server)
        self._open_directions = 2
        self._lock = threading.Lock()
        self._forget = forget

    def direction_ended(self) -> None:
        with self._lock:
            self._open_directions -= 1
            done = self._open_directions == 0
        if done:
            self._forget(*self._sockets)

    def abort(self) -> None:
        self._forget(*self._sockets)


class _Direction:
    """One way of one connection: chunks read from `source`, sent to `sink` when due."""

    def __init__(
        self, source: socket.socket, sink: socket.socket, delay: float, pair: _Pair
    ) -> None:
        self._source, self._sink, self._delay, self._pair = source, sink, delay, pair
        self._chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

    def start(self) -> None:
        threading.Thread(target=self._read, name="delay-proxy-read", daemon=True).start()
        threading.Thread(target=self._write, name="delay-proxy-write", daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self._source.recv(CHUNK_BYTES)
            except OSError:
                data = b""
            self._chunks.put((time.monotonic() + self._delay, data))
            if not data:  # end of stream (or the socket failed): pass it on when due
                return

    def _write(self) -> None:
        while True:
            due, data = self._chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                if not data:
                    self._sink.shutdown(socket.SHUT_WR)
                    self._pair.direction_ended()
                    return
                self._sink.sendall(data)
            except OSError:
                self._pair.abort()  # the other side is gone: cut this connection
                return


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m booking_service.bench.delay_proxy",
        description="Relay TCP connections to --target, holding each chunk half of "
        "--round-trip-ms each way.",
    )
    parser.add_argument("--target", type=_address, required=True, help="host:port to relay to")
    parser.add_argument(
        "--listen", type=_address, default=("127.0.0.1", 0), help="host:port (default: any port)"
    )
    parser.add_argument("--round-trip-ms", type=float, default=1.0, help="added round trip")
    args = parser.parse_args(argv)
    with DelayProxy(args.target, args.round_trip_ms / 1000, args.listen) as proxy:
        host, port = proxy.address
        print(
            f"relaying {host}:{port} -> {args.target[0]}:{args.target[1]}, "
            f"+{args.round_trip_ms:g} ms per round trip",
            flush=True,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while not stop.wait(1):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
