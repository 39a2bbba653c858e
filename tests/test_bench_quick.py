"""``python -m bench --quick`` produces every row of the performance table, with numbers.

Only presence is checked, never values: timings on a shared machine are not
something a test can hold (docs/CONTRACT.md, "Performance targets"). The run writes into a temporary
directory (``--out``), so the committed ``bench/RESULTS.md`` is untouched.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.registry import ALL
from bench.report import RESULTS_JSON, RESULTS_MD

REPO_ROOT = Path(__file__).resolve().parents[1]
QUICK_TIMEOUT_S = 180  # the harness aims at under a minute; this only catches a hang

pytestmark = pytest.mark.slow


def _optional_rows() -> dict[str, str]:
    """Rows that may be skipped here, and why; every other row must have numbers."""
    optional = {}
    if not os.environ.get("CREDITS_BENCH_PG_DSN"):
        optional["hot_user_pg"] = "CREDITS_BENCH_PG_DSN is not set"
        from bench.pg_server import _binaries

        if _binaries() is None:
            optional["archive_pg"] = "no CREDITS_BENCH_PG_DSN and no PostgreSQL binaries"
    from credits import Credits

    if not hasattr(Credits, "deduct_many"):
        optional["bulk"] = "no bulk API"
    try:
        import credits.tasks  # noqa: F401
    except ImportError:
        optional["celery_settle"] = "credits.tasks does not import"
    return optional


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if k != "CREDITS_BENCH_REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=QUICK_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"bench failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    return out, json.loads((out / RESULTS_JSON).read_text("utf-8"))


def test_every_row_is_present_with_numbers(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _, results = quick_run
    rows = {row["key"]: row for row in results["rows"]}
    assert list(rows) == [measure.key for measure in ALL]
    optional = _optional_rows()
    for key, row in rows.items():
        if row["skipped"] is not None:
            assert key in optional, f"{key} was skipped: {row['skipped']}"
            assert not row["skipped"].startswith("FAILED"), row["skipped"]
            continue
        assert _is_number(row["project"]), row
        reported_only = row["target_text"] == "none (reported)"
        assert isinstance(row["met"], bool) or (reported_only and row["met"] is None), row
        assert row["target_text"], row
        if row["baseline_name"] != "—":
            assert _is_number(row["baseline"]), row
            assert _is_number(row["ratio"]), row


def test_results_table_and_plot_are_written(quick_run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = quick_run
    table = (out / RESULTS_MD).read_text("utf-8")
    assert "| measure | project | baseline | ratio | target | met |" in table
    for measure in ALL:
        assert measure.title in table
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pytest.skip("matplotlib (the bench extra) is not installed: no plot")
    assert (out / "history.png").stat().st_size > 0
