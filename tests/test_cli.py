"""The `booking-service` command, as a newcomer runs it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import httpx

from tests.support import SERVICE_COMMAND, free_port, running_server


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "JWT_", "DATABASE_"))}
    env.pop("ENVIRONMENT", None)
    env.update(extra)
    return env


def test_serve_with_zero_configuration(tmp_path: Path) -> None:
    credentials = {"username": "user123", "password": "password123"}
    with running_server(tmp_path) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            assert http.post("/register", json=credentials).status_code == 201
            token = http.post("/login", json=credentials).json()["token"]
            created = http.post(
                "/initialize",
                json={"name": "Concert 2025", "tickets": 2},
                headers={"Authorization": token},
            )
            assert created.status_code == 201
            assert http.get("/docs").status_code == 200
        server.stop()
        assert f"Swagger UI at {server.base_url}/docs" in server.output()
    assert (tmp_path / "booking.db").exists(), "embedded SQLite file in the working directory"
    assert (tmp_path / ".jwt-secret").exists(), "dev secret kept for restarts and workers"


def test_migrate_builds_the_schema(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    result = subprocess.run(
        [SERVICE_COMMAND, "migrate"],
        env=_clean_env(DATABASE_URL=url),
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
        [SERVICE_COMMAND, "serve", "--port", str(free_port())],
        env=_clean_env(ENVIRONMENT="prod"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "JWT_SECRET must be set" in result.stderr
    assert not (tmp_path / "booking.db").exists(), "nothing touched before refusing"
