"""The chart's colours and the small helpers every panel shares (no matplotlib import here)."""

from __future__ import annotations

from typing import Any

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


def tidy(ax: Any) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#e9ecef", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=9, colors=INK)


def ms(value: float, _pos: object = None) -> str:
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    if value >= 10:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms" if value >= 1 else f"{value:.2f} ms"
