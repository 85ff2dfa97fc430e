"""Prometheus metrics: HTTP requests, booking outcomes and lock retries.

With several workers (`booking-service serve --workers N`), the command points
PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start. prometheus-client then
keeps every worker's values in files there, and `render()` adds them up, so whichever worker
answers GET /metrics reports the whole server. The environment variable must be set before this
module is first imported: prometheus-client picks its storage at import time.
"""

from __future__ import annotations

import enum
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

# `*_created` timestamps double the output and do not exist in multiprocess mode anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP requests by method, route template and status; `_count` is the number of requests.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class BookingOutcome(enum.StrEnum):
    BOOKED = "booked"  # got a ticket
    WAITLISTED = "waitlisted"  # joined the waiting list
    PROMOTED = "promoted"  # got a ticket someone gave back, from the waiting list
    OFFERED = "offered"  # was offered a ticket someone gave back, from the waiting list
    CANCELLED = "cancelled"  # gave a ticket back
    LEFT_LINE = "left_line"  # gave up a place in line


BOOKING_OUTCOMES = Counter(
    "booking_outcomes",
    "Committed booking changes, by outcome.",
    ["outcome"],
)
LOCK_RETRIES = Counter(
    "booking_lock_retries",
    "Transactions run again after a deadlock or lock-wait timeout.",
)
TRANSACTIONS_GAVE_UP = Counter(
    "booking_busy",
    "Transactions that still met lock conflicts after every retry (answered 503).",
)

RATE_LIMIT_STORAGE_UP = Gauge(
    "rate_limit_storage_up",
    "1 while the rate limiter's storage answers (limits shared), 0 while this worker counts in "
    "its own memory instead; over several workers, the lowest.",
    multiprocess_mode="livemin",
)

# Labelled children looked up once: every outcome is exported from the start, even at zero.
_OUTCOME_COUNTERS = {outcome: BOOKING_OUTCOMES.labels(outcome.value) for outcome in BookingOutcome}


# Labelled request series by (method, route, status): a dict hit is cheaper than `.labels()`.
# The middleware keeps the key space small: route templates, known methods, real statuses.
_request_series: dict[tuple[str, str, int], Histogram] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    key = (method, route, status)
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = REQUEST_DURATION.labels(method, route, str(status))
    series.observe(seconds)


def count_booking(outcome: BookingOutcome) -> None:
    _OUTCOME_COUNTERS[outcome].inc()


def count_lock_retry() -> None:
    LOCK_RETRIES.inc()


def count_gave_up() -> None:
    TRANSACTIONS_GAVE_UP.inc()


def set_rate_limit_storage_up(up: bool) -> None:
    RATE_LIMIT_STORAGE_UP.set(1 if up else 0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


def render() -> bytes:
    """The current values in Prometheus text format, summed over all workers."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def worker_stopped() -> None:
    """A worker is going away: drop its live-gauge files (its counters stay in the sums)."""
    path = multiprocess_dir()
    if path is not None:
        multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]
