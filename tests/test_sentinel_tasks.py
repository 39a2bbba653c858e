"""A Celery worker on a Sentinel broker settles every hold across a failover, once.

Store, broker and result backend are three databases of one service watched by
three sentinels (``sentinel_rig.py``); every process is configured with
``redis+sentinel://`` URLs only, as a deployment would be, so the translation
for kombu's Sentinel transport and Celery's Sentinel backend is what runs. The
worker's ledger client inherits ``CREDITS_WAIT_REPLICAS=1``.

Half the settles are sent, the primary is SIGKILLed once some have landed, the
sentinels promote the replica (the killed node comes back as its replica, as
an operator would replace it), and the other half is sent to the new primary.
Tasks in flight meet a dead broker and a dead store; they come back through
their retries, the visibility timeout or the outbox, and the ledger makes every
second delivery a no-op: each hold is settled exactly once, counted in the log.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sentinel_rig import SentinelRig
from worker_rig import PRODUCER, REPO_ROOT, Supervisor, Workers, clean_env

from credits import Credits
from credits.errors import StoreUnavailableError
from credits.waiting import wait_until

pytestmark = pytest.mark.system

HOLDS = 40
HELD_EACH = 10
ACTUAL_EACH = 6
VISIBILITY_TIMEOUT_S = 3
SETTLED_TIMEOUT_S = 90.0


def _produce(env: dict[str, str], queue: str, holds: list[str]) -> None:
    subprocess.run(
        [sys.executable, "-c", PRODUCER, queue, str(ACTUAL_EACH)],
        input=json.dumps(holds), text=True, cwd=REPO_ROOT, env=env,
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip


def _settled(ledger: Credits, user: str) -> int:
    try:
        return HOLDS - ledger.get_account(user).held // HELD_EACH
    except StoreUnavailableError:
        return -1  # failing over: look again


def test_a_worker_on_a_sentinel_broker_settles_across_a_failover_exactly_once(
    tmp_path: Path,
) -> None:
    user = "sentinel-worker-user"
    start_balance = HOLDS * HELD_EACH + 500
    with SentinelRig(tmp_path / "rig") as rig:
        store, broker, backend = rig.url(0), rig.url(1), rig.url(2)
        env = clean_env(
            CREDITS_REDIS_URL=store,
            CELERY_BROKER_URL=broker,
            CELERY_RESULT_BACKEND=backend,
            CREDITS_BROKER_VISIBILITY_TIMEOUT_S=str(VISIBILITY_TIMEOUT_S),
        )
        ledger = Credits(store, wait_replicas=1)
        ledger.initialize_user(user, start_balance)
        holds = [
            ledger.reserve(user, HELD_EACH, "video_generation", ttl=3600).id for _ in range(HOLDS)
        ]
        (tmp_path / "logs").mkdir()
        workers = Workers(broker, tmp_path / "logs")
        worker_env = {"CELERY_RESULT_BACKEND": backend, "CREDITS_WAIT_REPLICAS": "1"}
        supervisor = Supervisor(
            workers, store_url=store, env=worker_env, visibility_timeout_s=VISIBILITY_TIMEOUT_S
        )

        def settled_at_least(count: int) -> None:
            def enough() -> bool:
                supervisor.check()
                return _settled(ledger, user) >= count

            try:
                wait_until(enough, timeout_s=SETTLED_TIMEOUT_S, what=f"{count} settles")
            except TimeoutError as timeout:
                raise AssertionError(f"{timeout}:\n{workers.logs()[-4000:]}") from None

        try:
            _produce(env, workers.queue, holds[: HOLDS // 2])
            settled_at_least(HOLDS // 8)
            rig.fail_over()
            rig.replace_lost_node()
            _produce(env, workers.queue, holds[HOLDS // 2 :])
            settled_at_least(HOLDS)
            supervisor.check()
            print(f"worker crashes survived: {len(supervisor.crashes)} {supervisor.crashes}")
            with contextlib.closing(rig.primary_client()) as primary:
                waits = primary.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
            # The test itself only reads since the failover: these are the worker's settles.
            assert int(waits) >= HOLDS // 2, "the worker's ledger client waits for the replica"
        finally:
            logs = workers.logs()
            workers.stop_all()

        txs = ledger.get_transactions(user, limit=1000)
        settles = [tx for tx in txs if tx.type == "settle"]
        assert len(settles) == HOLDS, logs[-3000:]
        assert {tx.reservation_id for tx in settles} == set(holds)
        account = ledger.get_account(user)
        assert (account.balance, account.held) == (start_balance - HOLDS * ACTUAL_EACH, 0)
        assert ledger.verify_balance(user).valid
        ledger.close()
