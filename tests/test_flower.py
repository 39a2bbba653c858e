"""Flower, started the way ``credits up`` starts it, with basic auth from the environment."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from worker_rig import REPO_ROOT, clean_env

from credits.redis_server import free_port
from credits.waiting import wait_until

pytestmark = pytest.mark.system  # starts its own servers or processes

FLOWER_START_TIMEOUT_S = 60.0
USER, PASSWORD = "ops", "s3cret-pass"


@pytest.fixture
def flower(redis_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = clean_env(
        CREDITS_REDIS_URL=redis_url,
        FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}",
    )
    log_path = tmp_path / "flower.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "credits.tasks.flower", f"--port={port}", "--address=127.0.0.1"],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"flower exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            return httpx.get(f"{base}/healthcheck", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, timeout_s=FLOWER_START_TIMEOUT_S, what="Flower to listen")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_metrics_need_the_basic_auth_and_answer_with_it(flower: str) -> None:
    anonymous = httpx.get(f"{flower}/metrics", timeout=5.0)
    assert anonymous.status_code == 401
    assert anonymous.headers.get("www-authenticate", "").startswith("Basic")

    wrong = httpx.get(f"{flower}/metrics", auth=(USER, "wrong"), timeout=5.0)
    assert wrong.status_code == 401

    scraped = httpx.get(f"{flower}/metrics", auth=(USER, PASSWORD), timeout=5.0)
    assert scraped.status_code == 200
    assert "flower_events_total" in scraped.text or "flower_" in scraped.text
    assert "# TYPE" in scraped.text


def test_the_dashboard_needs_the_basic_auth_too(flower: str) -> None:
    assert httpx.get(f"{flower}/workers", timeout=5.0).status_code == 401
    assert httpx.get(f"{flower}/workers", auth=(USER, PASSWORD), timeout=5.0).status_code == 200
