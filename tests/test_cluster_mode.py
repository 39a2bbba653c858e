"""The cluster run of the suite, checked as a whole: users spread, the sweep and reconcile
reach every node.

The ``ledger`` tests run a second time on the 3-node cluster (``cluster-sync``,
``cluster-async``; see ledger_fixtures.py) and fail on any CROSSSLOT refusal.
What those per-user tests cannot see is coverage: that users land on every
node, and that the bucket walks of the sweep and of reconcile ask every node,
so a user on the third node is not forgotten. That is checked here, with the
nodes' own command counters as the witness.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cluster_rig import RedisCluster3
from fault_workload import audit, fresh_users, run_with_fault
from ledger_fixtures import Clock, ClusterBackend, make_ledger
from redis.crc import key_slot
from worker_rig import REPO_ROOT, Workers, clean_env

from credits import AsyncCredits, Credits
from credits.errors import CreditsError, StoreUnavailableError
from credits.keys import user_keys
from credits.redis_server import RedisServer, find_redis_cli, free_port
from credits.waiting import wait_until

pytestmark = pytest.mark.cluster

USERS = 48
RESHARD_SLOTS = 2000


def _command_calls(cluster: RedisCluster3, command: str) -> list[int]:
    """Per node, how many times it ran ``command`` (INFO commandstats)."""
    calls = []
    for node in cluster.nodes:
        with node.client() as client:
            stats = client.info("commandstats").get(f"cmdstat_{command}", {})
            calls.append(int(stats.get("calls", 0)))
    return calls


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sweep_and_reconcile_cover_every_node(
    cluster: RedisCluster3, cluster_backend: ClusterBackend, unique_user: Any, kind: str
) -> None:
    clock = Clock()
    ledger, close = make_ledger(kind, cluster.url, cluster=True, clock=clock)
    raw = cluster_backend.backend.raw(decode_responses=True)
    crossslot_before = cluster_backend.crossslot_errors()
    try:
        users = [unique_user("spread") for _ in range(USERS)]
        node_of = {user: raw.get_node_from_key(user_keys(user).account).name for user in users}
        per_node = Counter(node_of.values())
        assert len(per_node) == len(cluster.nodes), per_node
        assert min(per_node.values()) >= USERS // 10, per_node  # spread, not just touched

        holds = {}
        for user in users:
            ledger.initialize_user(user, 100)
            holds[user] = ledger.reserve(user, 30, "video_generation", ttl=60)
        clock.advance(61)

        zrange_before = _command_calls(cluster, "zrangebyscore")
        assert ledger.expire_reservations() >= USERS
        zrange_after = _command_calls(cluster, "zrangebyscore")
        assert all(a > b for a, b in zip(zrange_after, zrange_before, strict=True))
        for user in users:  # read raw: nobody touched these users since the sweep
            assert raw.hmget(user_keys(user).account, "bal", "held") == ["100", "0"]
            assert ledger.get_reservation(holds[user].id).status == "expired"

        # One corrupted user per node: reconcile must find all three, and fix them.
        corrupt = {}
        for user in users:
            corrupt.setdefault(node_of[user], user)
        for user in corrupt.values():
            raw.hset(user_keys(user).account, "bal", 7)
        sscan_before = _command_calls(cluster, "sscan")
        report = ledger.reconcile(fix=True)
        sscan_after = _command_calls(cluster, "sscan")
        assert all(a > b for a, b in zip(sscan_after, sscan_before, strict=True))
        assert set(corrupt.values()) <= set(report.invalid_users)
        assert report.checked >= USERS and report.fixed == report.invalid
        for user in users:
            assert ledger.verify_balance(user).valid
            assert ledger.get_balance(user) == 100
        assert cluster_backend.crossslot_errors() == crossslot_before
    finally:
        close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_unreachable_cluster_is_store_unavailable(kind: str) -> None:
    """With no startup node answering, the caller must get the retryable error.

    redis-py raises ``RedisClusterException`` (an ``Exception``, not a
    ``RedisError``) when it cannot discover the slots: from the constructor of
    the blocking client, and from the first call of the asyncio one. A Celery
    worker started while the cluster is down would then fail instead of retrying.
    """
    url = f"redis://127.0.0.1:{free_port()}"

    async def first_call() -> None:
        async with AsyncCredits(url, cluster=True, socket_timeout=0.5) as client:
            await client.get_balance("anyone")

    with pytest.raises(StoreUnavailableError):
        if kind == "sync":
            with Credits(url, cluster=True, socket_timeout=0.5) as client:
                client.get_balance("anyone")
        else:
            asyncio.run(first_call())


def test_cluster_flag_on_a_single_redis_is_a_credits_error(redis_url: str) -> None:
    """A configuration error (not retryable), but still one of ours."""

    async def first_call() -> None:
        async with AsyncCredits(redis_url, cluster=True) as client:
            await client.get_balance("anyone")

    with pytest.raises(CreditsError):
        Credits(redis_url, cluster=True).get_balance("anyone")
    with pytest.raises(CreditsError):
        asyncio.run(first_call())


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_check_store_on_the_cluster(cluster: RedisCluster3, kind: str) -> None:
    """``check_store()`` must answer on a cluster too (CONFIG GET has no key to route by).

    The asyncio cluster client refuses to guess a node and raises redis-py's
    ``RedisClusterException`` ("No way to dispatch this command"), which is not
    a CreditsError.
    """
    ledger, close = make_ledger(kind, cluster.url, cluster=True)
    try:
        warnings = ledger.check_store()
    finally:
        close()
    assert any("appendonly is off" in warning for warning in warnings)  # the rig's nodes


# --------------------------------------------------------------------------- resharding


@pytest.fixture(scope="module")
def reshard_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A cluster of this module's own: its slots get moved around."""
    with RedisCluster3(tmp_path_factory.mktemp("reshard")) as started:
        yield started


