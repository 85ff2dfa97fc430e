"""`booking-service bench`: prepare, drive the load, check the database, report.

It starts no server: it targets the one at --url, and reads the same settings as the server
(DATABASE_URL, JWT_SECRET, from the environment or .env) to create its users in bulk and to
check the database afterwards. Only the `ceiling` scenario starts something: its own trivial
responder, to measure the load generator alone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import sys
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from booking_service.bench.http import TransportFailure, open_connection
from booking_service.bench.load import (
    LoadResult,
    SetupFailed,
    ShardSpec,
    new_event_loop,
    run_inline,
)
from booking_service.bench.scenarios import (
    DEFAULTS,
    EXPECTED,
    Plan,
    Scenario,
    default_tickets,
)
from booking_service.bench.server_watch import ServerWatch
from booking_service.config import Settings

# Exit codes.
EXIT_OK = 0
EXIT_INVARIANT_BROKEN = 1  # the database breaks a booking rule, or disagrees with the answers
EXIT_SETUP = 2  # bad arguments or settings, no server, preparation refused
EXIT_RUN_ERRORS = 3  # 5xx answers, requests without an answer, or answers the scenario rules out
EXIT_CRASH = 4  # the bench itself failed (a bug): never confused with a broken invariant


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="the running server (http only), or several separated by commas (one per "
        "cluster node): the connections are spread over them in turn; the first creates events",
    )
    parser.add_argument(
        "--scenario",
        choices=[s.value for s in Scenario],
        default=Scenario.HOT.value,
        help="hot: one event, fewer tickets than users, everyone books once at the same moment; "
        "spread: many events, plenty of tickets; churn: book, cancel and leave the line, mixed, "
        "for --duration; read: GET /status polling for --duration; ceiling: the generator "
        "alone, against a trivial responder it starts itself; opening: hot, with everyone "
        "firing from 200 ms before the sale opens",
    )
    parser.add_argument("--users", type=int, help="bench users (default per scenario)")
    parser.add_argument("--events", type=int, help="events (default per scenario)")
    parser.add_argument(
        "--tickets",
        type=int,
        help="tickets per event (hot, opening: users/2, churn: users/4, spread: twice the demand)",
    )
    parser.add_argument("--duration", type=float, help="seconds, for churn, read and ceiling")
    parser.add_argument("--connections", type=int, default=256, help="concurrent connections")
    parser.add_argument(
        "--processes", type=int, default=1, help="load processes sharing the connections"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for an answer")
    parser.add_argument(
        "--cancel-rate", type=float, default=0.5, help="churn: chance a ticket holder cancels"
    )
    parser.add_argument(
        "--leave-rate", type=float, default=0.3, help="churn: chance a person in line leaves"
    )
    parser.add_argument("--label", default="", help="free text for the report, e.g. '2 workers'")
    parser.add_argument(
        "--server-pid",
        type=int,
        help="the server's main process (Linux): report its and its workers' CPU per request "
        "and peak memory",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--chart", type=Path, help="write the PNG chart here (default: next to --out, as .png)"
    )


def run(args: argparse.Namespace, load_settings: Callable[[], Settings]) -> int:
    from booking_service.bench.seed import PreparationFailed

    try:
        return _run(args, load_settings)
    except (SetupFailed, PreparationFailed, TransportFailure, ValueError, OSError) as exc:
        print(f"booking-service bench: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except Exception:
        traceback.print_exc()
        print("booking-service bench: crashed (a bug in the bench)", file=sys.stderr)
        return EXIT_CRASH


def _run(args: argparse.Namespace, load_settings: Callable[[], Settings]) -> int:
    from booking_service.bench.ceiling import trivial_responder

    scenario = Scenario(args.scenario)
    options = _options(args, scenario)
    if scenario is Scenario.CEILING:
        with trivial_responder() as port:
            options["url"] = f"http://127.0.0.1:{port}"
            print(f"ceiling: the generator against a trivial responder at {options['url']}")
            return _bench(args, scenario, options, settings=None)
    return _bench(args, scenario, options, settings=load_settings())


def _options(args: argparse.Namespace, scenario: Scenario) -> dict[str, Any]:
    defaults = DEFAULTS[scenario]
    users = defaults.users if args.users is None else args.users
    events = defaults.events if args.events is None else args.events
    if scenario in (Scenario.HOT, Scenario.OPENING):
        events = 1
    tickets = default_tickets(scenario, users, events) if args.tickets is None else args.tickets
    duration = args.duration if args.duration is not None else defaults.duration
    if scenario in (Scenario.HOT, Scenario.SPREAD, Scenario.OPENING):
        duration = None
    if scenario is not Scenario.CEILING and (users < 1 or events < 1 or tickets < 1):
        raise ValueError("--users, --events and --tickets must be at least 1")
    if scenario is not Scenario.CEILING and users < args.processes:
        raise ValueError("--users must be at least --processes (each process needs users)")
    if args.connections < 1 or not 1 <= args.processes <= args.connections:
        raise ValueError("--connections must be at least 1, --processes from 1 to --connections")
    if duration is not None and duration <= 0:
        raise ValueError("--duration must be positive")
    if args.chart is not None and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--chart needs matplotlib: pip install 'booking-service[bench]'")
    if args.timeout <= 0 or not (0 <= args.cancel_rate <= 1 and 0 <= args.leave_rate <= 1):
        raise ValueError("--timeout must be positive, --cancel-rate and --leave-rate in 0..1")
    return {
        "scenario": scenario.value,
        "url": args.url,
        "users": users if scenario is not Scenario.CEILING else 0,
        "events": events if scenario is not Scenario.CEILING else 0,
        "tickets": tickets if scenario is not Scenario.CEILING else 0,
        "duration": duration,
        "connections": args.connections,
        "processes": args.processes,
        "timeout": args.timeout,
        **(
            {"cancel_rate": args.cancel_rate, "leave_rate": args.leave_rate}
            if scenario is Scenario.CHURN
            else {}
        ),
        "label": args.label,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def _bench(
    args: argparse.Namespace,
    scenario: Scenario,
    options: dict[str, Any],
    settings: Settings | None,
) -> int:
    targets = [_target(url) for url in options["url"].split(",")]
    target = urlsplit(options["url"].split(",")[0])
    host, port = targets[0]
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        # Before anything is written to the database: is the server there at all?
        for target_host, target_port in targets:
            runner.run(_reach(target_host, target_port))
        if settings is None:
            plan = _empty_plan(scenario, target.netloc, options)
        else:
            from booking_service.bench.seed import describe_database, prepare_plan

            options["database"] = runner.run(describe_database(settings.database_url))
            plan = runner.run(prepare_plan(settings, scenario, options, host, port, target.netloc))
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
        pid: int | None = args.server_pid
        with ServerWatch(pid) if pid is not None else nullcontext() as watch:
            if options["processes"] == 1:
                load = runner.run(run_inline(spec))
            else:
                from booking_service.bench.processes import run_in_processes

                load = run_in_processes(spec, options["processes"])
        from booking_service.bench.report import render_text, summarize

        summary = summarize(load, expected=EXPECTED[scenario], settings=options)
        summary["scenario"] = scenario.value
        if watch is not None:
            summary["server"] = watch.summary(summary["requests"], summary["duration_s"])
        if settings is not None:
            print("checking the database ...", flush=True)
            checks = runner.run(_check(settings, scenario, plan, load, summary))
            summary["checks"] = checks
    exit_code = _exit_code(summary)
    summary["exit_code"] = exit_code
    summary["verdict"] = VERDICTS[exit_code]
    print(render_text(summary))
    _write_outputs(args, summary)
    print(f"\n{VERDICTS[exit_code]} (exit {exit_code})")
    return exit_code


def _target(url: str) -> tuple[str, int]:
    parts = urlsplit(url.strip())
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"--url must be http://host[:port], not {url!r}")
    return parts.hostname, parts.port or 80


VERDICTS = {
    EXIT_OK: "ok: every answer expected, every check holds",
    EXIT_INVARIANT_BROKEN: "FAILED: an invariant is broken",
    EXIT_RUN_ERRORS: "FAILED: the run had errors (5xx, lost or unexpected answers)",
}


def _exit_code(summary: dict[str, Any]) -> int:
    checks = summary.get("checks")
    if checks is not None and not checks["ok"]:
        return EXIT_INVARIANT_BROKEN
    if (
        summary["server_errors"]
        or summary["failed_requests"]
        or summary["unexpected_answers"]
        or not summary["answered"]
    ):
        return EXIT_RUN_ERRORS
    return EXIT_OK


def _empty_plan(scenario: Scenario, host_header: str, options: dict[str, Any]) -> Plan:
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


def _write_outputs(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"\nresults: {args.out}")
    chart = args.chart or (args.out.with_suffix(".png") if args.out is not None else None)
    if chart is None:
        return
    from booking_service.bench.chart import ChartUnavailable, write_chart

    try:
        write_chart(summary, chart)
    except ChartUnavailable as exc:
        print(f"no chart: {exc}")
        return
    print(f"chart: {chart}")
