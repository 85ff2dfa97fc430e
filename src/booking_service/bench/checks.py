"""What a run is checked against at the end: the database's rules, and the answers it gave."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from booking_service.bench.invariants import InvariantReport, active_claims, find_invariant_breaks
from booking_service.bench.scenarios import Scenario
from booking_service.bench.workloads import CONFIRMED, NONE, UNKNOWN, WAITLISTED, WorkloadOutcome
from booking_service.db import connect
from booking_service.models import Booking, Event

MAX_EXAMPLES = 5


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class CheckResults:
    checks: list[Check] = field(default_factory=list)
    events: dict[int, InvariantReport] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [asdict(check) for check in self.checks],
            "events_checked": len(self.events),
            "totals": _sums(self.events),
        }


async def check_run(
    url: str,
    scenario: Scenario,
    event_ids: Sequence[int],
    outcome: WorkloadOutcome,
    *,
    booking_failures: int,
) -> CheckResults:
    results = CheckResults()
    findings = await find_invariant_breaks(url, event_ids)
    results.events = findings.reports
    broken = list(findings.breaks.values())
    tickets = sum(r.confirmed for r in findings.reports.values())
    bookings = sum(r.confirmed_bookings for r in findings.reports.values())
    results.checks.append(
        Check(
            f"database and party rules on {len(event_ids)} event(s): tickets confirmed + offered + "
            "available = capacity, counters match the rows, while anyone waits fewer tickets "
            "free than the first party needs, one live claim per user, promotions to the first "
            "in line with its whole party, the history replays to every claim's tickets",
            not broken,
            "; ".join(broken[:MAX_EXAMPLES])
            or f"{_totals(findings.reports)}; {tickets:,} tickets in {bookings:,} bookings",
        )
    )
    if outcome.beliefs:  # `read` books nothing: there is nothing to agree on
        claims = await active_claims(url, event_ids)
        mismatches = _disagreements(outcome.beliefs, outcome.quantities, claims)
        unknown = sum(1 for belief in outcome.beliefs.values() if belief == UNKNOWN)
        if mismatches:
            detail = "; ".join(mismatches[:MAX_EXAMPLES]) + f" ({len(mismatches)} in all)"
        else:
            detail = f"{len(outcome.beliefs) - unknown:,} users agree"
            if unknown:
                detail += f"; {unknown} whose answer was lost are not judged"
        results.checks.append(
            Check(
                "every answer agrees with the database: each 201 for N holds N tickets, each 202 "
                "a place for N (or N tickets, once promoted), each cancel left nothing, nothing "
                "else is held",
                not mismatches,
                detail,
            )
        )
    if scenario is Scenario.OPENING:
        results.checks += await _opening_checks(url, event_ids[0], outcome)
    if scenario in (Scenario.HOT, Scenario.OPENING) and booking_failures == 0:
        positions = sorted(outcome.positions)
        expected = list(range(1, len(positions) + 1))
        in_order = positions == expected
        results.checks.append(
            Check(
                "places in line handed out are 1..W, each exactly once",
                in_order,
                f"W = {len(positions):,}"
                if in_order
                else f"got {_first_difference(positions, expected)}",
            )
        )
    return results


async def _opening_checks(url: str, event_id: int, outcome: WorkloadOutcome) -> list[Check]:
    """Nobody holds anything from before the moment sales opened (by the database's clock,
    which stamps each claim), and every answer before it was a 409 with Retry-After."""
    async with connect(url) as engine, engine.connect() as conn:
        sales_start: datetime | None = await conn.scalar(
            select(Event.sales_start).where(Event.id == event_id)
        )
        first: datetime | None = await conn.scalar(
            select(func.min(Booking.created_at)).where(Booking.event_id == event_id)
        )
    on_time = sales_start is not None and (first is None or first >= sales_start)
    lead = (first - sales_start).total_seconds() * 1000 if first and sales_start else None
    refused = outcome.early - outcome.early_without_retry_after
    return [
        Check(
            "nobody is booked before sales open",
            on_time,
            f"sales opened at {sales_start}, first claim {lead:.1f} ms later"
            if lead is not None
            else f"sales_start {sales_start}, first claim {first}",
        ),
        Check(
            "every booking before the opening got 409 sales_not_started with Retry-After",
            outcome.early > 0 and outcome.early_without_retry_after == 0,
            f"{outcome.early:,} refused early, {refused:,} of them with Retry-After",
        ),
    ]


def _disagreements(
    beliefs: dict[tuple[int, int], str],
    quantities: dict[tuple[int, int], int],
    claims: dict[tuple[int, int], tuple[str, int]],
) -> list[str]:
    """What the answers told each user (`quantities`: their party, where more than one)
    against what the database holds for them."""
    problems = []
    for key, belief in beliefs.items():
        event_id, user_id = key
        if belief == UNKNOWN:
            continue
        held, tickets = claims.get(key, (None, 0))
        wanted = quantities.get(key, 1)
        ok = (
            (belief == NONE and held is None)
            or (belief == CONFIRMED and held == "confirmed" and tickets == wanted)
            or (belief == WAITLISTED and held in ("waitlisted", "confirmed") and tickets == wanted)
        )
        if not ok:
            has = f"{held} for {tickets}" if held else "nothing"
            problems.append(
                f"user {user_id} on event {event_id}: told {belief} for {wanted}, database has "
                f"{has}"
            )
    for event_id, user_id in claims.keys() - beliefs.keys():
        problems.append(f"user {user_id} on event {event_id}: a claim no bench user made")
    return problems


def _sums(reports: dict[int, InvariantReport]) -> dict[str, int]:
    """Capacity, confirmed, available and waiting over every event (in that order: the JSON's)."""
    return {
        "capacity": sum(r.capacity for r in reports.values()),
        "confirmed": sum(r.confirmed for r in reports.values()),
        "available": sum(r.available for r in reports.values()),
        "waiting": sum(r.waiting for r in reports.values()),
    }


def _totals(reports: dict[int, InvariantReport]) -> str:
    sums = _sums(reports)
    return (
        f"{sums['confirmed']:,} confirmed + {sums['available']:,} available = "
        f"{sums['capacity']:,} capacity; {sums['waiting']:,} in line"
    )


def _first_difference(got: list[int], expected: list[int]) -> str:
    for index, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return f"place {a} where {b} was due (index {index})"
    return f"{len(got)} places"
