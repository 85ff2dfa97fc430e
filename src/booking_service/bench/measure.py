"""One measured run: reach the servers, prepare, measure the floor if asked, drive the load,
summarize it, and check the database."""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from typing import Any
from urllib.parse import urlsplit

from booking_service.bench.http import open_connection
from booking_service.bench.load import (
    LoadResult,
    SetupFailed,
    ShardSpec,
    new_event_loop,
    run_inline,
)
from booking_service.bench.options import floor_options
from booking_service.bench.report import ratio_to_floor, summarize
from booking_service.bench.scenarios import EXPECTED, Plan, Scenario
from booking_service.bench.server_watch import ServerWatch
from booking_service.config import Settings

Target = tuple[str, int]


def measure(
    scenario: Scenario,
    options: dict[str, Any],
    settings: Settings | None,
    *,
    server_pid: int | None,
    floor_seconds: float | None = None,
) -> dict[str, Any]:
    """The summary of a run against options["url"]: prepared through `settings` and checked in
    its database (none: a server of the bench's own, nothing to prepare or check), with the
    floor of the same load measured just before the load when `floor_seconds` is given."""
    targets = [_target(url) for url in options["url"].split(",")]
    host_header = urlsplit(options["url"].split(",")[0]).netloc
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        # Before anything is written to the database: is the server there at all?
        for target in targets:
            runner.run(_reach(*target))
        if settings is None:
            plan = empty_plan(scenario, host_header, options)
        else:
            from booking_service.bench.seed import describe_database, prepare_plan

            options["database"] = runner.run(describe_database(settings.database_url))
            host, port = targets[0]
            plan = runner.run(prepare_plan(settings, scenario, options, host, port, host_header))
        floor = None
        if floor_seconds is not None:
            floor = _measure_floor(runner, floor_options(options, floor_seconds))
        load, summary = drive(runner, plan, options, targets, server_pid)
        if floor is not None:
            summary["floor"] = ratio_to_floor(scenario, summary, floor)
        if settings is not None:
            print("checking the database ...", flush=True)
            summary["checks"] = runner.run(_check(settings, scenario, plan, load, summary))
    return summary


def drive(
    runner: asyncio.Runner,
    plan: Plan,
    options: dict[str, Any],
    targets: list[Target],
    server_pid: int | None,
) -> tuple[LoadResult, dict[str, Any]]:
    """The load of `plan` over options' connections and processes, and its summary."""
    host, port = targets[0]
    spec = ShardSpec(
        plan=plan,
        index=0,
        connections=options["connections"],
        host=host,
        port=port,
        timeout=options["timeout"],
        targets=tuple(targets),
    )
    print(f"load: {options['connections']} connections, {options['processes']} process(es)")
    with ServerWatch(server_pid) if server_pid is not None else nullcontext() as watch:
        if options["processes"] == 1:
            load = runner.run(run_inline(spec))
        else:
            from booking_service.bench.processes import run_in_processes

            load = run_in_processes(spec, options["processes"])
    summary = summarize(load, expected=EXPECTED[plan.scenario], settings=options)
    summary["scenario"] = plan.scenario.value
    if watch is not None:
        summary["server"] = watch.summary(summary["requests"], summary["duration_s"])
    return load, summary


def _measure_floor(runner: asyncio.Runner, options: dict[str, Any]) -> dict[str, Any]:
    """The floor scenario with the run's own load, its server stopped before the run goes on."""
    from booking_service.bench.floor import floor_server

    with floor_server(options["workers"]) as server:
        options["url"] = server.url
        print(f"floor: a trivial FastAPI route, {server.workers} worker(s), at {server.url}")
        plan = empty_plan(Scenario.FLOOR, f"127.0.0.1:{server.port}", options)
        _, floor = drive(runner, plan, options, [("127.0.0.1", server.port)], server.pid)
    problems = floor["server_errors"] + sum(floor["failed_requests"].values())
    if problems or floor["unexpected_answers"] or not floor["answered"]:
        raise SetupFailed(
            f"the floor run had errors ({problems} 5xx or lost, "
            f"{floor['unexpected_answers']} unexpected): no ratio to state"
        )
    print(f"floor: {floor['requests_per_s']:,.0f} answers/s, p99 {floor['latency_ms']['p99']} ms")
    return floor


def empty_plan(scenario: Scenario, host_header: str, options: dict[str, Any]) -> Plan:
    return Plan(
        scenario=scenario,
        host_header=host_header,
        users=[],
        event_ids=[],
        duration=options["duration"],
        cancel_rate=0.0,
        leave_rate=0.0,
        seed=0,
    )


def _target(url: str) -> Target:
    parts = urlsplit(url.strip())
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--url must be http://host[:port], not {url!r}")
    return parts.hostname, parts.port or 80


async def _reach(host: str, port: int) -> None:
    (await open_connection(host, port)).close()


async def _check(
    settings: Settings, scenario: Scenario, plan: Plan, load: LoadResult, summary: dict[str, Any]
) -> dict[str, Any]:
    from booking_service.bench.checks import check_run

    await _catch_up(settings)
    results = await check_run(
        settings.database_url,
        scenario,
        plan.event_ids,
        load.outcome,
        booking_failures=summary["booking_requests_failed"],
    )
    return results.as_json()


async def _catch_up(settings: Settings) -> None:
    """On a Galera node, wait until it has applied what the other nodes' instances committed:
    the checks read through this one node."""
    if settings.is_sqlite:
        return
    from booking_service.db import connect
    from booking_service.engine import CAUSAL_READ, on_cluster

    async with connect(settings.database_url) as engine, engine.connect() as conn:
        if await on_cluster(conn):
            await conn.exec_driver_sql(CAUSAL_READ)
