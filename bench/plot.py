"""The history plot: read latency and memory per event against the number of events.

One picture answers "does a long history cost me?": the left panel should be
flat (reads are O(log N + 50)), the right one should fall to a constant (the
per-user fixed cost amortized, then bytes per event). Drawn with matplotlib's
Agg backend so it runs with no display.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bench.context import Point

PLOT_NAME = "history.png"
logger = logging.getLogger(__name__)


def draw(series: dict[str, list[Point]], path: Path, title: str) -> bool:
    """Write the plot; returns False (and writes nothing) when there is nothing to draw.

    Without matplotlib (the ``bench`` extra) the table is still written; the plot is not.
    """
    if not any(series.values()):
        return False
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed (pip install -e '.[bench]'): no plot")
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, points in series.items() if points]
    figure, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2), squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        points = sorted(series[name], key=lambda p: p.events)
        axis.plot([p.events for p in points], [p.value for p in points], marker="o")
        axis.set_xscale("log")
        axis.set_xlabel("events in the user's log")
        axis.set_ylabel(name)
        axis.set_ylim(bottom=0)
        axis.grid(True, which="both", alpha=0.3)
        for p in points:
            axis.annotate(
                f"{p.value:.0f}",
                (p.events, p.value),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
