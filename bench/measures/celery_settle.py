"""``settle_reservation`` throughput on a real Celery worker against a no-op task.

Settlements arrive as tasks from the apps' completion webhooks, so the ledger's
share of a task's cost should be small next to Celery's own (broker round
trips, late acknowledgement, result storage, events). A real worker process
(prefork, two children on this two-core machine) is started on this run's
Redis as broker, result backend and store. For each batch the tasks are put on
a fresh queue first and the worker is then told to consume it, so the
producer's speed is not measured; a batch ends when every result is stored.
Settle and no-op batches alternate.
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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import redis

from bench.context import Context, Measure
from bench.result import Outcome, Skipped, Target
from bench.seed import grant, reserve_many, user_ids
from bench.timing import alternate

logger = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_CONCURRENCY = 2
WORKER_READY_TIMEOUT_S = 60.0
BATCH_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.005
MGET_CHUNK = 1000
USERS = 100
HOLD_TTL_S = 3600
RESERVED, ACTUAL = 10, 7
# task_track_started is on (for Flower): a stored STARTED is not an end state.
UNFINISHED = frozenset({"PENDING", "RECEIVED", "STARTED"})


def _celery_env(url: str) -> dict[str, str]:
    return {
        "CREDITS_REDIS_URL": url,
        "CELERY_BROKER_URL": url,
        "CELERY_RESULT_BACKEND": url,
    }


def run(ctx: Context) -> Outcome | Skipped:
    try:
        import credits.tasks  # noqa: F401
    except ImportError as exc:
        return Skipped(f"not available: credits.tasks does not import ({exc})")
    os.environ.update(_celery_env(ctx.target.url))
    from bench import celery_worker

    name = f"{ctx.target.tag}@bench"
    with _worker(ctx, name), contextlib.closing(ctx.target.client()) as client:
        _wait_ready(celery_worker.app, name)
        return _measure(ctx, client, celery_worker, name)


@contextlib.contextmanager
def _worker(ctx: Context, name: str) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process of ours, stopped (and its pool with it) on exit."""
    log = Path(tempfile.gettempdir()) / f"{ctx.target.tag}-celery-worker.log"
    logger.info("bench Celery worker log: %s", log)
    with open(log, "wb") as sink:
        argv = [
            sys.executable, "-m", "celery", "-A", "bench.celery_worker", "worker",
            "-n", name, "-Q", f"{ctx.target.tag}-idle",
            "--pool", "prefork", "--concurrency", str(WORKER_CONCURRENCY),
            "--without-gossip", "--without-mingle", "-l", "WARNING",
        ]  # fmt: skip
        proc = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            env={**os.environ, **_celery_env(ctx.target.url)},
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this process leads: ours only
            proc.wait()


def _wait_ready(app: Any, name: str) -> None:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if app.control.ping(destination=[name], timeout=0.5):
            return
    raise TimeoutError(
        f"the bench Celery worker {name} did not answer within {WORKER_READY_TIMEOUT_S} s"
    )


def _wait_results(client: redis.Redis, app: Any, task_ids: list[str]) -> None:
    """Poll the result keys until every task has stored SUCCESS; raise on a failure."""
    remaining = [app.backend.get_key_for_task(task_id).decode() for task_id in task_ids]
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    while remaining:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(remaining)} bench tasks still unfinished")
        still: list[str] = []
        for start in range(0, len(remaining), MGET_CHUNK):
            keys = remaining[start : start + MGET_CHUNK]
            for key, raw in zip(keys, cast(list[str | None], client.mget(keys)), strict=True):
                if raw is None:
                    still.append(key)
                    continue
                meta = json.loads(raw)
                if meta["status"] in UNFINISHED:
                    still.append(key)
                elif meta["status"] != "SUCCESS":
                    raise RuntimeError(f"a bench task failed: {meta}")
        remaining = still
        if remaining:
            time.sleep(POLL_S)


def _measure(ctx: Context, client: redis.Redis, module: Any, name: str) -> Outcome:
    app = module.app
    users = user_ids(ctx.target.tag, "celery", USERS)
    grant(client, users, ctx.now_ms())
    tasks = ctx.sizes.celery_tasks
    batches = iter(range(1_000_000))

    def batch(task: Any) -> float:
        queue = f"{ctx.target.tag}-q{next(batches)}"
        holds = reserve_many(client, users, tasks // USERS, ctx.now_ms(), HOLD_TTL_S, RESERVED)
        sent = [task.apply_async((rid, ACTUAL), queue=queue).id for rid in holds]
        start = time.perf_counter()
        app.control.add_consumer(queue, destination=[name], reply=True)
        _wait_results(client, app, sent)
        took = time.perf_counter() - start
        app.control.cancel_consumer(queue, destination=[name], reply=True)
        return len(sent) / took

    paired = alternate(
        ctx.sizes.celery_rounds,
        lambda: batch(module.settle_reservation),
        lambda: batch(module.noop),
    )
    notes = [
        f"{paired.rounds} round(s) of {tasks // USERS * USERS} tasks per side, pre-queued; "
        f"worker: prefork, {WORKER_CONCURRENCY} processes, prefetch 1, late acks, events on",
        "broker, result backend and ledger store: the bench Redis",
    ]
    if ctx.sizes.quick:
        notes.append(f"quick mode: {tasks} tasks per batch")
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="tasks/s",
        notes=notes,
    )


MEASURE = Measure(
    key="celery_settle",
    title="`settle_reservation` task throughput, real worker",
    baseline="a no-op task on the same app, broker and worker",
    target=Target(ratio_min=0.8),
    run=run,
)
