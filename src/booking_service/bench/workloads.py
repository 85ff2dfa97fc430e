"""What each connection sends next, and what the client learns from each answer.

Each load process runs a workload over its slice of the plan's users. A user never has two
requests in flight, so the workload always knows what the user holds and what answer to expect.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from booking_service.bench.http import build_request
from booking_service.bench.records import (
    BOOK,
    BOOK_EARLY,
    CANCEL,
    CANCEL_PROMOTED,
    CANCEL_RELEASED,
    LEAVE,
    OPEN_SALES,
    PING,
    STATUS,
)
from booking_service.bench.scenarios import OPENING_LEAD_SECONDS, SELF_SERVED, Plan, Scenario

# What the client believes a user holds, from the answers it got.
NONE = "none"
CONFIRMED = "confirmed"
WAITLISTED = "waitlisted"  # or promoted since, unseen by the client
UNKNOWN = "unknown"  # a request got no answer: it may or may not have happened


@dataclass(frozen=True, slots=True)
class Request:
    kind: int
    raw: bytes
    user: int = -1  # index into the plan's users, -1 when no user state changes


@dataclass
class WorkloadOutcome:
    """What the client learned: beliefs to hold against the database, and counts."""

    beliefs: dict[tuple[int, int], str] = field(default_factory=dict)  # (event, user): state
    # (event, user): tickets the user books at once, where more than one.
    quantities: dict[tuple[int, int], int] = field(default_factory=dict)
    confirmed_tickets: int = 0  # tickets in the 201s to POST /book
    positions: list[int] = field(default_factory=list)  # places in line handed out (202)
    # `opening`: refusals before sales opened, and those of them without a Retry-After.
    early: int = 0
    early_without_retry_after: int = 0

    def merge(self, other: WorkloadOutcome) -> None:
        self.beliefs.update(other.beliefs)
        self.quantities.update(other.quantities)
        self.confirmed_tickets += other.confirmed_tickets
        self.positions.extend(other.positions)
        self.early += other.early
        self.early_without_retry_after += other.early_without_retry_after


class Workload:
    """Hands out requests and learns from answers. The base is `hot` and `spread`."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.outcome = WorkloadOutcome()
        self.deadline: float | None = None
        self._idle: deque[int] = deque(range(len(plan.users)))
        self._state = [NONE] * len(plan.users)
        # Built once per user here, so the hot path only picks them (bytes sent as they are).
        self._book_requests = [
            self._post("/book", user, plan.users[user].quantity) for user in range(len(plan.users))
        ]

    @property
    def max_connections(self) -> int | None:
        """Connections beyond this would have nothing to send (a user has one request at once)."""
        return len(self.plan.users)

    def start(self, start_at: float) -> None:
        if self.plan.duration is not None:
            self.deadline = start_at + self.plan.duration

    def next_request(self, now: float) -> Request | None:
        if not self._idle:
            return None
        user = self._idle.popleft()
        return Request(BOOK, self._book_requests[user], user)

    def answered(
        self, request: Request, status: int, body: bytes, *, retry_after: bool = False
    ) -> int:
        """Learn from an answer; returns the kind to record it under."""
        if request.kind == BOOK:
            if status == 201:
                self._state[request.user] = CONFIRMED
                self.outcome.confirmed_tickets += self.plan.users[request.user].quantity
            elif status == 202:
                self._state[request.user] = WAITLISTED
                self.outcome.positions.append(_position(body))
            # Other answers change nothing the user holds (409, 404, 422, 5xx roll back).
        return request.kind

    def failed(self, request: Request) -> None:
        if request.user >= 0 and request.kind in (BOOK, CANCEL):
            self._state[request.user] = UNKNOWN

    def finish(self) -> WorkloadOutcome:
        plan = self.plan
        for index, user in enumerate(plan.users):
            self.outcome.beliefs[(plan.event_for(index), user.id)] = self._state[index]
            if user.quantity != 1:
                self.outcome.quantities[(plan.event_for(index), user.id)] = user.quantity
        return self.outcome

    def _post(self, path: str, user: int, quantity: int = 1) -> bytes:
        """A POST for this user's event; a quantity (a party) only when more than one, so
        single tickets send the body they always did (and a cancel gives everything back)."""
        body = b'{"eventId":%d}' % self.plan.event_for(user)
        if quantity != 1:
            body = b'{"eventId":%d,"quantity":%d}' % (self.plan.event_for(user), quantity)
        return build_request(
            "POST",
            path,
            host=self.plan.host_header,
            token=self.plan.users[user].token,
            body=body,
        )

    def _status_request(self, user: int) -> bytes:
        return build_request(
            "GET",
            f"/status/{self.plan.event_for(user)}",
            host=self.plan.host_header,
            token=self.plan.users[user].token,
        )


