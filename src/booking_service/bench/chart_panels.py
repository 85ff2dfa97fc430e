"""The chart's four plots: throughput and latency second by second, the latency spread over the
whole run, and the answers by request and status. Imported once matplotlib is known to be there."""

from __future__ import annotations

import itertools
import math
from typing import Any

from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from booking_service.bench.chart_style import (
    CONFIRMED,
    FAILED,
    INK,
    MAX,
    P50,
    P95,
    P99,
    PROMOTED,
    REQUESTS,
    ms,
    tidy,
)

THOUSANDS = FuncFormatter(lambda value, _pos: f"{value:,.0f}")


def seconds_of(timeline: list[dict[str, Any]]) -> list[float]:
    """Each point covers one second (second - 1, second]: drawn at its middle."""
    return [point["second"] - 0.5 for point in timeline]


def rate_panel(ax: Any, summary: dict[str, Any]) -> None:
    timeline = summary["timeline"]
    seconds = seconds_of(timeline)
    requests = _per_second(timeline, "requests")
    ax.bar(seconds, requests, width=0.9, color=REQUESTS, alpha=0.35, label="answers / s")
    for key, color, label in (
        ("confirmed", CONFIRMED, "confirmed bookings / s"),
        ("promoted", PROMOTED, "promoted from the line / s"),
    ):
        if any(p[key] for p in timeline):
            ax.plot(
                seconds,
                _per_second(timeline, key),
                color=color,
                linewidth=2.4,
                marker="o",
                markersize=3.5,
                label=label,
            )
    if any(p["failed"] for p in timeline):
        failed = _per_second(timeline, "failed")
        ax.bar(seconds, failed, width=0.9, color=FAILED, label="no answer / s")
    if summary["confirmed"] and summary["settings"]["scenario"] == "hot":
        sold_out = summary["confirmed_s"]
        ax.axvline(sold_out, color=CONFIRMED, linestyle="--", linewidth=1.2)
        ax.annotate(
            f"last ticket sold at {sold_out:.1f} s",
            xy=(sold_out, 0.5),
            xycoords=("data", "axes fraction"),
            xytext=(6, 0),
            textcoords="offset points",
            color=CONFIRMED,
            fontsize=9.5,
        )
    ax.set_title("Throughput, second by second", loc="left", fontsize=12, color=INK)
    ax.set_ylabel("per second")
    ax.yaxis.set_major_formatter(THOUSANDS)
    ax.set_xlim(0, max(seconds, default=0.5) + 0.5)
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), frameon=False, fontsize=9, ncol=3)
    tidy(ax)


def latency_panel(ax: Any, summary: dict[str, Any]) -> None:
    timeline = summary["timeline"]
    seconds = seconds_of(timeline)
    for key, color, label, width in (
        ("p50_ms", P50, "p50", 2.0),
        ("p95_ms", P95, "p95", 2.0),
        ("p99_ms", P99, "p99", 2.4),
    ):
        ax.plot(
            seconds,
            [p[key] for p in timeline],
            color=color,
            linewidth=width,
            marker="o",
            markersize=3,
            label=label,
        )
    highest = [p["max_ms"] for p in timeline]
    ax.scatter(seconds, highest, color=MAX, s=70, marker="_", linewidths=2, label="max", zorder=3)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(ms))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_title("Latency, second by second", loc="left", fontsize=12, color=INK)
    ax.set_xlabel("seconds since the start")
    ax.set_ylabel("latency")
    ax.legend(loc="lower right", bbox_to_anchor=(1, 1), frameon=False, fontsize=9, ncol=4)
    tidy(ax)


def spread_panel(ax: Any, summary: dict[str, Any]) -> None:
    histogram = summary["latency_histogram"]
    edges, counts = histogram["edges_ms"], histogram["counts"]
    if counts:
        widths = [b - a for a, b in itertools.pairwise(edges)]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color=REQUESTS, alpha=0.6)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0,)))
        ax.xaxis.set_major_formatter(FuncFormatter(ms))
        ax.xaxis.set_minor_formatter(NullFormatter())
        lat = summary["latency_ms"]
        top = max(counts)
        for key, color, height in (("p50", P50, 1.05), ("p95", P95, 1.25), ("p99", P99, 1.45)):
            ax.axvline(lat[key], color=color, linewidth=2)
            ax.text(
                lat[key],
                top * height,
                f"{key}\n{ms(lat[key])}",
                color=INK,
                fontsize=8.5,
                ha="center",
                va="bottom",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": color},
            )
        ax.set_ylim(0, top * 1.75)
    ax.set_title("Latency spread, whole run", loc="left", fontsize=12, color=INK)
    ax.set_ylabel("answers")
    ax.yaxis.set_major_formatter(THOUSANDS)
    tidy(ax)


def answers_panel(ax: Any, summary: dict[str, Any]) -> None:
    rows = [
        (f"{kind}\n{code}", count)
        for kind, codes in summary["status_counts_by_request"].items()
        for code, count in codes.items()
    ] + [(f"no answer\n{name}", count) for name, count in summary["failed_requests"].items()]
    if rows:
        labels = [label for label, _ in rows]
        values = [count for _, count in rows]
        bars = ax.barh(labels, values, color=[_answer_color(label) for label in labels])
        ax.invert_yaxis()
        for bar, value in zip(bars, values, strict=True):
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {value:,}",
                va="center",
                fontsize=9,
                color=INK,
            )
        ax.set_xlim(0, max(values) * 1.3)
    ax.set_title("Answers by request and status", loc="left", fontsize=12, color=INK)
    ax.xaxis.set_major_formatter(THOUSANDS)
    tidy(ax)


def _per_second(timeline: list[dict[str, Any]], key: str) -> list[float]:
    """Counts as rates; a last second cut to under half is too short for one (NaN: not drawn)."""
    return [p[key] / p["length_s"] if p["length_s"] >= 0.5 else math.nan for p in timeline]


def _answer_color(label: str) -> str:
    code = label.rsplit("\n", 1)[-1]
    if label.startswith("no answer") or code.startswith("5"):
        return FAILED
    if code == "201":
        return CONFIRMED
    if code == "202" or "promote" in label:
        return PROMOTED
    if code.startswith("4"):
        return "#f4a261"
    return REQUESTS
