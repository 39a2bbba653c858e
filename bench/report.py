"""``RESULTS.md`` and ``results.json``: the table of targets, then how each row was made.

The table is what the README's performance section quotes; the notes under
it say what each number is (sizes, rounds, the baseline's exact form) so that
a reader can judge it without reading the harness.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.context import Point
from bench.result import TIMES, Row

RESULTS_MD = "RESULTS.md"
RESULTS_JSON = "results.json"


@dataclass(frozen=True, slots=True)
class RunInfo:
    mode: str
    started_utc: str
    seconds: float
    redis_version: str
    redis_owned: bool
    plot_name: str

    def describe(self) -> str:
        where = (
            "a redis-server started by the harness"
            if self.redis_owned
            else "CREDITS_BENCH_REDIS_URL"
        )
        return (
            f"{self.mode} run, {self.started_utc}, {self.seconds:.0f} s; "
            f"Redis {self.redis_version} "
            f"({where}); Python {platform.python_version()} on {platform.machine()}, "
            f"{_cpus()} CPUs"
        )


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


def number(value: float, unit: str) -> str:
    """A figure for the table: thousands separated, few decimals, unit last."""
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def _cells(row: Row) -> list[str]:
    if row.skipped is not None:
        return [row.measure, row.skipped, row.baseline_name, "—", row.target_text, "skipped"]
    assert row.project is not None
    project = number(row.project, row.unit)
    baseline = row.baseline_name
    if row.baseline is not None:
        baseline = f"{number(row.baseline, row.unit)} ({row.baseline_name})"
    ratio = "—" if row.ratio is None else f"{row.ratio:.2f}{TIMES}"
    met = "—" if row.met is None else "yes" if row.met else "**no**"
    return [row.measure, project, baseline, ratio, row.target_text, met]


def markdown(rows: list[Row], info: RunInfo) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench` (see `bench/__init__.py`); do not edit by hand.",
        f"{info.describe()}.",
        "",
        "Every ratio is measured side by side in this run, on the same Redis, in alternating",
        "rounds (median of the rounds); absolute figures depend on the machine and are",
        "context only.",
        "",
        "| measure | project | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    lines += [
        "",
        f"![history-read latency and memory vs events]({info.plot_name})",
        "",
        "## How each row was measured",
        "",
    ]
    for row in rows:
        lines.append(f"**{row.measure}** (`{row.key}`, {row.seconds:.1f} s)")
        lines.append("")
        for note in row.notes:
            lines.append(f"- {note}")
        if row.skipped is not None:
            lines.append(f"- {row.skipped}")
        lines.append("")
    return "\n".join(lines)


def write(out_dir: Path, rows: list[Row], info: RunInfo, series: dict[str, list[Point]]) -> None:
    (out_dir / RESULTS_MD).write_text(markdown(rows, info), "utf-8")
    payload: dict[str, Any] = {
        "run": {
            "mode": info.mode,
            "started_utc": info.started_utc,
            "seconds": info.seconds,
            "redis_version": info.redis_version,
        },
        "rows": [row.to_json() for row in rows],
        "series": {name: [[p.events, p.value] for p in points] for name, points in series.items()},
    }
    (out_dir / RESULTS_JSON).write_text(json.dumps(payload, indent=2) + "\n", "utf-8")
