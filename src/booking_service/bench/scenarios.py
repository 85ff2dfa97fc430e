"""The scenarios: what each one prepares and expects, and the plan handed to the load.

A plan (users, tokens, events) is made once by the parent; each load process gets a slice of its
users and runs a workload over them (workloads.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from booking_service.bench.records import (
    BOOK,
    BOOK_EARLY,
    CANCEL_PROMOTED,
    CANCEL_RELEASED,
    LEAVE,
    OPEN_SALES,
    PING,
    STATUS,
)


class Scenario(StrEnum):
    HOT = "hot"  # one event, fewer tickets than users, everyone books once at the same moment
    SPREAD = "spread"  # many events with plenty of tickets: no contention
    CHURN = "churn"  # book, cancel (promoting the first in line) and leave the line, mixed
    READ = "read"  # GET /status polling
    CEILING = "ceiling"  # the generator against a trivial responder: its own limit
    OPENING = "opening"  # `hot`, but everyone fires from 200 ms before sales open until booked
    FLOOR = "floor"  # a trivial FastAPI route on uvicorn, as many workers: the stack's own limit


@dataclass(frozen=True)
class Defaults:
    users: int
    events: int
    duration: float | None  # None: each user books once and the run ends when all have answers


DEFAULTS = {
    Scenario.HOT: Defaults(users=10_000, events=1, duration=None),
    Scenario.SPREAD: Defaults(users=10_000, events=1_000, duration=None),
    Scenario.CHURN: Defaults(users=1_000, events=1, duration=15.0),
    Scenario.READ: Defaults(users=1_000, events=10, duration=10.0),
    Scenario.CEILING: Defaults(users=0, events=0, duration=5.0),
    Scenario.OPENING: Defaults(users=10_000, events=1, duration=None),
    Scenario.FLOOR: Defaults(users=0, events=0, duration=5.0),
}

# Scenarios that load a server the bench starts itself: no users, no events, no database.
SELF_SERVED = frozenset({Scenario.CEILING, Scenario.FLOOR})

# The figure each scenario is quoted by (a key of the summary, and its unit): the one stated
# as a ratio to the floor of the same run.
HEADLINE: dict[Scenario, tuple[str, str]] = {
    Scenario.HOT: ("confirmed_per_s", "confirmed/s"),
    Scenario.SPREAD: ("confirmed_per_s", "bookings/s"),
    Scenario.CHURN: ("requests_per_s", "answers/s"),
    Scenario.READ: ("requests_per_s", "answers/s"),
    Scenario.CEILING: ("requests_per_s", "answers/s"),
    Scenario.OPENING: ("confirmed_per_s", "confirmed/s"),
    Scenario.FLOOR: ("requests_per_s", "answers/s"),
}

# `opening`: how long before sales open the load starts firing, in seconds.
OPENING_LEAD_SECONDS = 0.2


# The scenarios whose users may book as parties (`--party-sizes`).
PARTY_SCENARIOS = frozenset({Scenario.HOT, Scenario.SPREAD, Scenario.CHURN})


def default_tickets(scenario: Scenario, users: int, events: int, largest_party: int = 1) -> int:
    """Tickets per event: scarce for hot and churn, plenty (twice the demand, every party taken
    as the largest) for spread."""
    if scenario in (Scenario.HOT, Scenario.OPENING):
        return max(1, users // 2)
    if scenario is Scenario.CHURN:
        return max(1, users // 4)
    if scenario is Scenario.SPREAD:
        return 2 * -(-users // max(events, 1)) * largest_party
    return 100


# Which answers are normal, per request kind. Anything else is reported as unexpected.
EXPECTED: dict[Scenario, dict[int, frozenset[int]]] = {
    Scenario.HOT: {BOOK: frozenset({201, 202})},
    Scenario.SPREAD: {BOOK: frozenset({201})},
    Scenario.CHURN: {
        BOOK: frozenset({201, 202}),
        CANCEL_PROMOTED: frozenset({200}),
        CANCEL_RELEASED: frozenset({200}),
        LEAVE: frozenset({200}),
        STATUS: frozenset({200}),
    },
    Scenario.READ: {STATUS: frozenset({200})},
    Scenario.CEILING: {PING: frozenset({200})},
    Scenario.FLOOR: {PING: frozenset({200})},
    Scenario.OPENING: {
        BOOK: frozenset({201, 202}),
        BOOK_EARLY: frozenset({409}),
        OPEN_SALES: frozenset({200}),
    },
}


@dataclass(frozen=True)
class BenchUser:
    id: int
    token: str
    quantity: int = 1  # tickets this user books at once (its party)


@dataclass(frozen=True)
class Plan:
    """Everything a load process needs; picklable."""

    scenario: Scenario
    host_header: str
    users: list[BenchUser]
    event_ids: list[int]
    duration: float | None
    cancel_rate: float
    leave_rate: float
    seed: int
    # `opening`: the event owner's token, in the one shard that sets the opening moment.
    owner_token: str = ""

    def event_for(self, user_index: int) -> int:
        return self.event_ids[user_index % len(self.event_ids)]

    def shard(self, index: int, count: int) -> Plan:
        """Every count-th user from `index` on, with the same events (users keep their event)."""
        return replace(
            self,
            users=self.users[index::count],
            seed=self.seed + index,
            owner_token=self.owner_token if index == 0 else "",
        )
