"""Redis restarted under running Celery workers: every settle lands, none lands twice.

One Redis is broker, result backend and ledger store at once (the compose
setup). While a real worker (tests/workers.py) works through a queue of settle
tasks, that Redis is restarted twice: once cleanly (SIGTERM) and once with
``kill -9`` (AOF with ``appendfsync always``, so the queue itself survives).
Tasks in flight see ``StoreUnavailableError`` and retry, or lose their broker
connection and come back through the visibility timeout or the outbox; the
ledger turns every second delivery into a no-op. At the end every hold is
settled exactly once, counted in the log.

tests/test_tasks.py covers the ledger's store going away while the broker stays
up, and SIGKILL of the worker itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from worker_rig import PRODUCER, REPO_ROOT, Supervisor, Workers, clean_env

from credits import Credits
from credits.redis_server import RedisServer
from credits.tasks.outbox import OUTBOX_KEY
from credits.waiting import wait_until

HOLDS = 120
HELD_EACH = 10
ACTUAL_EACH = 6
VISIBILITY_TIMEOUT_S = 3  # unacked tasks of a lost connection come back in seconds
SETTLED_TIMEOUT_S = 90.0


@pytest.fixture
def one_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis", persistent=True, appendfsync="always") as server:
        yield server


def _settled(client: Credits, user: str) -> int:
    return HOLDS - client.get_account(user).held // HELD_EACH


def _state(server: RedisServer, user: str, queue: str) -> dict[str, int] | str:
    try:
        with Credits(server.url, socket_timeout=1) as client:
            raw = client.redis
            return {
                "settled": _settled(client, user),
                "queued": raw.llen(queue),
                "unacked": raw.hlen("unacked"),
                "outbox": raw.hlen(OUTBOX_KEY),
            }
    except Exception as exc:  # the server is coming back; look again
        return repr(exc)


def _until_settled(server: RedisServer, user: str, supervisor: Supervisor, count: int) -> None:
    def enough() -> bool:
        state = _state(server, user, supervisor.worker.queue)
        if isinstance(state, dict):  # restart a dead worker only once Redis answers
            supervisor.check()
        return isinstance(state, dict) and state["settled"] >= count

    try:
        wait_until(enough, timeout_s=SETTLED_TIMEOUT_S, what=f"{count} settles")
    except TimeoutError as timeout:
        worker = supervisor.worker
        noteworthy = [
            line for line in worker.log_path.read_text().splitlines() if "INFO" not in line
        ]
        raise AssertionError(
            f"{timeout}; now {_state(server, user, worker.queue)}; worker log (no INFO):\n"
            + "\n".join(noteworthy[-60:])
        ) from None


@pytest.mark.slow
def test_redis_restarts_under_the_workers(one_redis: RedisServer, tmp_path: Path) -> None:
    user = "restart-user"
    start_balance = HOLDS * HELD_EACH + 500
    with Credits(one_redis.url) as client:
        client.initialize_user(user, start_balance)
        holds = [
            client.reserve(user, HELD_EACH, "video_generation", ttl=3600).id for _ in range(HOLDS)
        ]
    workers = Workers(one_redis.url, tmp_path / "logs")
    (tmp_path / "logs").mkdir()
    env = clean_env(
        CREDITS_REDIS_URL=one_redis.url,
        CELERY_BROKER_URL=one_redis.url,
        CELERY_RESULT_BACKEND=one_redis.url,
        CREDITS_BROKER_VISIBILITY_TIMEOUT_S=str(VISIBILITY_TIMEOUT_S),
    )
    try:
        supervisor = Supervisor(workers, visibility_timeout_s=VISIBILITY_TIMEOUT_S)
        subprocess.run(
            [sys.executable, "-c", PRODUCER, workers.queue, str(ACTUAL_EACH)],
            input=json.dumps(holds), text=True, cwd=REPO_ROOT, env=env,
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip

        _until_settled(one_redis, user, supervisor, HOLDS // 4)
        one_redis.restart()  # clean: SIGTERM, AOF flushed
        _until_settled(one_redis, user, supervisor, HOLDS // 2)
        one_redis.kill()  # a crash: SIGKILL
        time.sleep(0.5)
        one_redis.start()
        _until_settled(one_redis, user, supervisor, HOLDS)
        supervisor.check()
        assert supervisor.worker.alive
        # For the record (docs/RELIABILITY.md): how often kombu's race killed the worker.
        print(f"worker crashes survived: {len(supervisor.crashes)} {supervisor.crashes}")
    finally:
        logs = workers.logs()
        workers.stop_all()

    with Credits(one_redis.url) as client:
        txs = client.get_transactions(user, limit=1000)
        settles = [tx for tx in txs if tx.type == "settle"]
        assert len(settles) == HOLDS, logs[-3000:]
        assert {tx.reservation_id for tx in settles} == set(holds)
        assert all(tx.amount == ACTUAL_EACH for tx in settles)
        account = client.get_account(user)
        assert (account.balance, account.held) == (start_balance - HOLDS * ACTUAL_EACH, 0)
        assert all(client.get_reservation(rid).status == "settled" for rid in holds)
        assert client.verify_balance(user).valid
