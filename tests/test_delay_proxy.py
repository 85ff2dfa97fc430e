"""The delaying TCP proxy of the bench (bench/delay_proxy.py): what it relays, and how late."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from booking_service.bench.delay_proxy import DelayProxy, main


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """Echoes every byte back; closes its side once the client has closed its own."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[:2]
    listener.close()


def _round_trip(sock: socket.socket, payload: bytes) -> float:
    started = time.perf_counter()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        received += sock.recv(65536)
    assert received == payload
    return time.perf_counter() - started


def test_every_round_trip_takes_at_least_the_delay(echo_server: tuple[str, int]) -> None:
    with DelayProxy(echo_server, 0.02) as proxy, socket.create_connection(proxy.address) as sock:
        trips = sorted(_round_trip(sock, b"PING\r\n") for _ in range(10))
    assert trips[0] >= 0.02, trips
    # Loose above (a shared machine), but one delay per round trip, not one per chunk or hop.
    assert trips[len(trips) // 2] < 0.04, trips


def test_bytes_arrive_intact_in_order_and_the_end_is_passed_on(
    echo_server: tuple[str, int],
) -> None:
    payload = os.urandom(3 * 1024 * 1024)
    with DelayProxy(echo_server, 0.002) as proxy, socket.create_connection(proxy.address) as sock:
        received = bytearray()

        def read_all() -> None:
            while data := sock.recv(65536):
                received.extend(data)

        reader = threading.Thread(target=read_all)
        reader.start()
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # the echo server then closes: EOF comes back through
        reader.join(timeout=30)
        assert not reader.is_alive(), "the end of stream was not passed on"
    assert bytes(received) == payload


def test_a_target_that_is_down_closes_the_client(echo_server: tuple[str, int]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nobody = unused.getsockname()[:2]
    with DelayProxy(nobody, 0.001) as proxy, socket.create_connection(proxy.address) as sock:
        sock.settimeout(5)
        assert sock.recv(1) == b""


def test_closing_the_proxy_cuts_its_connections(echo_server: tuple[str, int]) -> None:
    proxy = DelayProxy(echo_server, 0.0).start()
    with socket.create_connection(proxy.address) as sock:
        _round_trip(sock, b"hello")
        proxy.close()
        sock.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""


def test_the_command_refuses_a_bad_address() -> None:
    with pytest.raises(SystemExit):
        main(["--target", "no-port-here"])


def test_the_command_relays_until_terminated(echo_server: tuple[str, int]) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    target = f"{echo_server[0]}:{echo_server[1]}"
    command = [sys.executable, "-m", "booking_service.bench.delay_proxy", "--target", target]
    command += ["--listen", f"127.0.0.1:{port}", "--round-trip-ms", "5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert f"relaying 127.0.0.1:{port} -> {target}, +5 ms" in process.stdout.readline()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            assert _round_trip(sock, b"PING\r\n") >= 0.005
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
