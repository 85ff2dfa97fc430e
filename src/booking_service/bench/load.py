"""Driving the load: keep-alive connections in one or several processes, all starting at once.

A shard owns a slice of the users (all of them in the default single process; see processes.py
for several), opens its connections, waits at the start line, then every connection sends its
next request as soon as the last one is answered (a closed loop: latency under overload is
queueing in the server, throughput is what it sustains).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from booking_service.bench.http import HttpConnection, TransportFailure, open_connection
from booking_service.bench.progress import Progress
from booking_service.bench.records import CONNECT, Records
from booking_service.bench.scenarios import Plan
from booking_service.bench.workloads import Workload, WorkloadOutcome, build_workload

TICK_SECONDS = 1.0  # progress lines, in the single-process mode


@dataclass(frozen=True)
class ShardSpec:
    plan: Plan
    index: int
    connections: int
    host: str
    port: int
    timeout: float
    # Servers the connections are spread over in turn (several instances, one per cluster
    # node); empty: all to host:port.
    targets: tuple[tuple[str, int], ...] = ()

    def target(self, slot: int) -> tuple[str, int]:
        if not self.targets:
            return self.host, self.port
        return self.targets[slot % len(self.targets)]


@dataclass
class ShardResult:
    records: Records
    outcome: WorkloadOutcome
    cpu_seconds: float  # the load process's own CPU during the load
    connections: int
    failure_samples: Counter[str] = field(default_factory=Counter)


@dataclass
class LoadResult:
    start_at: float  # perf_counter() at the start line; records' `ends` use the same clock
    records: Records
    outcome: WorkloadOutcome
    cpu_seconds: float
    connections: int
    processes: int
    failure_samples: Counter[str]


class SetupFailed(Exception):
    """The load could not start (no connection to the server, a load process died)."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: its event loop costs the generator much less CPU per request."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Shard:
    """One process's share: its connections, its workload, its records."""

    def __init__(self, spec: ShardSpec) -> None:
        self.spec = spec
        self.workload: Workload = build_workload(spec.plan)
        self.records = Records()
        self.flushed = 0
        self.failure_samples: Counter[str] = Counter()
        self.connections: list[HttpConnection] = []

    async def open(self) -> None:
        count = self.spec.connections
        limit = self.workload.max_connections
        if limit is not None:
            count = min(count, limit)
        opened = await asyncio.gather(
            *(open_connection(*self.spec.target(slot)) for slot in range(count)),
            return_exceptions=True,
        )
        for item in opened:
            if isinstance(item, BaseException):
                for conn in opened:
                    if isinstance(conn, HttpConnection):
                        conn.close()
                raise SetupFailed(str(item))
            self.connections.append(item)

    async def run(
        self, start_at: float, on_tick: Callable[[], None], tick_seconds: float
    ) -> ShardResult:
        self.workload.start(start_at)
        cpu_before = time.process_time()
        ticker = asyncio.create_task(self._tick(on_tick, start_at, tick_seconds))
        try:
            await asyncio.gather(*(self._drive(slot) for slot in range(len(self.connections))))
        finally:
            ticker.cancel()  # what stops _tick: it loops until cancelled
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            for conn in self.connections:
                conn.close()
        return ShardResult(
            records=self.take_chunk(),
            outcome=self.workload.finish(),
            cpu_seconds=time.process_time() - cpu_before,
            connections=len(self.connections),
            failure_samples=self.failure_samples,
        )

    def take_chunk(self) -> Records:
        chunk = self.records.since(self.flushed)
        self.flushed = len(self.records)
        return chunk

    async def _drive(self, slot: int) -> None:
        workload, records = self.workload, self.records
        perf_counter = time.perf_counter
        conn = self.connections[slot]
        while (request := workload.next_request(perf_counter())) is not None:
            sent = perf_counter()
            try:
                if not conn.is_open:
                    conn = self.connections[slot] = await open_connection(*self.spec.target(slot))
                status, body = await conn.request(request.raw)
            except TransportFailure as failure:
                end = perf_counter()
                records.add(end, end - sent, failure.outcome, request.kind)
                self.failure_samples[str(failure)] += 1
                workload.failed(request)
                if failure.outcome == CONNECT:
                    await asyncio.sleep(0.1)  # the server is gone: don't spin
                continue
            end = perf_counter()
            kind = workload.answered(request, status, body, retry_after=conn.retry_after)
            records.add(end, end - sent, status, kind)

    async def _tick(self, on_tick: Callable[[], None], start_at: float, every: float) -> None:
        timeout = self.spec.timeout
        next_at = start_at
        while True:
            next_at += every  # on the grid from the start, so lines fall on whole seconds
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            now = time.perf_counter()
            for conn in self.connections:
                if conn.sent_at and now - conn.sent_at > timeout:
                    conn.expire()
            on_tick()


async def run_inline(spec: ShardSpec) -> LoadResult:
    """The whole load in this process and event loop (the default: one process)."""
    shard = Shard(spec)
    await shard.open()
    start_at = time.perf_counter()
    progress = Progress(start_at)

    def on_tick() -> None:
        progress.add(shard.take_chunk())
        progress.print_due()

    result = await shard.run(start_at, on_tick, TICK_SECONDS)
    progress.add(result.records)
    progress.print_rest()
    return LoadResult(
        start_at=start_at,
        records=shard.records,  # complete, and nothing adds to it once run() has returned
        outcome=result.outcome,
        cpu_seconds=result.cpu_seconds,
        connections=result.connections,
        processes=1,
        failure_samples=result.failure_samples,
    )
