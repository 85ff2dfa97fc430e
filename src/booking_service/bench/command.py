"""`booking-service bench`: the command line, the run it asks for, and its exit code.

It starts no server to bench: it targets the one at --url, and reads the same settings as the
server (DATABASE_URL, JWT_SECRET, from the environment or .env) to create its users in bulk and
to check the database afterwards. Only `ceiling` and `floor` start a server of their own (a
trivial responder, to measure the load generator alone; a trivial FastAPI route, to measure the
stack), and --floor measures that floor before any other scenario.

Only what the parser needs is imported here: the load and its modules come with `run`.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from booking_service.bench.scenarios import DEFAULTS, Scenario
from booking_service.config import Settings

# Exit codes.
EXIT_OK = 0
EXIT_INVARIANT_BROKEN = 1  # the database breaks a booking rule, or disagrees with the answers
EXIT_SETUP = 2  # bad arguments or settings, no server, preparation refused
EXIT_RUN_ERRORS = 3  # 5xx answers, requests without an answer, or answers the scenario rules out
EXIT_CRASH = 4  # the bench itself failed (a bug): never confused with a broken invariant

VERDICTS = {
    EXIT_OK: "ok: every answer expected, every check holds",
    EXIT_INVARIANT_BROKEN: "FAILED: an invariant is broken",
    EXIT_RUN_ERRORS: "FAILED: the run had errors (5xx, lost or unexpected answers)",
}


def configure(parser: argparse.ArgumentParser) -> None:
    _what_to_run(parser.add_argument_group("what to run"))
    _the_floor(parser.add_argument_group("the floor: the same load on a trivial FastAPI route"))
    _what_to_report(parser.add_argument_group("what to report"))


def _what_to_run(parser: argparse._ArgumentGroup) -> None:
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
        "firing from 200 ms before the sale opens; floor: a trivial FastAPI route on uvicorn "
        "with --workers workers, started by the bench itself",
    )
    parser.add_argument("--users", type=int, help="bench users (default per scenario)")
    parser.add_argument("--events", type=int, help="events (default per scenario)")
    parser.add_argument(
        "--tickets",
        type=int,
        help="tickets per event (hot, opening: users/2, churn: users/4, spread: twice the demand)",
    )
    parser.add_argument(
        "--duration", type=float, help="seconds, for churn, read, ceiling and floor"
    )
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
    parser.add_argument(
        "--party-sizes",
        default="1",
        help="hot, spread, churn: tickets each user books at once, drawn per user from these "
        "sizes (e.g. 1,2,4; default %(default)s); events allow the largest per user",
    )


def _the_floor(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="the workers of the server under test: the floor runs with as many",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="measure the floor (see --scenario) with the same load just before the run, and "
        "state the run's figure as a ratio to it",
    )
    parser.add_argument(
        "--floor-duration",
        type=float,
        default=DEFAULTS[Scenario.FLOOR].duration,
        help="seconds of the floor measured by --floor (default %(default)s)",
    )


def _what_to_report(parser: argparse._ArgumentGroup) -> None:
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
    from booking_service.bench.http import TransportFailure
    from booking_service.bench.load import SetupFailed
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
    from booking_service.bench.measure import measure
    from booking_service.bench.options import run_options
    from booking_service.bench.report import render_text

    scenario = Scenario(args.scenario)
    options = run_options(args, scenario)
    floor_seconds = args.floor_duration if args.floor else None
    if scenario is Scenario.CEILING:
        from booking_service.bench.ceiling import trivial_responder

        with trivial_responder() as port:
            options["url"] = f"http://127.0.0.1:{port}"
            print(f"ceiling: the generator against a trivial responder at {options['url']}")
            summary = measure(scenario, options, None, server_pid=None, floor_seconds=floor_seconds)
    elif scenario is Scenario.FLOOR:
        from booking_service.bench.floor import floor_server

        with floor_server(args.workers) as server:
            options["url"] = server.url
            print(f"floor: a trivial FastAPI route, {server.workers} worker(s), at {server.url}")
            summary = measure(scenario, options, None, server_pid=server.pid)
    else:
        summary = measure(
            scenario,
            options,
            load_settings(),
            server_pid=args.server_pid,
            floor_seconds=floor_seconds,
        )
    exit_code = _exit_code(summary)
    summary["exit_code"] = exit_code
    summary["verdict"] = VERDICTS[exit_code]
    print(render_text(summary))
    _write_outputs(args, summary)
    print(f"\n{VERDICTS[exit_code]} (exit {exit_code})")
    return exit_code


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
