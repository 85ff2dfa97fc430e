"""`booking-service serve` as a real process, as a user or an orchestrator runs it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.databases import create_mariadb_database
from tests.support.environment import require_mariadb
from tests.support.settings import clean_env

# The installed command, as a user runs it.
BOOKING_SERVICE = str(Path(sys.executable).with_name("booking-service"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A real `booking-service serve` process. Its output goes to `log_path`: a file, since a
    pipe nobody reads could fill up and stall the server."""

    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def json_lines(self) -> list[dict[str, Any]]:
        """Every output line parsed: in production every line is JSON, uvicorn's included."""
        return [json.loads(line) for line in self.output().splitlines()]

    def access_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.json_lines() if line["logger"] == "booking_service.access"]

    def metrics_dir(self) -> Path:
        """The directory serve made for the workers' metrics, as it logged it."""
        for line in self.json_lines():
            if match := re.search(r"share their metrics through (\S+)", line["message"]):
                return Path(match.group(1))
        raise AssertionError("serve names the directory the workers share their metrics through")

    def wait_for_lines(self, matches: Callable[[str], bool], count: int, timeout: float) -> None:
        """Block until `count` output lines satisfy `matches`."""
        deadline = time.monotonic() + timeout
        while sum(1 for line in self.output().splitlines() if matches(line)) < count:
            assert time.monotonic() < deadline, (
                f"expected output did not come; output so far:\n{self.output()}"
            )
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as an orchestrator stops it; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the server and its workers: killing only the supervisor would orphan the
        workers, still holding their database connections. It runs in a session of its own,
        so its process group is exactly what this test started."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def start_server(
    workdir: Path, *, workers: int = 1, timeout: float = 60, **settings: str
) -> ServerProcess:
    """Start `booking-service serve` on a free port, from `workdir`, with these settings (and
    none from this process's environment); return once every worker has started."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [BOOKING_SERVICE, "serve", "--port", str(port), "--workers", str(workers)],
            cwd=workdir,
            env=clean_env(**settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServerProcess(f"http://127.0.0.1:{port}", port, process, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited at start:\n{server.output()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"server did not start:\n{server.output()}")
        time.sleep(0.1)
    # /health answered from one worker: wait for the others too.
    server.wait_for_lines(lambda line: "Application startup complete" in line, workers, timeout)
    return server


@contextmanager
def serve(workdir: Path, *, workers: int = 1, **settings: str) -> Iterator[ServerProcess]:
    """A started server (see start_server), stopped on the way out."""
    server = start_server(workdir, workers=workers, **settings)
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def serve_fresh(backend: str, workdir: Path, **settings: str) -> AsyncIterator[ServerProcess]:
    """`booking-service serve` (see start_server) on a fresh database of `backend`: a SQLite
    file in `workdir`, or a new MariaDB database (skipped where none answers, see
    require_mariadb)."""
    if backend == "sqlite":
        with serve(workdir, **settings) as running:
            yield running
        return
    await require_mariadb()
    async with create_mariadb_database() as database:
        with serve(workdir, DATABASE_URL=database.url, **settings) as running:
            yield running
