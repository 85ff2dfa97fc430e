"""The `booking-service` command, as a newcomer runs it."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import BOOKING_SERVICE as COMMAND
from tests.support.servers import ServerProcess, free_port, serve
from tests.support.settings import clean_env


@pytest.fixture
def zero_config_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with serve(tmp_path) as server:
        yield server


def test_serve_with_zero_configuration(zero_config_server: ServerProcess, tmp_path: Path) -> None:
    base, proc, workdir = zero_config_server.base_url, zero_config_server.process, tmp_path
    credentials = {"username": "user123", "password": "password123"}
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.post("/register", json=credentials).status_code == 201
        token = http.post("/login", json=credentials).json()["token"]
        created = http.post(
            "/initialize",
            json={"name": "Concert 2025", "tickets": 2},
            headers={"Authorization": token},
        )
        assert created.status_code == 201
        assert http.get("/docs").status_code == 200
    assert (workdir / "booking.db").exists(), "embedded SQLite file in the working directory"
    assert (workdir / ".jwt-secret").exists(), "dev secret kept for restarts and workers"
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=15)
    assert f"Swagger UI at {base}/docs" in zero_config_server.output()


def test_migrate_builds_the_schema(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    result = subprocess.run(
        [COMMAND, "migrate"],
        env=clean_env(DATABASE_URL=url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "m.db") as conn:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
    assert {"user", "event", "booking", "alembic_version"} <= tables


def test_prod_without_a_secret_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [COMMAND, "serve", "--port", str(free_port())],
        env=clean_env(ENVIRONMENT="prod"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "JWT_SECRET must be set" in result.stderr
    assert not (tmp_path / "booking.db").exists(), "nothing touched before refusing"
