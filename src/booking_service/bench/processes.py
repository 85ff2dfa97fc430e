"""The load split over several processes, for machines where one generator process is not enough.

Each process is a shard with its share of the users and connections. All of them open their
connections first and wait at a barrier; the parent then sets one start time (perf_counter is
the same clock in every process on Linux) and gathers their records as they come, for the
progress line and the report.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import queue
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from multiprocessing.synchronize import Barrier, Event
from typing import Any

from booking_service.bench.load import (
    LoadResult,
    SetupFailed,
    Shard,
    ShardResult,
    ShardSpec,
    new_event_loop,
)
from booking_service.bench.progress import Progress
from booking_service.bench.records import Records
from booking_service.bench.workloads import WorkloadOutcome

FLUSH_SECONDS = 0.25  # how often a load process sends its records to the parent
PROGRESS_LAG = 0.4  # how long the parent waits for late records before printing a second
START_GATE_SECONDS = 120.0  # how long the parent waits for every process to be at the start line


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
        shard_spec = replace(
            spec, plan=spec.plan.shard(index, processes), index=index, connections=connections
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
    shard = Shard(spec)
    await shard.open()
    await asyncio.to_thread(ready.wait, START_GATE_SECONDS)
    await asyncio.to_thread(go.wait, START_GATE_SECONDS)
    start_at = float(start_value.value)
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))

    def on_tick() -> None:
        messages.put(("chunk", spec.index, shard.take_chunk()))

    return await shard.run(start_at, on_tick, FLUSH_SECONDS)
