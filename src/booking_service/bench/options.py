"""The command line's values checked and completed by each scenario's defaults: the options of
a run, as the report and the JSON state them."""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
from datetime import UTC, datetime
from typing import Any

from booking_service.bench.scenarios import (
    DEFAULTS,
    PARTY_SCENARIOS,
    SELF_SERVED,
    Scenario,
    default_tickets,
)


def run_options(args: argparse.Namespace, scenario: Scenario) -> dict[str, Any]:
    defaults = DEFAULTS[scenario]
    users = defaults.users if args.users is None else args.users
    events = defaults.events if args.events is None else args.events
    if scenario in (Scenario.HOT, Scenario.OPENING):
        events = 1
    party_sizes = party_sizes_of(args.party_sizes)
    if party_sizes != [1] and scenario not in PARTY_SCENARIOS:
        raise ValueError("--party-sizes is for hot, spread and churn")
    largest = max(party_sizes)
    tickets = (
        default_tickets(scenario, users, events, largest) if args.tickets is None else args.tickets
    )
    if scenario in PARTY_SCENARIOS and largest > tickets:
        raise ValueError(f"--party-sizes: a party of {largest} cannot fit in {tickets} tickets")
    duration = args.duration if args.duration is not None else defaults.duration
    if scenario in (Scenario.HOT, Scenario.SPREAD, Scenario.OPENING):
        duration = None
    self_served = scenario in SELF_SERVED
    _check(args, scenario, users, events, tickets, duration)
    return {
        "scenario": scenario.value,
        "url": args.url,
        "users": 0 if self_served else users,
        "events": 0 if self_served else events,
        "tickets": 0 if self_served else tickets,
        "duration": duration,
        "connections": args.connections,
        "processes": args.processes,
        "workers": args.workers,
        "timeout": args.timeout,
        **(
            {"cancel_rate": args.cancel_rate, "leave_rate": args.leave_rate}
            if scenario is Scenario.CHURN
            else {}
        ),
        **({"party_sizes": party_sizes} if scenario in PARTY_SCENARIOS else {}),
        "label": args.label,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def floor_options(options: dict[str, Any], duration: float) -> dict[str, Any]:
    """The options of the floor measured before a scenario: the same load, for `duration`."""
    floor = {**options, "scenario": Scenario.FLOOR.value, "duration": duration}
    floor.update(users=0, events=0, tickets=0)
    for key in ("cancel_rate", "leave_rate", "party_sizes", "database"):
        floor.pop(key, None)
    return floor


def party_sizes_of(text: str) -> list[int]:
    """`--party-sizes` ("1,2,4"): the sizes a user's party is drawn from, each at least 1."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        message = f"--party-sizes must be whole numbers separated by commas, not {text!r}"
        raise ValueError(message) from None
    if min(sizes) < 1:
        raise ValueError("--party-sizes must each be at least 1")
    return sizes


def _check(
    args: argparse.Namespace,
    scenario: Scenario,
    users: int,
    events: int,
    tickets: int,
    duration: float | None,
) -> None:
    if scenario not in SELF_SERVED and (users < 1 or events < 1 or tickets < 1):
        raise ValueError("--users, --events and --tickets must be at least 1")
    if scenario not in SELF_SERVED and users < args.processes:
        raise ValueError("--users must be at least --processes (each process needs users)")
    if args.connections < 1 or not 1 <= args.processes <= args.connections:
        raise ValueError("--connections must be at least 1, --processes from 1 to --connections")
    if duration is not None and duration <= 0:
        raise ValueError("--duration must be positive")
    if args.workers < 1 or args.floor_duration <= 0:
        raise ValueError("--workers must be at least 1, --floor-duration positive")
    if args.floor and scenario is Scenario.FLOOR:
        raise ValueError("--floor measures the floor before another scenario, not before itself")
    if args.chart is not None and importlib.util.find_spec("matplotlib") is None:
        raise ValueError("--chart needs matplotlib: pip install 'booking-service[bench]'")
    if args.timeout <= 0 or not (0 <= args.cancel_rate <= 1 and 0 <= args.leave_rate <= 1):
        raise ValueError("--timeout must be positive, --cancel-rate and --leave-rate in 0..1")
