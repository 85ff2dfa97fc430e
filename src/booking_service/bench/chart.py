"""The PNG of a run: headline figures, throughput and latency over time, the latency spread.

Needs matplotlib (the `bench` extra); drawn with the Agg backend, so no display is needed.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

from booking_service.bench.report import describe_settings

REQUESTS = "#457b9d"
CONFIRMED = "#2a9d8f"
FAILED = "#c1121f"
PROMOTED = "#e9c46a"
P50 = "#8ecae6"
P95 = "#219ebc"
P99 = "#e76f51"
MAX = "#6c757d"
INK = "#1d3557"
MUTED = "#6c757d"
GOOD = "#2a9d8f"
BAD = "#c1121f"


class ChartUnavailable(Exception):
    """matplotlib is not installed."""


def write_chart(summary: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib
    except ImportError as exc:
        raise ChartUnavailable(
            "charts need matplotlib: pip install 'booking-service[bench]'"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    timeline = summary["timeline"]
    settings = summary["settings"]
    fig = plt.figure(figsize=(14, 9), dpi=110, facecolor="white")
    grid = fig.add_gridspec(
        3,
        3,
        height_ratios=[0.38, 1, 1],
        width_ratios=[1, 1, 0.8],
        hspace=0.45,
        wspace=0.34,
        left=0.06,
        right=0.97,
        top=0.9,
        bottom=0.07,
    )
    _title(fig, summary)
    _headline(fig.add_subplot(grid[0, :]), summary)

    # Each point covers one second (second - 1, second]: drawn at its middle.
    seconds = [point["second"] - 0.5 for point in timeline]
    thousands = FuncFormatter(lambda value, _pos: f"{value:,.0f}")

    rate = fig.add_subplot(grid[1, :2])
    rate.bar(
        seconds,
        _per_second(timeline, "requests"),
        width=0.9,
        color=REQUESTS,
        alpha=0.35,
        label="answers / s",
    )
    for key, color, label in (
        ("confirmed", CONFIRMED, "confirmed bookings / s"),
        ("promoted", PROMOTED, "promoted from the line / s"),
    ):
        if any(p[key] for p in timeline):
            rate.plot(
                seconds,
                _per_second(timeline, key),
                color=color,
                linewidth=2.4,
                marker="o",
                markersize=3.5,
                label=label,
            )
    if any(p["failed"] for p in timeline):
        rate.bar(
            seconds, _per_second(timeline, "failed"), width=0.9, color=FAILED, label="no answer / s"
        )
    if summary["confirmed"] and settings["scenario"] == "hot":
        sold_out = summary["confirmed_s"]
        rate.axvline(sold_out, color=CONFIRMED, linestyle="--", linewidth=1.2)
        rate.annotate(
            f"last ticket sold at {sold_out:.1f} s",
            xy=(sold_out, 0.5),
            xycoords=("data", "axes fraction"),
            xytext=(6, 0),
            textcoords="offset points",
            color=CONFIRMED,
            fontsize=9.5,
        )
    rate.set_title("Throughput, second by second", loc="left", fontsize=12, color=INK)
    rate.set_ylabel("per second")
    rate.yaxis.set_major_formatter(thousands)
    rate.set_xlim(0, max(seconds, default=0.5) + 0.5)
    rate.legend(loc="lower right", bbox_to_anchor=(1, 1), frameon=False, fontsize=9, ncol=3)
    _tidy(rate)

    latency = fig.add_subplot(grid[2, :2], sharex=rate)
    for key, color, label, width in (
        ("p50_ms", P50, "p50", 2.0),
        ("p95_ms", P95, "p95", 2.0),
        ("p99_ms", P99, "p99", 2.4),
    ):
        latency.plot(
            seconds,
            [p[key] for p in timeline],
            color=color,
            linewidth=width,
            marker="o",
            markersize=3,
            label=label,
        )
    latency.scatter(
        seconds,
        [p["max_ms"] for p in timeline],
        color=MAX,
        s=70,
        marker="_",
        linewidths=2,
        label="max",
        zorder=3,
    )
    latency.set_yscale("log")
    latency.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    latency.yaxis.set_major_formatter(FuncFormatter(_ms))
    latency.yaxis.set_minor_formatter(NullFormatter())
    latency.set_title(
        "Latency, second by second",
        loc="left",
        fontsize=12,
        color=INK,
    )
    latency.set_xlabel("seconds since the start")
    latency.set_ylabel("latency")
    latency.legend(loc="lower right", bbox_to_anchor=(1, 1), frameon=False, fontsize=9, ncol=4)
    _tidy(latency)

    spread = fig.add_subplot(grid[1, 2])
    histogram = summary["latency_histogram"]
    edges, counts = histogram["edges_ms"], histogram["counts"]
    if counts:
        widths = [b - a for a, b in itertools.pairwise(edges)]
        spread.bar(edges[:-1], counts, width=widths, align="edge", color=REQUESTS, alpha=0.6)
        spread.set_xscale("log")
        spread.xaxis.set_major_locator(LogLocator(subs=(1.0,)))
        spread.xaxis.set_major_formatter(FuncFormatter(_ms))
        spread.xaxis.set_minor_formatter(NullFormatter())
        lat = summary["latency_ms"]
        top = max(counts)
        for key, color, height in (("p50", P50, 1.05), ("p95", P95, 1.25), ("p99", P99, 1.45)):
            spread.axvline(lat[key], color=color, linewidth=2)
            spread.text(
                lat[key],
                top * height,
                f"{key}\n{_ms(lat[key])}",
                color=INK,
                fontsize=8.5,
                ha="center",
                va="bottom",
                bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": color},
            )
        spread.set_ylim(0, top * 1.75)
    spread.set_title("Latency spread, whole run", loc="left", fontsize=12, color=INK)
    spread.set_ylabel("answers")
    spread.yaxis.set_major_formatter(thousands)
    _tidy(spread)

    answers = fig.add_subplot(grid[2, 2])
    rows = [
        (f"{kind}\n{code}", count)
        for kind, codes in summary["status_counts_by_request"].items()
        for code, count in codes.items()
    ] + [(f"no answer\n{name}", count) for name, count in summary["failed_requests"].items()]
    if rows:
        labels = [label for label, _ in rows]
        values = [count for _, count in rows]
        colors = [_answer_color(label) for label in labels]
        bars = answers.barh(labels, values, color=colors)
        answers.invert_yaxis()
        for bar, value in zip(bars, values, strict=True):
            answers.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {value:,}",
                va="center",
                fontsize=9,
                color=INK,
            )
        answers.set_xlim(0, max(values) * 1.3)
    answers.set_title("Answers by request and status", loc="left", fontsize=12, color=INK)
    answers.xaxis.set_major_formatter(thousands)
    _tidy(answers)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _title(fig: Any, summary: dict[str, Any]) -> None:
    settings = summary["settings"]
    fig.text(
        0.06,
        0.955,
        f"booking-service bench · {settings['scenario']}",
        fontsize=19,
        fontweight="bold",
        color=INK,
    )
    fig.text(
        0.06,
        0.925,
        f"{describe_settings(settings)}   ·   {settings['url']}   ·   {settings['started_at']}",
        fontsize=10.5,
        color=MUTED,
    )
    checks = summary.get("checks")
    if checks is not None:
        ok = checks["ok"]
        fig.text(
            0.97,
            0.95,
            "invariants hold" if ok else "INVARIANT BROKEN",
            ha="right",
            fontsize=13,
            fontweight="bold",
            color="white",
            bbox={
                "boxstyle": "round,pad=0.45",
                "facecolor": GOOD if ok else BAD,
                "edgecolor": "none",
            },
        )


def _headline(ax: Any, summary: dict[str, Any]) -> None:
    ax.axis("off")
    lat = summary["latency_ms"]
    problems = (
        summary["server_errors"]
        + sum(summary["failed_requests"].values())
        + sum(summary["unexpected_answers"].values())
    )
    cards = []
    if summary["settings"]["scenario"] == "churn":
        handed_out = f"{summary['tickets_handed_out_per_s']:,.0f}"
        cards.append((handed_out, "tickets booked\nor promoted / s", CONFIRMED))
        cards.append((f"{summary['promoted_per_s']:,.0f}", "promoted from\nthe line / s", PROMOTED))
    elif summary["confirmed"]:
        cards.append((f"{summary['confirmed_per_s']:,.0f}", "confirmed bookings / s", CONFIRMED))
    cards += [
        (f"{summary['requests_per_s']:,.0f}", "answers / s", REQUESTS),
        (_ms(lat["p50"]), "p50 latency", P95),
        (_ms(lat["p99"]), "p99 latency", P99),
        (_ms(lat["max"]), "max latency", MAX),
        (f"{problems:,}", "errors\n(5xx, lost, unexpected)", BAD if problems else GOOD),
    ]
    server = summary.get("server")
    if server:
        cpu = server["cpu_ms_per_request"]
        cards.insert(-1, (f"{cpu:.2f} ms", "server CPU\nper request", INK))
        peak = max(server["peak_rss_mib"].values(), default=0)
        cards.insert(-1, (f"{peak:.0f} MiB", "server peak RSS\n(largest process)", INK))
    width = 1 / len(cards)
    for index, (value, label, color) in enumerate(cards):
        x = index * width + width / 2
        ax.text(
            x,
            0.68,
            value,
            ha="center",
            va="center",
            fontsize=24 if len(cards) <= 6 else 20,
            fontweight="bold",
            color=color,
            transform=ax.transAxes,
        )
        ax.text(
            x,
            0.3,
            label,
            ha="center",
            va="top",
            fontsize=10,
            color=MUTED,
            transform=ax.transAxes,
        )


def _per_second(timeline: list[dict[str, Any]], key: str) -> list[float]:
    """Counts as rates; a last second cut to under half is too short for one (NaN: not drawn)."""
    return [p[key] / p["length_s"] if p["length_s"] >= 0.5 else math.nan for p in timeline]


def _tidy(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#e9ecef", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9, colors=INK)


def _ms(value: float, _pos: object = None) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"


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
