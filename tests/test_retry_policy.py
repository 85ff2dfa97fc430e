"""How long transactions wait before a retry, and how large groups are after conflicts."""

from __future__ import annotations

import random

from booking_service.db import RetryBackoff
from booking_service.services.coalescer import GroupLimit


def test_backoff_is_jittered_doubled_and_capped() -> None:
    random.seed(7)
    backoff = RetryBackoff(first_seconds=0.02, most_seconds=0.5)
    for attempt, ceiling in [(1, 0.02), (2, 0.04), (3, 0.08), (5, 0.32), (6, 0.5), (10, 0.5)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        # Jitter: spread over the range, not a fixed step the losers would all take together.
        assert max(delays) > ceiling * 0.8
        assert min(delays) < ceiling * 0.2


def test_group_limit_halves_after_conflicts_and_recovers() -> None:
    limit = GroupLimit(256)
    assert limit.current == 256
    assert [limit.after(retries=1) for _ in range(10)] == [128, 64, 32, 16, 8, 4, 2, 1, 1, 1]
    assert [limit.after(retries=0) for _ in range(10)] == [2, 4, 8, 16, 32, 64, 128, 256, 256, 256]
    assert limit.after(retries=3) == 128
