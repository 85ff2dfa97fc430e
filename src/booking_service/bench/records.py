"""How each request's result is kept: compact arrays, cheap to append, send and merge."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

# What a request was for (a cancel is told apart by what its answer says happened).
BOOK = 1
CANCEL = 2  # answer not read (an error)
STATUS = 3
PING = 4  # the trivial endpoint of the `ceiling` and `floor` scenarios
CANCEL_PROMOTED = 5  # the ticket went straight to the first in line
CANCEL_RELEASED = 6  # the ticket went back to the pool
LEAVE = 7  # a place in line given up
BOOK_EARLY = 8  # `opening`: a booking refused because sales have not opened yet
OPEN_SALES = 9  # `opening`: the owner setting the opening moment
KIND_NAMES = {
    BOOK: "book",
    CANCEL: "cancel",
    STATUS: "status",
    PING: "ping",
    CANCEL_PROMOTED: "cancel+promote",
    CANCEL_RELEASED: "cancel+release",
    LEAVE: "leave line",
    BOOK_EARLY: "book (too early)",
    OPEN_SALES: "set opening",
}

# Outcomes below 100 are requests that got no HTTP answer; the rest are HTTP status codes.
CONNECT = 1
TIMEOUT = 2
CLOSED = 3
PROTOCOL = 4
FAILURE_NAMES = {
    CONNECT: "connect failed",
    TIMEOUT: "timed out",
    CLOSED: "connection closed",
    PROTOCOL: "bad answer",
}


def outcome_name(outcome: int) -> str:
    return FAILURE_NAMES.get(outcome, str(outcome))


def is_failure(outcome: int) -> bool:
    return outcome < 100


@dataclass
class Records:
    """Parallel arrays, one entry per finished request (answered or failed)."""

    ends: array[float] = field(default_factory=lambda: array("d"))  # perf_counter() at the end
    latencies: array[float] = field(default_factory=lambda: array("d"))  # seconds
    outcomes: array[int] = field(default_factory=lambda: array("H"))
    kinds: array[int] = field(default_factory=lambda: array("B"))

    def add(self, end: float, latency: float, outcome: int, kind: int) -> None:
        self.ends.append(end)
        self.latencies.append(latency)
        self.outcomes.append(outcome)
        self.kinds.append(kind)

    def __len__(self) -> int:
        return len(self.ends)

    def since(self, start: int) -> Records:
        """The entries from index `start` on, as a new Records (a chunk to pass on)."""
        return Records(
            self.ends[start:], self.latencies[start:], self.outcomes[start:], self.kinds[start:]
        )

    def extend(self, other: Records) -> None:
        self.ends.extend(other.ends)
        self.latencies.extend(other.latencies)
        self.outcomes.extend(other.outcomes)
        self.kinds.extend(other.kinds)
