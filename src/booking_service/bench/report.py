"""Turning the records of a run into figures: the summary (also the JSON file) and its text."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from booking_service.bench.load import LoadResult
from booking_service.bench.records import (
    BOOK,
    CANCEL_PROMOTED,
    KIND_NAMES,
    Records,
    is_failure,
    outcome_name,
)
from booking_service.bench.scenarios import HEADLINE, Scenario

PERCENTILES = (50, 90, 95, 99)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(len(sorted_values) * pct / 100))
    return sorted_values[rank - 1]


def latency_histogram(sorted_latencies: Sequence[float], bins: int = 48) -> dict[str, list[float]]:
    """Counts in log-spaced bins (ms) from the fastest to the slowest answer, for the chart."""
    if not sorted_latencies:
        return {"edges_ms": [], "counts": []}
    low = max(sorted_latencies[0] * 1000, 0.01)
    high = max(sorted_latencies[-1] * 1000, low * 1.01)
    step = (math.log(high) - math.log(low)) / bins
    edges = [math.exp(math.log(low) + i * step) for i in range(bins + 1)]
    counts = [0] * bins
    for latency in sorted_latencies:
        at = int((math.log(max(latency * 1000, low)) - math.log(low)) / step)
        counts[min(max(at, 0), bins - 1)] += 1
    return {"edges_ms": [round(e, 4) for e in edges], "counts": [float(c) for c in counts]}


def _latency_ms(latencies: Sequence[float]) -> dict[str, float]:
    """Percentiles, max and mean of already sorted latencies, in ms."""
    figures = {f"p{p}": round(percentile(latencies, p) * 1000, 2) for p in PERCENTILES}
    figures["max"] = round(latencies[-1] * 1000, 2) if latencies else 0.0
    figures["mean"] = round(sum(latencies) / len(latencies) * 1000, 2) if latencies else 0.0
    return figures


@dataclass
class _Tally:
    """The records of a run counted by request kind, outcome and second since the start."""

    answered: list[float] = field(default_factory=list)  # latencies, sorted once counted
    by_kind: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    unexpected: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    seconds: defaultdict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    confirmed_at: Counter[int] = field(default_factory=Counter)
    promoted_at: Counter[int] = field(default_factory=Counter)
    failed_at: Counter[int] = field(default_factory=Counter)
    confirmed: int = 0
    promoted: int = 0
    server_errors: int = 0
    booking_failures: int = 0
    last_confirmed: float = 0.0


def _tally(records: Records, start: float, expected: dict[int, frozenset[int]]) -> _Tally:
    tally = _Tally(last_confirmed=start)
    for end, latency, outcome, kind in zip(
        records.ends, records.latencies, records.outcomes, records.kinds, strict=True
    ):
        second = max(0, int(end - start))
        kind_name = KIND_NAMES.get(kind, str(kind))
        if is_failure(outcome):
            tally.failures[outcome_name(outcome)] += 1
            tally.failed_at[second] += 1
            tally.booking_failures += kind == BOOK
            continue
        tally.answered.append(latency)
        tally.seconds[second].append(latency)
        tally.by_kind[kind_name][str(outcome)] += 1
        if outcome >= 500:
            tally.server_errors += 1
        if outcome not in expected.get(kind, frozenset()):
            tally.unexpected[f"{kind_name} {outcome}"] += 1
        if kind == BOOK and outcome == 201:
            tally.confirmed += 1
            tally.confirmed_at[second] += 1
            tally.last_confirmed = max(tally.last_confirmed, end)
        elif kind == CANCEL_PROMOTED and outcome == 200:
            tally.promoted += 1
            tally.promoted_at[second] += 1
    tally.answered.sort()
    return tally


def _timeline(tally: _Tally, elapsed: float) -> list[dict[str, Any]]:
    timeline = []
    for second in range(max([*tally.seconds, *tally.failed_at], default=-1) + 1):
        latencies = sorted(tally.seconds.get(second, []))
        timeline.append(
            {
                "second": second + 1,
                # The last second is cut short where the run ended.
                "length_s": round(min(1.0, elapsed - second), 3),
                "requests": len(latencies),
                "confirmed": tally.confirmed_at[second],
                "promoted": tally.promoted_at[second],
                "failed": tally.failed_at[second],
                **{f"p{p}_ms": round(percentile(latencies, p) * 1000, 2) for p in (50, 95, 99)},
                "max_ms": round(latencies[-1] * 1000, 2) if latencies else 0.0,
            }
        )
    return timeline


def summarize(
    load: LoadResult, *, expected: dict[int, frozenset[int]], settings: dict[str, Any]
) -> dict[str, Any]:
    records, start = load.records, load.start_at
    elapsed = max((max(records.ends) - start) if len(records) else 0.0, 1e-9)
    tally = _tally(records, start, expected)
    confirmed, promoted, answered = tally.confirmed, tally.promoted, tally.answered
    tickets = load.outcome.confirmed_tickets
    sold_out = max(tally.last_confirmed - start, 1e-9)
    status_counts: Counter[str] = Counter()
    for counts in tally.by_kind.values():
        status_counts.update(counts)
    total = len(records)
    return {
        "settings": settings,
        "duration_s": round(elapsed, 3),
        "requests": total,
        "answered": len(answered),
        "requests_per_s": round(len(answered) / elapsed, 1),
        # Bookings confirmed (201s), and the tickets they hold: one each, more with parties.
        "confirmed": confirmed,
        "confirmed_tickets": tickets,
        # Over the time until the last booking was confirmed: in `hot`, the sell-out time.
        "confirmed_s": round(tally.last_confirmed - start, 3),
        "confirmed_per_s": round(confirmed / sold_out, 1),
        "confirmed_tickets_per_s": round(tickets / sold_out, 1),
        # Tickets handed from a cancel straight to the first in line (churn).
        "promoted": promoted,
        "promoted_per_s": round(promoted / elapsed, 1),
        "tickets_handed_out_per_s": round((confirmed + promoted) / elapsed, 1),
        "latency_ms": _latency_ms(answered),
        "latency_histogram": latency_histogram(answered),
        "status_counts": dict(sorted(status_counts.items())),
        "status_counts_by_request": {k: dict(sorted(v.items())) for k, v in tally.by_kind.items()},
        "server_errors": tally.server_errors,
        "unexpected_answers": dict(tally.unexpected),
        "failed_requests": dict(tally.failures),
        "booking_requests_failed": tally.booking_failures,
        "failure_examples": dict(load.failure_samples.most_common(5)),
        "generator": {
            "processes": load.processes,
            "connections": load.connections,
            "cpu_s": round(load.cpu_seconds, 3),
            "cpu_us_per_request": round(load.cpu_seconds / total * 1e6, 1) if total else 0.0,
            "cores_busy": round(load.cpu_seconds / elapsed, 2),
        },
        "timeline": _timeline(tally, elapsed),
    }


def ratio_to_floor(
    scenario: Scenario, summary: dict[str, Any], floor: dict[str, Any]
) -> dict[str, Any]:
    """The run's headline figure over the floor's answers/s, both as the reports state them,
    with what the floor was measured with."""
    figure, unit = HEADLINE[scenario]
    value, floor_rate = summary[figure], floor["requests_per_s"]
    return {
        "figure": figure,
        "unit": unit,
        "value": value,
        "answers_per_s": floor_rate,
        "ratio": round(value / floor_rate, 3) if floor_rate else 0.0,
        "workers": floor["settings"]["workers"],
        "connections": floor["settings"]["connections"],
        "processes": floor["settings"]["processes"],
        "duration_s": floor["duration_s"],
        "latency_ms": floor["latency_ms"],
        "server": floor.get("server"),
    }


def render_text(summary: dict[str, Any]) -> str:
    s = summary["settings"]
    lat = summary["latency_ms"]
    gen = summary["generator"]
    lines = [
        "",
        f"== {s['scenario']}  ({describe_settings(s)})",
        f"   duration        {summary['duration_s']:.2f} s",
        f"   requests        {summary['answered']:,} answered, {summary['requests_per_s']:,.0f}/s",
        f"   latency (ms)    p50 {lat['p50']:.1f}   p95 {lat['p95']:.1f}   "
        f"p99 {lat['p99']:.1f}   max {lat['max']:.1f}",
        "   answers         "
        + (
            ", ".join(
                f"{kind} {code}: {count:,}"
                for kind, counts in summary["status_counts_by_request"].items()
                for code, count in counts.items()
            )
            or "none"
        ),
    ]
    if "book" in summary["status_counts_by_request"]:
        lines.insert(
            4,
            f"   confirmed       {summary['confirmed']:,} bookings of "
            f"{summary['confirmed_tickets']:,} tickets, the last one at "
            f"{summary['confirmed_s']:.2f} s: {summary['confirmed_per_s']:,.0f} bookings/s, "
            f"{summary['confirmed_tickets_per_s']:,.0f} tickets/s",
        )
    if summary["promoted"]:
        lines.append(
            f"   promoted        {summary['promoted']:,} from the line, "
            f"{summary['promoted_per_s']:,.0f}/s"
        )
    lines.append(
        f"   errors          5xx: {summary['server_errors']:,}; no answer: "
        + (", ".join(f"{k}: {v:,}" for k, v in summary["failed_requests"].items()) or "0")
        + "; unexpected: "
        + (", ".join(f"{k}: {v:,}" for k, v in summary["unexpected_answers"].items()) or "0")
    )
    for example, count in summary["failure_examples"].items():
        lines.append(f"      {count:,} x {example}")
    lines.append(
        f"   generator       {gen['processes']} process(es), {gen['connections']} connections, "
        f"{gen['cpu_us_per_request']:.0f} µs CPU per request, {gen['cores_busy']:.2f} cores busy"
    )
    lines += _beside_the_load(summary)
    return "\n".join(lines)


def _beside_the_load(summary: dict[str, Any]) -> list[str]:
    """The lines on the server, the floor and the checks, where the run had them."""
    lines = []
    server = summary.get("server")
    if server:
        peaks = ", ".join(f"pid {pid}: {mib:.0f}" for pid, mib in server["peak_rss_mib"].items())
        lines.append(
            f"   server          {len(server['pids'])} process(es), "
            f"{server['cpu_ms_per_request']:.2f} ms CPU per request, "
            f"{server['cores_busy']:.2f} cores busy; peak RSS (MiB) {peaks}"
        )
    floor = summary.get("floor")
    if floor:
        lines.append(
            f"   ratio to floor  {floor['ratio']:.2f}: {floor['value']:,.0f} {floor['unit']} / "
            f"{floor['answers_per_s']:,.0f} answers/s of a trivial FastAPI route "
            f"({floor['workers']} worker(s), the same load, just before)"
        )
    checks = summary.get("checks")
    if checks:
        lines.append("   checks")
        for check in checks["checks"]:
            mark = "ok  " if check["ok"] else "FAIL"
            lines.append(f"     [{mark}] {check['name']}")
            lines.append(f"            {check['detail']}")
    return lines


def describe_settings(s: dict[str, Any]) -> str:
    parts = [s.get("database") or "", f"{s['connections']} connections"]
    if s.get("scenario") == "floor":
        parts.insert(1, f"{s['workers']} worker(s)")
    if s.get("users"):
        parts.append(f"{s['users']:,} users")
    if s.get("events"):
        parts.append(f"{s['events']:,} event{'s' if s['events'] != 1 else ''}")
    if s.get("tickets"):
        parts.append(
            f"{s['tickets']:,} tickets each"
            if s.get("events", 1) > 1
            else f"{s['tickets']:,} tickets"
        )
    if s.get("party_sizes", [1]) != [1]:
        parts.append("parties of " + ",".join(map(str, s["party_sizes"])))
    if s.get("duration"):
        parts.append(f"{s['duration']:g} s")
    if s.get("label"):
        parts.insert(0, s["label"])
    return ", ".join(p for p in parts if p)
