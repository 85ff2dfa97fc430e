"""The booking invariants, checked straight from the database: shared by the tests and bench."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from booking_service.db import connect
from booking_service.models import Booking, BookingStatus, Event


class InvariantBroken(AssertionError):
    """A booking rule does not hold in the database.

    An AssertionError, so pytest reports it as a failed check; raised explicitly rather than
    with `assert`, so the bench's check still runs under `python -O`.
    """


@dataclass
class InvariantReport:
    confirmed: int
    waiting: int
    available: int
    capacity: int


@dataclass
class InvariantFindings:
    """Every event checked: its counts when its rules hold, else what broke first."""

    reports: dict[int, InvariantReport]
    breaks: dict[int, str]

    @property
    def ok(self) -> bool:
        return not self.breaks


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantBroken(message)


async def check_invariants(url: str, event_ids: Sequence[int]) -> dict[int, InvariantReport]:
    """Assert every booking rule on these events, straight from the database.

    - confirmed never exceeds capacity, and confirmed + available = capacity;
    - the event's waiting_count matches the rows in line, and no ticket is free while anyone waits;
    - nobody holds two live claims on one event; line numbers are unique;
    - promotions went strictly in line order: whoever joined the line earlier than a promoted
      user was promoted before them or had left before them;
    - over the whole history, no ticket was taken from the pool while someone waited.

    Raises InvariantBroken (an AssertionError) at the first rule that does not hold.
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
    _require(event is not None, f"event {event_id} does not exist")
    assert event is not None
    rows = (await conn.execute(select(Booking).where(Booking.event_id == event_id))).all()
    confirmed = [r for r in rows if r.status == BookingStatus.CONFIRMED]
    waiting = [r for r in rows if r.status == BookingStatus.WAITLISTED]
    _require(len(confirmed) <= event.capacity, f"event {event_id} oversold")
    _require(
        len(confirmed) + event.available == event.capacity,
        f"event {event_id}: {len(confirmed)} confirmed + {event.available} available "
        f"!= {event.capacity}",
    )
    _require(len(waiting) == event.waiting_count, f"event {event_id}: waiting_count drift")
    _require(event.available == 0 or not waiting, f"event {event_id}: free ticket, full line")
    live: dict[int, int] = defaultdict(int)
    for r in rows:
        if r.active == 1:
            live[r.user_id] += 1
    _require(all(count == 1 for count in live.values()), f"event {event_id}: double claim")
    seqs = [r.line_seq for r in rows if r.line_seq is not None]
    _require(len(seqs) == len(set(seqs)), f"event {event_id}: line number used twice")
    _require_promotions_in_order(event_id, rows)
    _require_nobody_jumped_the_line(event_id, rows)
    return InvariantReport(
        confirmed=len(confirmed),
        waiting=len(waiting),
        available=event.available,
        capacity=event.capacity,
    )


def _require_promotions_in_order(event_id: int, rows: Sequence[Row[Any]]) -> None:
    """Nobody promoted while someone who joined the line earlier was still waiting for it.

    Walks the line once in order (line numbers are unique, checked before), keeping the latest
    moment any earlier entry got out of line (promoted, or left) and the first entry that never
    did; a promotion must come after the former and with no such entry ahead of it.
    """
    for r in rows:
        _require(
            r.promoted_at is None or r.line_seq is not None,
            f"event {event_id}: booking {r.id} promoted without a place in line",
        )
    latest: Row[Any] | None = None  # earlier entry that got out of line last
    latest_at: datetime | None = None
    still_waiting: Row[Any] | None = None  # earliest entry that never got out of line
    for r in sorted((r for r in rows if r.line_seq is not None), key=lambda r: r.line_seq):
        if r.promoted_at is not None:
            ahead = still_waiting
            if ahead is None and latest_at is not None and latest_at > r.promoted_at:
                ahead = latest
            if ahead is not None:
                raise InvariantBroken(
                    f"event {event_id}: booking {r.id} (line {r.line_seq}) promoted ahead of "
                    f"booking {ahead.id} (line {ahead.line_seq}, {ahead.status})"
                )
        out_at = _left_line_at(r)
        if out_at is None:
            still_waiting = still_waiting or r
        elif latest_at is None or out_at > latest_at:
            latest, latest_at = r, out_at


def _require_nobody_jumped_the_line(event_id: int, rows: Sequence[Row[Any]]) -> None:
    """No ticket was ever taken from the pool while someone was in line.

    The end state can look perfect after this went wrong: someone joins the line beside a free
    ticket, and the next booker takes that ticket. The rows keep the history: every timestamp is
    taken under the event's row lock, so a ticket taken from the pool (confirmed without a line
    number) must not fall strictly inside anyone's time in line (joined, until promoted or
    gone; still waiting: until now). One sweep over sorted times keeps this fast at bench sizes.
    """
    joined: list[datetime] = []
    got_out: list[datetime] = []
    waits: list[tuple[Row[Any], datetime, datetime | None]] = []
    for r in rows:
        if r.line_seq is None:
            continue
        until = _left_line_at(r)
        if until is not None and until <= r.created_at:
            continue  # in line for no time at all
        joined.append(r.created_at)
        if until is not None:
            got_out.append(until)
        waits.append((r, r.created_at, until))
    joined.sort()
    got_out.sort()
    for taken in rows:
        if taken.line_seq is not None or taken.confirmed_at is None:
            continue
        at: datetime = taken.confirmed_at
        # In line at `at`: joined before it, minus those out of line by then.
        if bisect_left(joined, at) - bisect_right(got_out, at) <= 0:
            continue
        waiter = next(
            r for r, start, until in waits if start < at and (until is None or at < until)
        )
        raise InvariantBroken(
            f"event {event_id}: booking {taken.id} took a free ticket at {at} while booking "
            f"{waiter.id} (line {waiter.line_seq}) had been waiting since {waiter.created_at}"
        )


def _left_line_at(row: Row[Any]) -> datetime | None:
    """When this entry got out of line: promoted, or left; None while it waits."""
    if row.promoted_at is not None:
        promoted_at: datetime = row.promoted_at
        return promoted_at
    if row.status == BookingStatus.LEFT:
        ended_at: datetime | None = row.ended_at
        return ended_at
    return None


async def active_claims(url: str, event_ids: Sequence[int]) -> dict[tuple[int, int], str]:
    """{(event id, user id): status} for every live claim (ticket or place in line)."""
    claims: dict[tuple[int, int], str] = {}
    async with connect(url) as engine, engine.connect() as conn:
        for start in range(0, len(event_ids), 500):
            batch = list(event_ids[start : start + 500])
            rows = await conn.execute(
                select(Booking.event_id, Booking.user_id, Booking.status).where(
                    Booking.event_id.in_(batch), Booking.active == 1
                )
            )
            claims.update({(r.event_id, r.user_id): r.status for r in rows})
    return claims
