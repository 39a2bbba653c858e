"""The command line: run the measures in order, then write the table and the plot.

Each measure runs on a clean key space (the harness's own server is flushed
between rows) so one row's data never weighs on the next. A measure that
raises is reported as failed and the run exits non-zero after writing
everything else, so a broken row is visible rather than silently missing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from bench.context import FULL, QUICK, Context, Measure
from bench.plot import PLOT_NAME, draw
from bench.redis_info import server_version
from bench.registry import ALL
from bench.report import RunInfo, write
from bench.result import Outcome, Row, Skipped
from bench.target import redis_target

logger = logging.getLogger("bench")
DEFAULT_OUT = Path(__file__).resolve().parent
PG_ENV = "CREDITS_BENCH_PG_DSN"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="where RESULTS.md, results.json and the plot go",
    )
    parser.add_argument(
        "--only", default="", help="comma-separated measure keys to run (default: all)"
    )
    parser.add_argument("--list", action="store_true", help="list the measures and exit")
    return parser.parse_args(argv)


def run_one(measure: Measure, ctx: Context) -> Row:
    started = time.perf_counter()
    try:
        outcome: Outcome | Skipped = measure.run(ctx)
    except Exception as exc:  # reported in the table and by the exit status
        logger.error("%s failed:\n%s", measure.key, traceback.format_exc())
        outcome = Skipped(f"FAILED: {type(exc).__name__}: {exc}")
    took = time.perf_counter() - started
    text = measure.target.text(outcome.unit if isinstance(outcome, Outcome) else "")
    if isinstance(outcome, Skipped):
        return Row(
            key=measure.key, measure=measure.title, baseline_name=measure.baseline,
            target_text=text, project=None, baseline=None, ratio=None, unit="",
            met=None, seconds=took, notes=[], skipped=outcome.reason,
        )  # fmt: skip
    met = (
        None
        if measure.target.reported_only
        else measure.target.met(outcome.project, outcome.baseline, outcome.ratio)
    )
    return Row(
        key=measure.key, measure=measure.title, baseline_name=measure.baseline,
        target_text=text, project=outcome.project, baseline=outcome.baseline,
        ratio=outcome.ratio, unit=outcome.unit, met=met, seconds=took, notes=outcome.notes,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    if args.list:
        for measure in ALL:
            print(f"{measure.key:16} {measure.title}")
        return 0
    only = {key.strip() for key in args.only.split(",") if key.strip()}
    unknown = only - {m.key for m in ALL}
    if unknown:
        print(f"unknown measure(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    measures = [m for m in ALL if not only or m.key in only]
    sizes = QUICK if args.quick else FULL
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    started_utc = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows: list[Row] = []
    with redis_target() as target:
        ctx = Context(target=target, sizes=sizes, out_dir=out_dir, pg_dsn=os.environ.get(PG_ENV))
        with contextlib.closing(target.client()) as client:
            version = server_version(client)
        for index, measure in enumerate(measures, 1):
            target.reset()
            logger.info("[%d/%d] %s ...", index, len(measures), measure.key)
            row = run_one(measure, ctx)
            rows.append(row)
            logger.info(
                "[%d/%d] %s: %s (%.1f s)",
                index,
                len(measures),
                measure.key,
                _summary(row),
                row.seconds,
            )
        target.reset()
    info = RunInfo(
        mode=sizes.label,
        started_utc=started_utc,
        seconds=time.perf_counter() - ctx.started_s,
        redis_version=version,
        redis_owned=target.owned,
        plot_name=PLOT_NAME,
    )
    draw(ctx.series, out_dir / PLOT_NAME, f"credits: one user's history ({sizes.label} run)")
    write(out_dir, rows, info, ctx.series)
    print((out_dir / "RESULTS.md").read_text("utf-8"))
    failed = [row.key for row in rows if row.skipped and row.skipped.startswith("FAILED")]
    return 1 if failed else 0


def _summary(row: Row) -> str:
    if row.skipped is not None:
        return row.skipped
    ratio = "" if row.ratio is None else f", ratio {row.ratio:.2f}"
    verdict = "reported" if row.met is None else "met" if row.met else "MISSED"
    return f"{row.project:,.2f} {row.unit}{ratio}, target {row.target_text}: {verdict}"