def _node_id(node: RedisServer) -> str:
    with node.client() as client:
        return str(client.execute_command("CLUSTER", "MYID").decode())


def _cluster_ok(cluster: RedisCluster3) -> bool:
    for node in cluster.nodes:
        try:
            with node.client() as client:
                if b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                    return False
        except redis.RedisError:
            return False
    return True


def _owner(cluster: RedisCluster3, slot: int) -> RedisServer:
    with cluster.nodes[0].client() as client:
        for first, last, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return next(n for n in cluster.nodes if n.port == primary[1])
    raise AssertionError(f"slot {slot} has no owner")


@pytest.mark.slow
def test_a_bucket_caught_half_migrated_is_retryable(reshard_cluster: RedisCluster3) -> None:
    """Mid-migration a script sees some of its keys moved: TRYAGAIN until the move ends.

    redis-py follows ASK and TRYAGAIN 16 times (about 0.1 s), then gives up with
    ``ClusterError: TTL exhausted``. No attempt ran the script, so the caller
    must get the retryable ``StoreUnavailableError`` and, repeating with the
    same idempotency key after the move, apply the deduct exactly once.
    """
    user = f"half-migrated-{uuid.uuid4().hex}"
    keys = user_keys(user)
    with Credits(reshard_cluster.url, cluster=True, socket_timeout=2) as client:
        client.initialize_user(user, 100)
        client.reserve(user, 10, "video_generation", ttl=600, idempotency_key="r1")
        client.deduct(user, 1, "chat_message", idempotency_key="d1")
        slot = key_slot(keys.account.encode())
        source = _owner(reshard_cluster, slot)
        target = next(n for n in reshard_cluster.nodes if n is not source)
        with source.client() as src, target.client() as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(source))
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(target))
            in_slot = [
                k.decode() for k in src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)
            ]
            src.execute_command(
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", keys.account
            )

            with pytest.raises(StoreUnavailableError):
                client.deduct(user, 1, "chat_message", idempotency_key="d2")
            assert client.get_balance(f"elsewhere-{uuid.uuid4().hex}") == 0  # other slots work

            rest = [k for k in in_slot if k != keys.account]
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *rest)
            for node in reshard_cluster.nodes:
                with node.client() as each:
                    each.execute_command("CLUSTER", "SETSLOT", slot, "NODE", _node_id(target))
        assert client.deduct(user, 1, "chat_message", idempotency_key="d2").balance == 88
        assert client.deduct(user, 1, "chat_message", idempotency_key="d2").balance == 88
        assert [tx.type for tx in client.get_transactions(user)] == [
            "deduct", "deduct", "reserve", "initialize"
        ]  # fmt: skip
        assert client.verify_balance(user).valid


