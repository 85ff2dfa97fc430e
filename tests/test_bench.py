"""`booking-service bench`, end to end against a real server process, at a tiny size.

Sizes here only prove the tool works and that its checks can fail; speed figures come from
running the command itself (README, Benchmark), never from assertions.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.databases import create_mariadb_database
from tests.support.environment import require_mariadb
from tests.support.servers import BOOKING_SERVICE, free_port, serve
from tests.support.settings import TEST_SECRET, clean_env

pytestmark = pytest.mark.slow

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class Server:
    url: str
    env: dict[str, str]  # the server's settings, which the bench needs too
    workdir: Path
    pid: int


def _settings(database_url: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "dev",
        "DATABASE_URL": database_url,
        "JWT_SECRET": TEST_SECRET,
        "RATE_LIMIT_ENABLED": "false",
        "PASSWORD_HASH_MEMORY_KIB": "8192",
        "PASSWORD_HASH_TIME_COST": "1",
    }


@contextmanager
def running_server(workdir: Path, database_url: str, workers: int = 1) -> Iterator[Server]:
    settings = _settings(database_url)
    with serve(workdir, workers=workers, **settings) as server:
        yield Server(server.base_url, clean_env(**settings), workdir, server.process.pid)


def run_bench(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`booking-service bench` as a user runs it, from `workdir`, with these settings only."""
    return subprocess.run(
        [BOOKING_SERVICE, "bench", *args],
        cwd=workdir,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def bench(
    server: Server, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_bench(server.workdir, "--url", server.url, *args, env=env or server.env)


def results(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    workdir = tmp_path_factory.mktemp("bench-sqlite")
    db_file = workdir / "bench.db"
    with running_server(workdir, f"sqlite+aiosqlite:///{db_file}") as server:
        yield server, db_file


@contextmanager
def sqlite_trigger(db_file: Path, name: str, sql: str) -> Iterator[None]:
    """A trigger that misbehaves like a buggy engine would, for the length of the block."""
    with sqlite3.connect(db_file) as conn:
        conn.execute(sql)
    try:
        yield
    finally:
        with sqlite3.connect(db_file) as conn:
            conn.execute(f"DROP TRIGGER {name}")


def test_hot_run_reports_checks_and_draws(
    sqlite_server: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = sqlite_server
    out = tmp_path / "hot.json"
    run = bench(
        server,
        "--users=40",
        "--tickets=15",
        "--connections=8",
        f"--server-pid={server.pid}",
        f"--out={out}",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "p99 so far" in run.stdout, "progress lines"

    data = results(out)
    assert data["scenario"] == "hot"
    assert data["status_counts"] == {"201": 15, "202": 25}
    assert data["confirmed"] == 15
    assert data["requests_per_s"] > 0
    assert data["confirmed_per_s"] > 0
    assert set(data["latency_ms"]) >= {"p50", "p95", "p99", "max"}
    assert data["latency_ms"]["p50"] <= data["latency_ms"]["p99"] <= data["latency_ms"]["max"]
    assert data["server_errors"] == 0
    assert data["failed_requests"] == {}
    assert data["timeline"]
    assert sum(p["requests"] for p in data["timeline"]) == 40
    assert data["generator"]["cpu_us_per_request"] > 0
    assert data["server"]["pids"] == [server.pid], "one worker: uvicorn serves in-process"
    assert data["server"]["cpu_ms_per_request"] > 0
    assert data["server"]["peak_rss_mib"][str(server.pid)] > 10
    assert data["checks"]["ok"] is True
    assert data["checks"]["totals"] == {
        "capacity": 15,
        "confirmed": 15,
        "available": 0,
        "waiting": 25,
    }
    assert len(data["checks"]["checks"]) == 3, (
        "db rules (parties included), answers, places in line"
    )
    assert data["confirmed_tickets"] == 15, "single tickets: one per booking"
    assert data["exit_code"] == 0

    chart = out.with_suffix(".png")
    assert chart.read_bytes().startswith(PNG_MAGIC)
    assert chart.stat().st_size > 20_000, "a chart, not an empty canvas"


def test_a_broken_invariant_fails_the_run(
    sqlite_server: tuple[Server, Path], tmp_path: Path
) -> None:
    server, db_file = sqlite_server
    out = tmp_path / "broken.json"
    # Every confirmed booking also grows the event's capacity: the answers all look right,
    # but confirmed + available no longer equals capacity.
    trigger = (
        "CREATE TRIGGER bench_corrupt AFTER INSERT ON booking WHEN NEW.status = 'confirmed' "
        "BEGIN UPDATE event SET capacity = capacity + 1 WHERE id = NEW.event_id; END"
    )
    with sqlite_trigger(db_file, "bench_corrupt", trigger):
        run = bench(
            server, "--users", "20", "--tickets", "5", "--connections", "4", "--out", str(out)
        )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL" in run.stdout
    assert "!= 10" in run.stdout
    data = results(out)
    assert data["checks"]["ok"] is False
    assert data["server_errors"] == 0, "the run itself was clean: only the check caught it"
    assert data["exit_code"] == 1


def test_server_errors_fail_the_run(sqlite_server: tuple[Server, Path], tmp_path: Path) -> None:
    server, db_file = sqlite_server
    out = tmp_path / "errors.json"
    trigger = (
        "CREATE TRIGGER bench_fail BEFORE INSERT ON booking WHEN NEW.status = 'waitlisted' "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    with sqlite_trigger(db_file, "bench_fail", trigger):
        run = bench(
            server, "--users", "12", "--tickets", "4", "--connections", "4", "--out", str(out)
        )
    assert run.returncode == 3, run.stdout + run.stderr
    data = results(out)
    assert data["status_counts"]["201"] == 4
    assert data["server_errors"] > 0
    assert data["unexpected_answers"] == {"book 500": data["server_errors"]}
    # uvicorn closes a connection after an unhandled error, so a request sent on it right
    # after may get no answer: counted as lost, not as a 500.
    lost = sum(data["failed_requests"].values())
    assert data["server_errors"] + lost == 8
    assert data["checks"]["ok"] is True, "a failed booking rolled back whole"


def test_wrong_secret_is_explained(sqlite_server: tuple[Server, Path]) -> None:
    server, _ = sqlite_server
    env = {**server.env, "JWT_SECRET": "another-secret-" + "y" * 40}
    run = bench(server, "--users", "3", env=env)
    assert run.returncode == 2
    assert "401" in run.stderr
    assert "JWT_SECRET" in run.stderr


def test_no_server_is_reported_before_anything_is_written(tmp_path: Path) -> None:
    db_file = tmp_path / "untouched.db"
    env = clean_env(**_settings(f"sqlite+aiosqlite:///{db_file}"))
    run = run_bench(tmp_path, "--url", f"http://127.0.0.1:{free_port()}", "--users", "3", env=env)
    assert run.returncode == 2
    assert "cannot connect" in run.stderr
    assert not db_file.exists()


def test_ceiling_measures_the_generator(tmp_path: Path) -> None:
    out = tmp_path / "ceiling.json"
    sizes = ["--duration=1", "--connections=8", "--processes=2"]
    run = run_bench(tmp_path, "--scenario=ceiling", *sizes, f"--out={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    data = results(out)
    assert data["status_counts_by_request"] == {"ping": {"200": data["answered"]}}
    assert data["answered"] > 0
    assert data["generator"]["processes"] == 2
    assert "checks" not in data, "nothing to check: no database involved"


def test_a_run_states_its_figure_as_a_ratio_to_the_floor(
    sqlite_server: tuple[Server, Path], tmp_path: Path
) -> None:
    server, _ = sqlite_server
    out = tmp_path / "hot.json"
    sizes = ["--users=40", "--tickets=15", "--connections=8"]
    run = bench(server, *sizes, "--floor", "--floor-duration=1", "--workers=1", f"--out={out}")
    assert run.returncode == 0, run.stdout + run.stderr

    data = results(out)
    floor = data["floor"]
    assert floor["figure"] == "confirmed_per_s"
    assert floor["value"] == data["confirmed_per_s"] > 0
    assert floor["answers_per_s"] > 0
    assert floor["ratio"] == round(data["confirmed_per_s"] / floor["answers_per_s"], 3)
    assert (floor["workers"], floor["connections"], floor["processes"]) == (1, 8, 1)
    assert floor["server"]["pids"], "the floor server's own CPU and memory"
    assert f"ratio to floor  {floor['ratio']:.2f}" in run.stdout
    assert data["status_counts"] == {"201": 15, "202": 25}, "the run itself is unchanged"
    assert data["checks"]["ok"] is True


def test_floor_serves_a_trivial_route_with_the_workers_asked(tmp_path: Path) -> None:
    out = tmp_path / "floor.json"
    sizes = ["--duration=1", "--connections=8"]
    run = run_bench(tmp_path, "--scenario=floor", *sizes, "--workers=2", f"--out={out}")
    assert run.returncode == 0, run.stdout + run.stderr
    data = results(out)
    assert data["status_counts_by_request"] == {"ping": {"200": data["answered"]}}
    assert data["answered"] > 0
    assert data["settings"]["workers"] == 2
    assert len(data["server"]["pids"]) >= 3, "uvicorn's supervisor and its two workers"
    assert "checks" not in data, "nothing to check: no database involved"

    again = run_bench(tmp_path, "--scenario=floor", *sizes, "--floor")
    assert again.returncode == 2, "the floor has no floor of its own"
    assert "--floor" in again.stderr


@pytest.mark.mariadb
async def test_every_scenario_on_mariadb_with_two_workers(tmp_path: Path) -> None:
    await require_mariadb()
    async with create_mariadb_database() as database:
        with running_server(tmp_path, database.url, workers=2) as server:
            runs = {
                "churn": ["--users=60", "--tickets=10", "--duration=2", "--processes=2"],
                "spread": ["--users", "60", "--events", "6"],
                "read": ["--users=10", "--events=2", "--duration=1", "--floor", "--workers=2"],
                "hot": ["--users", "60", "--tickets", "20", "--processes", "2"],
                "opening": ["--users", "60", "--tickets", "20", "--processes", "2"],
            }
            for scenario, args in runs.items():
                out = tmp_path / f"{scenario}.json"
                common = ["--connections=16", f"--server-pid={server.pid}", f"--out={out}"]
                run = bench(server, f"--scenario={scenario}", *common, *args)
                assert run.returncode == 0, f"{scenario}:\n{run.stdout}{run.stderr}"
                data = results(out)
                assert data["settings"]["database"].startswith(("MariaDB", "MySQL"))
                assert data["checks"]["ok"] is True
                assert len(data["server"]["peak_rss_mib"]) >= 3, "the parent and two workers"
                if scenario == "churn":
                    counts = data["status_counts_by_request"]
                    assert {"book", "status"} <= counts.keys()
                    assert any(kind.startswith(("cancel", "leave")) for kind in counts)
                if scenario == "read":
                    assert data["floor"]["figure"] == "requests_per_s"
                    assert data["floor"]["workers"] == 2
                    assert data["floor"]["ratio"] > 0
                if scenario == "spread":
                    assert data["status_counts"] == {"201": 60}
                if scenario == "hot":
                    assert data["status_counts"] == {"201": 20, "202": 40}
                if scenario == "opening":
                    counts = data["status_counts_by_request"]
                    assert counts["book"] == {"201": 20, "202": 40}
                    assert counts["set opening"] == {"200": 1}
                    assert set(counts["book (too early)"]) == {"409"}
                    names = [check["name"] for check in data["checks"]["checks"]]
                    assert "nobody is booked before sales open" in names


@pytest.mark.mariadb
async def test_hot_with_parties_counts_tickets_and_bookings(tmp_path: Path) -> None:
    await require_mariadb()
    async with create_mariadb_database() as database:
        with running_server(tmp_path, database.url) as server:
            out = tmp_path / "hot-parties.json"
            run = bench(
                server,
                "--users=60",
                "--tickets=40",
                "--connections=16",
                "--party-sizes=1,2,4",
                f"--out={out}",
            )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "tickets/s" in run.stdout
    data = results(out)
    assert data["settings"]["party_sizes"] == [1, 2, 4]
    bookings, tickets = data["confirmed"], data["confirmed_tickets"]
    assert 0 < bookings <= tickets <= 40
    assert data["confirmed_per_s"] > 0
    assert data["confirmed_tickets_per_s"] >= data["confirmed_per_s"]
    assert data["status_counts"]["201"] == bookings
    assert bookings + data["status_counts"].get("202", 0) == 60
    # Nobody cancels in `hot`: every ticket the database holds came from a 201 counted here.
    assert data["checks"]["totals"]["confirmed"] == tickets
    assert data["checks"]["ok"] is True
    assert all(check["ok"] for check in data["checks"]["checks"])
    names = " ".join(check["name"] for check in data["checks"]["checks"])
    assert "party rules" in names
    assert "each 201 for N holds N tickets" in names
