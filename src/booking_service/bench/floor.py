"""The `floor` server: floor_app on uvicorn with a given number of workers, started by the bench.

It runs as `python -m uvicorn` in a process group of its own, on a free loopback port, with the
options `booking-service serve` passes (no access log, no server header, no proxy headers), and
is stopped as soon as its load is done, so it never shares the cores with the server under test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from booking_service.bench.load import SetupFailed

FLOOR_APP = "booking_service.bench.floor_app:app"
STARTED = "Application startup complete"  # uvicorn logs it once per worker


@dataclass(frozen=True)
class FloorServer:
    port: int
    pid: int  # uvicorn's main process (with several workers, their supervisor)
    workers: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def floor_server(workers: int, timeout: float = 60.0) -> Iterator[FloorServer]:
    """The floor served for the duration of the block, every worker started."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", FLOOR_APP, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--log-level", "info"]
    command += ["--no-access-log", "--no-server-header", "--no-proxy-headers"]
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as directory:
        # Its output goes to a file: a pipe nobody reads could fill up and stall the server.
        log_path = Path(directory) / "floor.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait_for_workers(process, log_path, workers, timeout)
            yield FloorServer(port, process.pid, workers)
        finally:
            _stop(process)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_workers(
    process: subprocess.Popen[bytes], log_path: Path, workers: int, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        output = log_path.read_text(encoding="utf-8", errors="replace")
        if output.count(STARTED) >= workers:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise SetupFailed(f"the floor server did not start:\n{output[-2000:]}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to uvicorn, which stops its workers; SIGKILL to the whole group if it lingers."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
