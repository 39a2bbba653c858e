"""``celery beat`` keeps its schedule in the data dir, never in the directory it started in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from worker_rig import clean_env

from credits.waiting import wait_until

pytestmark = pytest.mark.system  # starts celery beat

BEAT_START_TIMEOUT_S = 60.0


def test_beat_writes_its_schedule_into_the_data_dir(redis_url: str, tmp_path: Path) -> None:
    started_in = tmp_path / "cwd"
    started_in.mkdir()
    data_dir = tmp_path / "data" / "not-yet-made"
    env = clean_env(CREDITS_REDIS_URL=redis_url, CREDITS_DATA_DIR=str(data_dir))
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "credits.tasks", "beat", "--loglevel", "INFO"],
            cwd=started_in, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def scheduled() -> bool:
            if beat.poll() is not None:
                raise RuntimeError(f"beat exited {beat.returncode}:\n{log.read_text()}")
            return any(data_dir.glob("celerybeat-schedule*"))

        wait_until(scheduled, timeout_s=BEAT_START_TIMEOUT_S, what="beat's schedule file")
    finally:
        beat.terminate()
        beat.wait(timeout=30)
    assert list(started_in.iterdir()) == [], "beat left files in the directory it started in"
