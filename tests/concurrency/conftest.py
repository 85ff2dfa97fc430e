"""A real `booking-service serve` process per backend, started once per module.

The storms run against uvicorn with real worker processes, so they see what production sees:
several processes, real sockets, and one database that every worker writes to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import pytest

from tests.support.api import TokenFactory
from tests.support.databases import Database, wipe_tables
from tests.support.servers import ServerProcess, start_server
from tests.support.settings import TEST_SECRET, make_settings

# (backend, uvicorn workers). The issue asks for 2 workers on MariaDB; SQLite runs with one
# process (locks within a process) and two (locks between processes).
SERVERS = [
    pytest.param(("sqlite", 1), id="sqlite-1worker"),
    pytest.param(("sqlite", 2), id="sqlite-2workers"),
    pytest.param(("mariadb", 2), marks=pytest.mark.mariadb, id="mariadb-2workers"),
]
# Per worker. The MariaDB server is shared with other test runs (max_connections 151 here),
# so two workers hold at most 2 * (15 + 5) connections.
POOL_SIZE = 15
MAX_OVERFLOW = 5


@dataclass
class RunningServer:
    backend: str
    workers: int
    database: Database
    process: ServerProcess
    _log_offset: int = field(default=0)

    @property
    def name(self) -> str:
        return f"{self.backend}, {self.workers} worker(s)"

    @property
    def base_url(self) -> str:
        return self.process.base_url

    def new_log(self) -> str:
        """What the server logged since the last call."""
        text = self.process.output()
        new, self._log_offset = text[self._log_offset :], len(text)
        return new


@pytest.fixture(scope="module", params=SERVERS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    backend, workers = request.param
    database: Database = request.getfixturevalue(f"{backend}_database")
    workdir = tmp_path_factory.mktemp(f"server-{backend}-{workers}")  # no stray .env read
    process = start_server(
        workdir,
        workers=workers,
        DATABASE_URL=database.url,
        JWT_SECRET=TEST_SECRET,
        RATE_LIMIT_ENABLED="false",
        ENVIRONMENT="dev",
        DB_POOL_SIZE=str(POOL_SIZE),
        DB_MAX_OVERFLOW=str(MAX_OVERFLOW),
        # The storms compare /status with the database the moment they end.
        STATUS_CACHE_SECONDS="0",
    )
    running = RunningServer(backend, workers, database, process)
    running.new_log()  # start-up lines are not the storms' business
    try:
        yield running
    finally:
        code = process.stop()
    assert code == 0, f"server exited with {code}:\n{process.output()}"


@pytest.fixture
async def storm_db(server: RunningServer) -> AsyncIterator[Database]:
    """The server's database, wiped after each storm."""
    yield server.database
    await wipe_tables(server.database.url)


@pytest.fixture
def server_tokens(server: RunningServer) -> TokenFactory:
    return TokenFactory(make_settings(server.database.url))
