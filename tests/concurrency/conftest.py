"""A real `booking-service serve` process per backend, started once per module.

The storms run against uvicorn with real worker processes, so they see what production sees:
several processes, real sockets, and one database that every worker writes to.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from booking_service.config import Settings
from tests.support import TEST_SECRET, Database, TokenFactory, make_settings, wipe_tables

# (backend, uvicorn workers). The issue asks for 2 workers on MariaDB; SQLite runs with one
# process (locks within a process) and two (locks between processes).
SERVERS = [
    pytest.param(("sqlite", 1), id="sqlite-1worker"),
    pytest.param(("sqlite", 2), id="sqlite-2workers"),
    pytest.param(("mariadb", 2), marks=pytest.mark.mariadb, id="mariadb-2workers"),
]
STARTUP_SECONDS = 60.0
SHUTDOWN_SECONDS = 30.0
# Per worker. The MariaDB server is shared with other test runs (max_connections 151 here),
# so two workers hold at most 2 * (15 + 5) connections.
POOL_SIZE = 15
MAX_OVERFLOW = 5


@dataclass
class RunningServer:
    backend: str
    workers: int
    database: Database
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_offset: int = field(default=0)

    @property
    def name(self) -> str:
        return f"{self.backend}, {self.workers} worker(s)"

    def new_log(self) -> str:
        """What the server logged since the last call."""
        text = self.log_path.read_text(errors="replace")
        new, self._log_offset = text[self._log_offset :], len(text)
        return new


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command() -> list[str]:
    script = Path(sys.executable).with_name("booking-service")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "booking_service.cli"]


def server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env.update(
        DATABASE_URL=database_url,
        JWT_SECRET=TEST_SECRET,
        RATE_LIMIT_ENABLED="false",
        ENVIRONMENT="dev",
        DB_POOL_SIZE=str(POOL_SIZE),
        DB_MAX_OVERFLOW=str(MAX_OVERFLOW),
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=base_url, timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if http.get("/openapi.json").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # polling interval, not synchronization
    pytest.fail(f"server not ready after {STARTUP_SECONDS}s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> int:
    """Ctrl-C the supervisor and wait for it and its workers; kill our own group if stuck."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=SHUTDOWN_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the group this fixture started, nothing else
        process.wait()
        pytest.fail(f"server did not stop within {SHUTDOWN_SECONDS}s")


@pytest.fixture(scope="module", params=SERVERS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    backend, workers = request.param
    database: Database = request.getfixturevalue(f"{backend}_database")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    workdir = tmp_path_factory.mktemp(f"server-{backend}-{workers}")  # no stray .env read
    log_path = workdir / "server.log"
    command = [
        *server_command(),
        "serve",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--workers={workers}",
        "--log-level=warning",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=server_env(database.url),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(process, base_url, log_path)
        yield RunningServer(backend, workers, database, base_url, process, log_path)
    finally:
        code = stop(process)
    assert code == 0, f"server exited with {code}:\n{log_path.read_text()}"


@pytest.fixture
async def storm_db(server: RunningServer) -> AsyncIterator[Database]:
    """The server's database, wiped after each storm."""
    yield server.database
    await wipe_tables(server.database.url)


@pytest.fixture
def server_tokens(server: RunningServer) -> TokenFactory:
    return TokenFactory(make_settings(server.database.url))
