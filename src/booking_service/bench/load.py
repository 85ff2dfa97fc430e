"""Driving the load: keep-alive connections in one or several processes, all starting at once.

Each process (a shard) owns a slice of the users, opens its connections, waits at the start
line, then every connection sends its next request as soon as the last one is answered (a closed
loop: latency under overload is queueing in the server, throughput is what it sustains).
Records flow to the parent in chunks, for the live progress line and the final report.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier, Event
from typing import Any

from booking_service.bench.http import HttpConnection, TransportFailure, open_connection
from booking_service.bench.progress import Progress
from booking_service.bench.records import CONNECT, Records
from booking_service.bench.scenarios import Plan, Workload, WorkloadOutcome, build_workload

TICK_SECONDS = 1.0  # progress lines, in the single-process mode
FLUSH_SECONDS = 0.25  # how often a load process sends its records to the parent
PROGRESS_LAG = 0.4  # how long the parent waits for late records before printing a second
START_GATE_SECONDS = 120.0  # how long the parent waits for every process to be at the start line


@dataclass(frozen=True)
class ShardSpec:
    plan: Plan
    index: int
    connections: int
    host: str
    port: int
    timeout: float


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


class _Shard:
    """One process's share: its connections, its workload, its records."""

    def __init__(self, spec: ShardSpec) -> None:
        self.spec = spec
        self.workload: Workload = build_workload(spec.plan)
        self.records = Records()
        self.flushed = 0
        self.failure_samples: Counter[str] = Counter()
        self.connections: list[HttpConnection] = []
        self.finished = False

    async def open(self) -> None:
        count = self.spec.connections
        limit = self.workload.max_connections
        if limit is not None:
            count = min(count, limit)
        opened = await asyncio.gather(
            *(open_connection(self.spec.host, self.spec.port) for _ in range(count)),
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
            self.finished = True
            ticker.cancel()
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
                    conn = self.connections[slot] = await open_connection(
                        self.spec.host, self.spec.port
                    )
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
            records.add(end, end - sent, status, workload.answered(request, status, body))

    async def _tick(self, on_tick: Callable[[], None], start_at: float, every: float) -> None:
        timeout = self.spec.timeout
        next_at = start_at
        while not self.finished:
            next_at += every  # on the grid from the start, so lines fall on whole seconds
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            now = time.perf_counter()
            for conn in self.connections:
                if conn.sent_at and now - conn.sent_at > timeout:
                    conn.expire()
            on_tick()


async def run_inline(spec: ShardSpec) -> LoadResult:
    """The whole load in this process and event loop (the default: one process)."""
    shard = _Shard(spec)
    await shard.open()
    start_at = time.perf_counter()
    progress = Progress(start_at)

    def on_tick() -> None:
        progress.add(shard.take_chunk())
        progress.print_due()

    result = await shard.run(start_at, on_tick, TICK_SECONDS)
    progress.add(result.records)
    progress.print_rest()
    records = Records()
    records.extend(shard.records)
    return LoadResult(
        start_at=start_at,
        records=records,
        outcome=result.outcome,
        cpu_seconds=result.cpu_seconds,
        connections=result.connections,
        processes=1,
        failure_samples=result.failure_samples,
    )


def split_connections(total: int, processes: int) -> Iterator[int]:
    for index in range(processes):
        yield total // processes + (1 if index < total % processes else 0)


def run_in_processes(spec: ShardSpec, processes: int) -> LoadResult:
    """The load split over `processes` processes; this one gathers records and prints progress."""
    context = multiprocessing.get_context("spawn")
    messages: multiprocessing.Queue[tuple[str, int, Any]] = context.Queue()
    ready = context.Barrier(processes + 1)
    go = context.Event()
    start_value = context.Value("d", 0.0)
    workers = []
    for index, connections in enumerate(split_connections(spec.connections, processes)):
        shard_spec = ShardSpec(
            plan=spec.plan.shard(index, processes),
            index=index,
            connections=connections,
            host=spec.host,
            port=spec.port,
            timeout=spec.timeout,
        )
        worker = context.Process(
            target=_shard_process,
            args=(shard_spec, messages, ready, go, start_value),
            name=f"bench-load-{index}",
            daemon=True,
        )
        worker.start()
        workers.append(worker)
    try:
        return _gather(workers, messages, ready, go, start_value)
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()


def _gather(
    workers: Sequence[multiprocessing.process.BaseProcess],
    messages: multiprocessing.Queue[tuple[str, int, Any]],
    ready: Barrier,
    go: Event,
    start_value: Any,
) -> LoadResult:
    try:
        ready.wait(START_GATE_SECONDS)
    except Exception as exc:  # BrokenBarrierError, or a timeout: some process never got there
        raise SetupFailed(_first_error(messages) or "a load process did not start") from exc
    start_at = time.perf_counter() + 0.05
    start_value.value = start_at
    go.set()
    progress = Progress(start_at, lag=PROGRESS_LAG)
    records = Records()
    outcome = WorkloadOutcome()
    failure_samples: Counter[str] = Counter()
    cpu_seconds = 0.0
    connections = 0
    pending = len(workers)
    while pending:
        try:
            kind, index, payload = messages.get(timeout=0.2)
        except queue.Empty:
            if not any(worker.is_alive() for worker in workers):
                raise SetupFailed("load processes died without reporting") from None
        else:
            if kind == "chunk":
                progress.add(payload)
                records.extend(payload)
            elif kind == "done":
                result: ShardResult = payload
                progress.add(result.records)
                records.extend(result.records)
                outcome.merge(result.outcome)
                failure_samples.update(result.failure_samples)
                cpu_seconds += result.cpu_seconds
                connections += result.connections
                pending -= 1
            else:
                raise SetupFailed(f"load process {index} failed:\n{payload}")
        progress.print_due()
    progress.print_rest()
    return LoadResult(
        start_at=start_at,
        records=records,
        outcome=outcome,
        cpu_seconds=cpu_seconds,
        connections=connections,
        processes=len(workers),
        failure_samples=failure_samples,
    )


def _first_error(messages: multiprocessing.Queue[tuple[str, int, Any]]) -> str | None:
    with contextlib.suppress(queue.Empty):
        while True:
            kind, index, payload = messages.get(timeout=0.5)
            if kind == "failed":
                return f"load process {index} failed:\n{payload}"
    return None


def _shard_process(
    spec: ShardSpec,
    messages: multiprocessing.Queue[tuple[str, int, Any]],
    ready: Barrier,
    go: Event,
    start_value: Any,
) -> None:
    try:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            result = runner.run(_run_shard(spec, messages, ready, go, start_value))
        messages.put(("done", spec.index, result))
    except BaseException:
        messages.put(("failed", spec.index, traceback.format_exc()))
        ready.abort()


async def _run_shard(
    spec: ShardSpec,
    messages: multiprocessing.Queue[tuple[str, int, Any]],
    ready: Barrier,
    go: Event,
    start_value: Any,
) -> ShardResult:
    shard = _Shard(spec)
    await shard.open()
    await _wait_in_thread(lambda: ready.wait(START_GATE_SECONDS))
    await _wait_in_thread(lambda: go.wait(START_GATE_SECONDS))
    start_at = float(start_value.value)
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))

    def on_tick() -> None:
        messages.put(("chunk", spec.index, shard.take_chunk()))

    return await shard.run(start_at, on_tick, FLUSH_SECONDS)


def _wait_in_thread(wait: Callable[[], object]) -> Awaitable[object]:
    return asyncio.to_thread(wait)
