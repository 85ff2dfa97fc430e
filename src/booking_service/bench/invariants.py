"""The booking invariants, checked straight from the database: shared by the tests and bench.

The rules themselves are in `event_rules`, judged on each event's rows as read here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from booking_service.bench.event_rules import InvariantBroken, InvariantReport, check_event
from booking_service.db import connect
from booking_service.models import Booking, BookingHistory, Event

__all__ = [
    "LOOKUP_BATCH",
    "InvariantBroken",
    "InvariantFindings",
    "InvariantReport",
    "active_claims",
    "check_event",
    "check_invariants",
    "find_invariant_breaks",
]

# Values per IN (...) look-up: well inside every driver's limits (seed's look-ups use it too).
LOOKUP_BATCH = 500


@dataclass
class InvariantFindings:
    """Every event checked: its counts when its rules hold, else what broke first."""

    reports: dict[int, InvariantReport]
    breaks: dict[int, str]

    @property
    def ok(self) -> bool:
        return not self.breaks


async def check_invariants(url: str, event_ids: Sequence[int]) -> dict[int, InvariantReport]:
    """Assert every booking rule (`event_rules.check_event`) on these events, straight from the
    database. Raises InvariantBroken (an AssertionError) at the first rule that does not hold.
    """
    reports: dict[int, InvariantReport] = {}
    async with connect(url) as engine, engine.connect() as conn:
        for event_id in event_ids:
            reports[event_id] = await _check_event(conn, event_id)
    return reports


async def find_invariant_breaks(url: str, event_ids: Sequence[int]) -> InvariantFindings:
    """Like check_invariants, but checks every event and collects what broke instead of raising."""
    findings = InvariantFindings(reports={}, breaks={})
    async with connect(url) as engine, engine.connect() as conn:
        for event_id in event_ids:
            try:
                findings.reports[event_id] = await _check_event(conn, event_id)
            except InvariantBroken as exc:
                findings.breaks[event_id] = str(exc)
            # Each event is read in its own transaction: a long check holds no old snapshot.
            await conn.rollback()
    return findings


async def _check_event(conn: AsyncConnection, event_id: int) -> InvariantReport:
    event = (await conn.execute(select(Event).where(Event.id == event_id))).one_or_none()
    if event is None:
        raise InvariantBroken(f"event {event_id} does not exist")
    rows = (await conn.execute(select(Booking).where(Booking.event_id == event_id))).all()
    history = (
        await conn.execute(
            select(BookingHistory)
            .where(BookingHistory.event_id == event_id)
            .order_by(BookingHistory.id)
        )
    ).all()
    return check_event(event, rows, history)


async def active_claims(
    url: str, event_ids: Sequence[int]
) -> dict[tuple[int, int], tuple[str, int]]:
    """{(event id, user id): (status, tickets)} for every live claim (ticket(s) or place in
    line)."""
    claims: dict[tuple[int, int], tuple[str, int]] = {}
    async with connect(url) as engine, engine.connect() as conn:
        for start in range(0, len(event_ids), LOOKUP_BATCH):
            batch = list(event_ids[start : start + LOOKUP_BATCH])
            rows = await conn.execute(
                select(Booking.event_id, Booking.user_id, Booking.status, Booking.quantity).where(
                    Booking.event_id.in_(batch), Booking.active == 1
                )
            )
            claims.update({(r.event_id, r.user_id): (r.status, r.quantity) for r in rows})
    return claims
