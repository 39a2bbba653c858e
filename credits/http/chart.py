"""The admin page's balance-over-time chart, as inline SVG.

Why SVG made here: the page must work with no internet, so no chart library
from a CDN, and no script at all is needed for a line. The points are exact
(``balance_at`` at evenly spaced instants over the user's life); only numbers
and dates go into the SVG, never user data, and they are escaped anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Final

WIDTH: Final = 720
HEIGHT: Final = 220
LEFT: Final = 64
RIGHT: Final = 16
TOP: Final = 16
BOTTOM: Final = 32
BALANCE_COLOR: Final = "#1d4ed8"
HELD_COLOR: Final = "#b45309"


@dataclass(frozen=True, slots=True)
class Point:
    at_ms: int
    balance: int
    held: int


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _polyline(
    values: list[tuple[int, int]], x_of: Callable[[int], float], y_of: Callable[[int], float]
) -> str:
    return " ".join(f"{x_of(at):.1f},{y_of(value):.1f}" for at, value in values)


def balance_chart(points: list[Point]) -> str:
    """An SVG step-free line chart of balance (and held) at each point; "" for no points."""
    if not points:
        return ""
    start, end = points[0].at_ms, points[-1].at_ms
    span = max(end - start, 1)
    top = max(max(p.balance for p in points), max(p.held for p in points), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(ms: int) -> float:
        return LEFT + (ms - start) / span * plot_w

    def y_of(value: int) -> float:
        return TOP + plot_h - value / top * plot_h

    grid = []
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h - fraction * plot_h
        label = escape(f"{round(top * fraction):,}")
        grid.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    balance_line = _polyline([(p.at_ms, p.balance) for p in points], x_of, y_of)
    held_line = _polyline([(p.at_ms, p.held) for p in points], x_of, y_of)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="chart-title" '
        'class="chart" id="balance-chart">'
        '<title id="chart-title">Balance and held credits over time</title>'
        + "".join(grid)
        + f'<polyline points="{balance_line}" fill="none" stroke="{BALANCE_COLOR}" '
        'stroke-width="2" class="balance"/>'
        f'<polyline points="{held_line}" fill="none" stroke="{HELD_COLOR}" '
        'stroke-width="1.5" stroke-dasharray="5 4" class="held"/>'
        f'<text x="{LEFT}" y="{HEIGHT - 8}">{escape(_date(start))}</text>'
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{escape(_date(end))}</text>"
        "</svg>"
    )