@pytest.mark.slow
def test_live_resharding_under_concurrent_writers(reshard_cluster: RedisCluster3) -> None:
    """``redis-cli --cluster reshard`` moves a node's slots while eight writers run."""
    users = fresh_users("reshard", 24)
    source, target = reshard_cluster.nodes[0], reshard_cluster.nodes[1]
    on_source = [
        u
        for u in users
        if _owner(reshard_cluster, key_slot(user_keys(u).account.encode())) is source
    ]
    assert on_source, "some users must live on the node whose slots move"
    moved: list[float] = []

    def reshard() -> None:
        started = time.monotonic()
        result = subprocess.run(
            [
                find_redis_cli(), "--cluster", "reshard", f"127.0.0.1:{source.port}",
                "--cluster-from", _node_id(source), "--cluster-to", _node_id(target),
                "--cluster-slots", str(RESHARD_SLOTS), "--cluster-yes",
            ],
            capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        moved.append(time.monotonic() - started)

    book = run_with_fault(reshard_cluster.url, users, reshard, before=200, after=200, cluster=True)
    counts = audit(reshard_cluster.url, users, book, cluster=True)
    print(f"resharded {RESHARD_SLOTS} slots in {moved[0]:.1f} s under load: {counts}")


@pytest.mark.slow
def test_a_node_down_stops_only_its_own_users(reshard_cluster: RedisCluster3) -> None:
    """No replicas here: a dead primary's buckets are unavailable, the rest carry on."""
    users = [f"node-down-{i}-{uuid.uuid4().hex[:6]}" for i in range(30)]
    victim = reshard_cluster.nodes[2]
    with Credits(reshard_cluster.url, cluster=True, socket_timeout=1) as client:
        for user in users:
            client.initialize_user(user, 100)
        on_victim = {
            u
            for u in users
            if client.redis.get_node_from_key(user_keys(u).account).port == victim.port
        }
        assert on_victim and len(on_victim) < len(users)
        with victim.client() as admin:
            admin.save()  # the rig's nodes keep no AOF: an RDB snapshot brings the data back
        victim.kill()
        try:
            for user in users:
                if user in on_victim:
                    with pytest.raises(StoreUnavailableError):
                        client.deduct(user, 1, "chat_message", idempotency_key="k")
                else:
                    assert client.deduct(user, 1, "chat_message", idempotency_key="k").balance == 99
        finally:
            victim.start()
        wait_until(lambda: _cluster_ok(reshard_cluster), timeout_s=30, what="cluster ok")
        for user in users:  # the retries, with the same key: each deduct once
            assert client.deduct(user, 1, "chat_message", idempotency_key="k").balance == 99
            assert client.verify_balance(user).valid


# --------------------------------------------------------------------------- tasks


# Sends tasks from a process of its own (so the Celery app the other task tests
# share in this process is never reconfigured); prints their ids.
SEND_TASKS = """
import json, sys
from credits.tasks import app
calls = json.load(sys.stdin)
ids = [app.send_task(name, args, kwargs, queue=sys.argv[1]).id for name, args, kwargs in calls]
print(json.dumps(ids))
"""


def _task_result(raw: redis.Redis, task_id: str) -> Any:
    meta = raw.get(f"celery-task-meta-{task_id}")
    if meta is None:
        return None
    decoded = json.loads(meta)
    return decoded["result"] if decoded["status"] == "SUCCESS" else decoded


@pytest.mark.slow
def test_tasks_on_a_cluster_store(
    cluster: RedisCluster3, redis_url: str, tmp_path: Path, unique_user: Any
) -> None:
    """Settle, sweep and reconcile tasks against a cluster store (broker: a single Redis).

    kombu's Redis transport does not speak Redis Cluster, so the broker and
    result backend stay on a plain Redis, and the worker's ledger client is a
    cluster client (``CREDITS_REDIS_CLUSTER=1``).
    """
    clock_behind = Clock(time.time() - 120)  # holds due by the worker's real clock
    users = [unique_user("task-cluster") for _ in range(12)]
    idle = [unique_user("task-cluster-idle") for _ in range(12)]  # no task touches them
    with Credits(cluster.url, cluster=True, clock=clock_behind) as client:
        holds = []
        for user in users:
            client.initialize_user(user, 1000)
            holds.append(client.reserve(user, 100, "video_generation", ttl=3600).id)
        for user in idle:
            client.initialize_user(user, 1000)
            client.reserve(user, 50, "video_generation", ttl=60)  # due: the sweep's
        nodes = {client.redis.get_node_from_key(user_keys(u).account).name for u in users + idle}
    assert len(nodes) == len(cluster.nodes)

    workers = Workers(redis_url, tmp_path)
    try:
        worker = workers.start(
            store_url=cluster.url, env={"CREDITS_REDIS_CLUSTER": "1"}, concurrency=2
        )
        calls = [["credits.tasks.settle_reservation", [rid, 70], {}] for rid in holds]
        calls += [["credits.tasks.settle_reservation", [rid, 70], {}] for rid in holds]  # twice
        calls += [["credits.tasks.expire_reservations", [], {}]]
        env = clean_env(CELERY_BROKER_URL=redis_url, CELERY_RESULT_BACKEND=redis_url)
        sent = subprocess.run(
            [sys.executable, "-c", SEND_TASKS, worker.queue],
            input=json.dumps(calls), text=True, cwd=REPO_ROOT, env=env,
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        ids = json.loads(sent.stdout)
        with redis.Redis.from_url(redis_url) as raw:
            wait_until(
                lambda: all(_task_result(raw, task_id) is not None for task_id in ids),
                timeout_s=60,
                what="every task's result",
            )
            results = [_task_result(raw, task_id) for task_id in ids]
            assert all(r["charged"] == 70 for r in results[:-1]), results
            assert results[-1]["expired"] >= len(idle), results[-1]
            reconciled = subprocess.run(
                [sys.executable, "-c", SEND_TASKS, worker.queue],
                input=json.dumps([["credits.tasks.reconcile_balances", [], {}]]), text=True,
                cwd=REPO_ROOT, env=env, capture_output=True, check=True, timeout=60,
            )  # fmt: skip
            (reconcile_id,) = json.loads(reconciled.stdout)
            wait_until(
                lambda: _task_result(raw, reconcile_id) is not None, timeout_s=60, what="reconcile"
            )
            report = _task_result(raw, reconcile_id)
        assert report["checked"] >= len(users + idle) and report["invalid"] == 0, report
    finally:
        workers.stop_all()

    with Credits(cluster.url, cluster=True) as client:
        for user, rid in zip(users, holds, strict=True):
            txs = client.get_transactions(user)
            assert [tx.type for tx in txs].count("settle") == 1
            assert client.get_reservation(rid).status == "settled"
            account = client.get_account(user)
            assert (account.balance, account.held) == (1000 - 70, 0)
            assert client.verify_balance(user).valid
        for user in idle:
            assert client.get_account(user).held == 0
