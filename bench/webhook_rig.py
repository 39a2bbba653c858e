"""What the webhook rows share: receivers, a delivery worker, a beat, and real events.

* receivers are ``python -m bench.webhook_receiver`` processes (``ok`` or ``hang``);
* the worker is ``celery -A credits.tasks worker`` on the bench Redis (broker,
  backend and store), prefork, with ``CREDITS_WEBHOOK_ALLOW_PRIVATE=1`` (the
  receivers are on loopback) and the environment a row asks for;
* the beat is a thread sending the dispatcher tick every ``TICK_S`` to the
  worker's queue (so a run starts within a tick of an event being written);
* events are written by the ledger's own scripts: holds reserved and expired
  by a read (``reservation.expired``), pipelined.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis
from celery import Celery

from bench.pipelined import run_pipelined
from bench.seed import grant, reserve_many
from credits import Credits, WebhookEndpoint, ledger
from credits.protocol import Now
from credits.redis_server import free_port
from credits.transport import blocking_executor, drive

logger = logging.getLogger(__name__)
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per baseline POST otherwise
REPO_ROOT = Path(__file__).resolve().parents[1]
TICK_S = 0.2
TASK = "credits.tasks.deliver_events"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.01
HOLD_TTL_S = 60


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this process leads: ours only
        proc.wait()


def _wait(check: Any, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out waiting for {what}")
        time.sleep(POLL_S)


class ReceiverProcess:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/hook"

    def count(self) -> int:
        answer = httpx.get(f"http://127.0.0.1:{self.port}/count", timeout=5.0)
        return int(answer.json()["unique"])

    def arrivals(self) -> dict[str, float]:
        answer = httpx.get(f"http://127.0.0.1:{self.port}/arrivals", timeout=30.0)
        decoded: dict[str, float] = answer.json()
        return decoded


@contextlib.contextmanager
def receiver(mode: str = "ok") -> Iterator[ReceiverProcess]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.webhook_receiver", str(port), mode],
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    started = ReceiverProcess(port)

    def answers() -> bool:
        try:
            started.count()
            return True
        except httpx.TransportError:
            return False

    try:
        _wait(answers, "the bench webhook receiver")
        yield started
    finally:
        _stop(proc)


@contextlib.contextmanager
def worker(url: str, tag: str, *, concurrency: int, env: dict[str, str]) -> Iterator[str]:
    """A delivery worker on its own queue; yields the queue's name."""
    queue = f"{tag}-webhooks-{uuid.uuid4().hex[:6]}"
    name = f"{queue}@bench"
    log = Path(tempfile.gettempdir()) / f"{queue}.log"
    logger.info("bench webhook worker log: %s", log)
    full_env = {
        **os.environ, "CREDITS_REDIS_URL": url, "CELERY_BROKER_URL": url,
        "CELERY_RESULT_BACKEND": url, "CREDITS_WEBHOOK_ALLOW_PRIVATE": "1", **env,
    }  # fmt: skip
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "credits.tasks", "worker", "-n", name,
             "-Q", queue, "--pool", "prefork", "--concurrency", str(concurrency),
             "--without-gossip", "--without-mingle", "-l", "INFO"],
            cwd=REPO_ROOT, env=full_env, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait(lambda: f"{name} ready." in log.read_text(errors="replace"), "the webhook worker")
        yield queue
    finally:
        _stop(proc)


class Beat:
    """The dispatcher tick every TICK_S, to ``queue``."""

    def __init__(self, url: str, queue: str) -> None:
        self._app = Celery("bench-webhooks", broker=url)
        self._queue = queue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self._app.send_task(TASK, queue=self._queue, expires=5)

    def __enter__(self) -> Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._app.close()


def add_endpoint(client: Credits, url: str) -> WebhookEndpoint:
    """Register ``url`` with loopback allowed (the bench's receivers are on loopback)."""
    from credits.webhooks.registry import add_webhook

    return drive(add_webhook(url, None, None, allow_private=True), blocking_executor(client.redis))


def expired_events(client: redis.Redis, users: list[str], per_user: int, now_ms: int) -> int:
    """``per_user`` reservation.expired events for each user (granted first); how many."""
    grant(client, users, now_ms)
    reserve_many(client, users, per_user, now_ms, HOLD_TTL_S)
    later = now_ms + (HOLD_TTL_S + 1) * 1000
    run_pipelined(client, (ledger.get_balance(Now(later), user) for user in users))
    return len(users) * per_user


def wait_count(target: ReceiverProcess, count: int, timeout_s: float) -> None:
    _wait(lambda: target.count() >= count, f"{count} webhook deliveries", timeout_s)


def arrival_of(target: ReceiverProcess, event_id: str) -> float | None:
    return target.arrivals().get(event_id)


def event_ids_of(client: redis.Redis, user: str) -> list[str]:
    """The outbox event ids of ``user`` (its bucket's stream, filtered)."""
    from credits.events import event_id
    from credits.keys import user_keys

    keys = user_keys(user)
    entries: list[tuple[str, dict[str, str]]] = client.xrevrange(  # type: ignore[assignment]
        keys.outbox, "+", "-", count=200
    )
    return [event_id(keys.bucket, i) for i, f in entries if f.get("u") == keys.escaped]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