class ChurnWorkload(Workload):
    """Users cycle: book; then, holding a ticket, cancel it (promoting the first in line) or,
    holding a place in line, leave it, each with some chance, else poll the event's status."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self._random = random.Random(plan.seed)  # noqa: S311 - a load mix, not a secret
        users = range(len(plan.users))
        self._cancel_requests = [self._post("/cancel", user) for user in users]
        self._status_requests = [self._status_request(user) for user in users]

    def next_request(self, now: float) -> Request | None:
        if (self.deadline is not None and now >= self.deadline) or not self._idle:
            return None
        user = self._idle.popleft()
        state = self._state[user]
        roll = self._random.random()
        if state == NONE:
            return Request(BOOK, self._book_requests[user], user)
        if (state == CONFIRMED and roll < self.plan.cancel_rate) or (
            state == WAITLISTED and roll < self.plan.leave_rate
        ):
            return Request(CANCEL, self._cancel_requests[user], user)
        return Request(STATUS, self._status_requests[user], user)

    def answered(
        self, request: Request, status: int, body: bytes, *, retry_after: bool = False
    ) -> int:
        kind = super().answered(request, status, body)
        if request.kind == CANCEL and status == 200:
            self._state[request.user] = NONE
            kind = _cancel_kind(body)
        self._idle.append(request.user)
        return kind

    def failed(self, request: Request) -> None:
        # The user's state is unknown now: retire it rather than guess.
        super().failed(request)
        if request.kind == STATUS:
            self._idle.append(request.user)


class PollWorkload(Workload):
    """`read`, `ceiling` and `floor`: the same few GETs over and over until the deadline."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self._requests: Iterator[Request] = itertools.cycle(self._build())

    def _build(self) -> list[Request]:
        plan = self.plan
        if plan.scenario in SELF_SERVED:
            return [Request(PING, build_request("GET", "/", host=plan.host_header))]
        return [Request(STATUS, self._status_request(user)) for user in range(len(plan.users))]

    @property
    def max_connections(self) -> int | None:
        return None  # a user may poll on several connections at once

    def next_request(self, now: float) -> Request | None:
        if self.deadline is not None and now >= self.deadline:
            return None
        return next(self._requests)

    def answered(
        self, request: Request, status: int, body: bytes, *, retry_after: bool = False
    ) -> int:
        return request.kind

    def failed(self, request: Request) -> None:
        pass

    def finish(self) -> WorkloadOutcome:
        return self.outcome


class OpeningWorkload(Workload):
    """`opening`: the event's sales are set to open OPENING_LEAD_SECONDS after the start line
    (the first request, the owner's PATCH), and every user books from the start line on,
    asking again at once after each 409 `sales_not_started`, until they hold a ticket or a
    place in line."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self._opening: bytes | None = None

    def start(self, start_at: float) -> None:
        super().start(start_at)
        if not self.plan.owner_token:
            return
        opens = time.time() + OPENING_LEAD_SECONDS
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(opens))
        body = json.dumps({"sales_start": f"{stamp}.{int(opens % 1 * 1e6):06d}Z"}).encode()
        self._opening = build_request(
            "PATCH",
            f"/events/{self.plan.event_ids[0]}",
            host=self.plan.host_header,
            token=self.plan.owner_token,
            body=body,
        )

    def next_request(self, now: float) -> Request | None:
        if self._opening is not None:
            request, self._opening = Request(OPEN_SALES, self._opening), None
            return request
        return super().next_request(now)

    def answered(
        self, request: Request, status: int, body: bytes, *, retry_after: bool = False
    ) -> int:
        if request.kind == BOOK and status == 409 and b'"sales_not_started"' in body:
            self.outcome.early += 1
            self.outcome.early_without_retry_after += not retry_after
            self._idle.append(request.user)  # and again, at once
            return BOOK_EARLY
        return super().answered(request, status, body)


def build_workload(plan: Plan) -> Workload:
    if plan.scenario is Scenario.CHURN:
        return ChurnWorkload(plan)
    if plan.scenario is Scenario.OPENING:
        return OpeningWorkload(plan)
    if plan.scenario is Scenario.READ or plan.scenario in SELF_SERVED:
        return PollWorkload(plan)
    return Workload(plan)


def _position(body: bytes) -> int:
    """The place in line from a 202 body, read without a JSON parser (it is on the hot path)."""
    at = body.find(b'"position":')
    if at < 0:
        return 0
    digits = body[at + 11 :].lstrip()
    end = 0
    while end < len(digits) and digits[end : end + 1].isdigit():
        end += 1
    return int(digits[:end]) if end else 0


_CANCEL_KINDS = (
    (b'"reassigned"', CANCEL_PROMOTED),
    (b'"released"', CANCEL_RELEASED),
    (b'"left_waiting_list"', LEAVE),
)


def _cancel_kind(body: bytes) -> int:
    """What a 200 from /cancel says happened (its `outcome`), read without a JSON parser."""
    for marker, kind in _CANCEL_KINDS:
        if marker in body:
            return kind
    return CANCEL
