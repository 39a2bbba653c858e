"""One flow on a real 3-node Redis Cluster: no CROSSSLOT, users spread over the nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from cluster_rig import RedisCluster3
from ledger_fixtures import Clock

from credits import AsyncCredits, BulkItem, Credits
from credits.keys import user_keys

pytestmark = pytest.mark.cluster


def test_ledger_and_holds_on_a_cluster(
    cluster: RedisCluster3, unique_user: Any, clock: Clock
) -> None:
    with Credits(cluster.url, cluster=True, clock=clock) as client:
        users = [unique_user() for _ in range(12)]
        for user in users:
            client.initialize_user(user, 100)
            client.deduct(user, 10, "chat_message", idempotency_key="m1")
            client.deduct(user, 10, "chat_message", idempotency_key="m1")
        results = client.add_many([BulkItem(user, 5, "grant") for user in users])
        assert [r.balance for r in results] == [95] * len(users)  # type: ignore[union-attr]

        holds = [client.reserve(user, 50, "video_generation", ttl=60) for user in users]
        settled = client.settle(holds[0].id, 70)
        assert (settled.charged, settled.balance) == (70, 25)
        client.release(holds[1].id)
        clock.advance(61)
        # >=: the session's cluster is shared with the cluster-* runs of the other tests
        assert client.expire_reservations() >= len(users) - 2
        assert client.expire_reservations() == 0
        for user in users[2:]:
            assert client.get_account(user).held == 0
        for user in users:
            assert client.verify_balance(user).valid
        assert client.rebuild_balance(users[0]) == 25
        report = client.reconcile()
        assert report.checked >= len(users) and report.invalid == 0
        assert len(client.get_transactions(users[0])) == 5

        nodes = {client.redis.get_node_from_key(user_keys(user).account).name for user in users}
        assert len(nodes) > 1, "users should spread over the nodes"


def test_async_client_on_a_cluster(cluster: RedisCluster3, unique_user: Any, clock: Clock) -> None:
    user = unique_user()

    async def run() -> tuple[int, int]:
        async with AsyncCredits(cluster.url, cluster=True, clock=clock) as client:
            await client.initialize_user(user, 100)
            hold = await client.reserve(user, 30, "training_job", ttl=60)
            await client.extend(hold.id, 120)
            settlement = await client.settle(hold.id, 40)
            verification = await client.verify_balance(user)
            assert verification.valid
            swept = await client.expire_reservations()
            return settlement.balance, swept

    balance, swept = asyncio.run(run())
    assert balance == 60
    assert swept >= 0
