"""The PNG of a run: headline figures, throughput and latency over time, the latency spread.

Needs matplotlib (the `bench` extra); drawn with the Agg backend, so no display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from booking_service.bench.chart_style import (
    BAD,
    CONFIRMED,
    GOOD,
    INK,
    MAX,
    MUTED,
    P95,
    P99,
    PROMOTED,
    REQUESTS,
    ms,
)
from booking_service.bench.report import describe_settings


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

    from booking_service.bench.chart_panels import (
        answers_panel,
        latency_panel,
        rate_panel,
        spread_panel,
    )

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
    rate = fig.add_subplot(grid[1, :2])
    rate_panel(rate, summary)
    latency_panel(fig.add_subplot(grid[2, :2], sharex=rate), summary)
    spread_panel(fig.add_subplot(grid[1, 2]), summary)
    answers_panel(fig.add_subplot(grid[2, 2]), summary)
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
        (ms(lat["p50"]), "p50 latency", P95),
        (ms(lat["p99"]), "p99 latency", P99),
        (ms(lat["max"]), "max latency", MAX),
        (f"{problems:,}", "errors\n(5xx, lost, unexpected)", BAD if problems else GOOD),
    ]
    server = summary.get("server")
    if server:
        cpu = server["cpu_ms_per_request"]
        cards.insert(-1, (f"{cpu:.2f} ms", "server CPU\nper request", INK))
        peak = max(server["peak_rss_mib"].values(), default=0)
        cards.insert(-1, (f"{peak:.0f} MiB", "server peak RSS\n(largest process)", INK))
    floor = summary.get("floor")
    if floor:
        cards.insert(1, (f"{floor['ratio']:.2f}", "ratio to the floor\n(a trivial route)", INK))
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
