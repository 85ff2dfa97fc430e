"""The live progress line: one per second of the run, printed once that second is complete."""

from __future__ import annotations

import math
import sys
import time
from collections import Counter
from typing import TextIO

from booking_service.bench.records import BOOK, Records, is_failure

# Latency histogram for "p99 so far": log-spaced buckets, ~4% wide, from 1 µs up.
_BUCKETS_PER_DOUBLING = 16
_BUCKETS = _BUCKETS_PER_DOUBLING * 40


def _bucket(latency: float) -> int:
    micros = max(latency * 1e6, 1.0)
    return min(int(math.log2(micros) * _BUCKETS_PER_DOUBLING), _BUCKETS - 1)


def _bucket_upper_ms(bucket: int) -> float:
    return float(2 ** ((bucket + 1) / _BUCKETS_PER_DOUBLING) / 1000)


class Progress:
    """Takes chunks of records as they come and prints each second once it is complete.

    Requests are counted in the second they finished in, so chunks that arrive late (from
    other processes) still land in the right line; `lag` is how long to wait for them.
    """

    def __init__(self, start_at: float, *, lag: float = 0.0, out: TextIO | None = None) -> None:
        self._start_at = start_at
        self._lag = lag
        self._out = out or sys.stdout
        self._histogram = [0] * _BUCKETS
        self._answered = 0
        self._requests: Counter[int] = Counter()
        self._confirmed: Counter[int] = Counter()
        self._server_errors = 0
        self._failed = 0
        self._printed = 0  # seconds printed so far
        self._last_end = start_at

    def add(self, chunk: Records) -> None:
        histogram, start = self._histogram, self._start_at
        rows = zip(chunk.ends, chunk.latencies, chunk.outcomes, chunk.kinds, strict=True)
        for end, latency, outcome, kind in rows:
            second = max(0, int(end - start))
            self._requests[second] += 1
            self._last_end = max(self._last_end, end)
            if is_failure(outcome):
                self._failed += 1
                continue
            self._answered += 1
            histogram[_bucket(latency)] += 1
            if outcome >= 500:
                self._server_errors += 1
            elif outcome == 201 and kind == BOOK:
                self._confirmed[second] += 1

    def print_due(self, now: float | None = None) -> None:
        """Print every second that ended (plus the lag) and was not printed yet."""
        now = time.perf_counter() if now is None else now
        while self._start_at + self._printed + 1 + self._lag <= now:
            self._print_second(self._printed, 1.0)

    def print_rest(self) -> None:
        """At the end: the seconds still unprinted, the last one as long as it really was."""
        last = int(self._last_end - self._start_at)
        while self._printed <= last:
            length = min(1.0, self._last_end - self._start_at - self._printed)
            self._print_second(self._printed, max(length, 1e-3))

    def p99_so_far_ms(self) -> float:
        if self._answered == 0:
            return 0.0
        rank = math.ceil(self._answered * 0.99)
        seen = 0
        for bucket, count in enumerate(self._histogram):
            seen += count
            if seen >= rank:
                return _bucket_upper_ms(bucket)
        return _bucket_upper_ms(_BUCKETS - 1)

    def _print_second(self, second: int, length: float) -> None:
        self._printed = second + 1
        done = sum(self._requests[s] for s in range(second + 1))
        if length >= 0.5:
            rates = (
                f"{self._requests[second] / length:8,.0f} req/s"
                f"  {self._confirmed[second] / length:7,.0f} confirmed/s"
            )
        else:  # the last few answers (after a deadline): too short a time for a rate
            rates = f"{'-':>8} req/s  {'-':>7} confirmed/s"
        print(
            f"{second + length:6.1f}s  {rates}"
            f"  p99 so far {self.p99_so_far_ms():7.1f} ms  requests {done:,}"
            f"  5xx {self._server_errors}  no answer {self._failed}",
            file=self._out,
            flush=True,
        )
