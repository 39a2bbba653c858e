"""``wait_replicas`` on real replicas, and a Sentinel failover that loses nothing acknowledged.

The servers are a primary, a replica and three sentinels (``sentinel_rig.py``),
all from the suite's ``redis-server``. The replica is cut off on purpose
(SIGSTOP and a dropped link: from then on writes reach the primary only), so
what asynchronous replication loses is shown deterministically, not by luck:

* without ``wait_replicas`` those writes are acknowledged, and a failover
  promotes a replica that never saw them: gone, with a log and a cache that
  agree with each other, so no verify can tell;
* with ``wait_replicas=1`` the same writes are answered with
  ``StoreUnavailableError`` instead, and their repeats with the same key or
  reservation id, after the replica is back or after the failover, apply once.

On the Cluster rig (no replicas) a write waited for is refused after it landed,
and the WAIT went to the node that ran it, one per node for a pipeline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fault_workload import (
    Workload,
    applied_keys,
    audit,
    fresh_users,
    lost_acknowledgements,
)
from ledger_fixtures import make_ledger
from rig import unique_user
from sentinel_rig import SentinelRig

from credits import BulkItem, Credits
from credits.errors import ReservationNotFoundError, StoreUnavailableError
from credits.keys import user_keys
from credits.waiting import wait_until

pytestmark = pytest.mark.system  # starts its own servers

WAIT_MS = 150  # a replica on loopback answers in well under a millisecond
CUT_SCRIPT_CALLS = 16  # writes the cut-off primary runs before it is killed
PROGRESS_AFTER = 100  # operations acknowledged after the failover


def _calls(client: redis.Redis, *commands: str) -> int:
    stats = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in commands)


def waits_on(client: redis.Redis) -> int:
    return _calls(client, "wait", "waitaof")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelRig]:
    """One rig for the tests that cut the replica off and let it back, never failing over."""
    with SentinelRig(tmp_path_factory.mktemp("sentinel")) as rig:
        yield rig


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_write_its_replica_missed_is_refused_and_its_repeat_applies_once(
    pair: SentinelRig, kind: str
) -> None:
    ledger, close = make_ledger(kind, pair.url(), wait_replicas=1, wait_timeout_ms=WAIT_MS)
    user = unique_user()
    primary = pair.primary_client()
    try:
        ledger.initialize_user(user, 100)
        ledger.deduct(user, 5, "chat_message")
        hold = ledger.reserve(user, 10, "video_generation", ttl=600)
        waits = waits_on(primary)
        ledger.deduct(user, 1, "chat_message")
        assert waits_on(primary) == waits + 1, "one WAIT after a write"
        ledger.deduct_many([BulkItem(user, 1, "chat_message") for _ in range(3)])
        assert waits_on(primary) == waits + 2, "one WAIT after a pipeline"
        assert ledger.get_balance(user) == 81
        ledger.get_transactions(user)
        ledger.get_reservation(hold.id)
        assert ledger.verify_balance(user).valid
        assert waits_on(primary) == waits + 2, "reads are never waited for"

        pair.cut_replica()
        try:
            with pytest.raises(StoreUnavailableError, match="primary only") as refused:
                ledger.deduct(user, 7, "chat_message", idempotency_key="k7")
            assert "same idempotency key" in str(refused.value)
            with pytest.raises(StoreUnavailableError):
                ledger.settle(hold.id, 4)
            with pytest.raises(StoreUnavailableError):
                ledger.deduct_many(
                    [BulkItem(user, 2, "chat_message", idempotency_key=f"b{i}") for i in range(3)]
                )
            # The primary has every one of them; reads answer at once.
            assert ledger.get_balance(user) == 81 - 7 + 6 - 6
        finally:
            pair.resume_replica()

        repeat = ledger.deduct(user, 7, "chat_message", idempotency_key="k7")
        settled = ledger.settle(hold.id, 4)
        bulk = ledger.deduct_many(
            [BulkItem(user, 2, "chat_message", idempotency_key=f"b{i}") for i in range(3)]
        )
        log = {t.tx_id: t for t in ledger.get_transactions(user, limit=100)}
        assert log[repeat.tx_id].amount == 7
        assert log[settled.tx_id].type == "settle"
        assert all(log[r.tx_id].amount == 2 for r in bulk)  # type: ignore[union-attr]
        assert sum(1 for t in log.values() if t.amount == 7) == 1, "the repeat applied once"
        assert sum(1 for t in log.values() if t.type == "settle") == 1
        assert sum(1 for t in log.values() if t.amount == 2) == 3
        assert ledger.get_balance(user) == 74
        assert ledger.verify_balance(user).valid
        with contextlib.closing(pair.replica_client()) as replica:
            assert replica.xlen(user_keys(user).log) == len(log), "the replica has all of it"
    finally:
        primary.close()
        close()


def test_without_wait_replicas_nothing_waits(pair: SentinelRig) -> None:
    user = unique_user()
    with Credits(pair.url()) as ledger, contextlib.closing(pair.primary_client()) as primary:
        waits = waits_on(primary)
        ledger.initialize_user(user, 10)
        ledger.deduct(user, 1, "chat_message")
        ledger.deduct_many([BulkItem(user, 1, "chat_message")])
        assert waits_on(primary) == waits
        assert ledger.get_balance(user) == 8


def test_a_repeat_is_replicated_so_the_wait_after_it_covers_the_first_write(
    pair: SentinelRig,
) -> None:
    """From Redis 7.2, WAIT counts a connection's last propagated write only.

    A repeat that wrote nothing could then be confirmed while its first write
    was still on the primary only; each repeat writes back the record it
    answered from, unchanged, so the replication offset moves past the first.
    """
    user = unique_user()
    with Credits(pair.url()) as ledger, contextlib.closing(pair.primary_client()) as primary:

        def offset() -> int:
            return int(primary.info("replication")["master_repl_offset"])

        grant = ledger.initialize_user(user, 100)
        charge = ledger.deduct(user, 1, "chat_message", idempotency_key="once")
        hold = ledger.reserve(user, 10, "video_generation", ttl=600, idempotency_key="r")
        settled = ledger.settle(hold.id, 3)
        other = ledger.reserve(user, 10, "video_generation", ttl=600)
        released = ledger.release(other.id)
        repeats = [
            (lambda: ledger.initialize_user(user, 100), grant),
            (lambda: ledger.deduct(user, 1, "chat_message", idempotency_key="once"), charge),
            (lambda: ledger.reserve(user, 10, "video_generation", ttl=600, idempotency_key="r"),
             hold),
            (lambda: ledger.settle(hold.id, 3), settled),
            (lambda: ledger.release(other.id), released),
        ]  # fmt: skip
        for repeat, first in repeats:
            before = offset()
            assert repeat().tx_id == first.tx_id  # the first result, not a second write
            assert offset() > before, first
        assert ledger.get_balance(user) == 96
        assert ledger.verify_balance(user).valid


def _cut_off_primary_ran_writes(rig: SentinelRig) -> Callable[[], None]:
    """Wait until the cut-off primary has run a few more scripts (acknowledged or not)."""

    def wait() -> None:
        with contextlib.closing(rig.primary_client()) as primary:
            start = _calls(primary, "evalsha", "eval")
            wait_until(
                lambda: _calls(primary, "evalsha", "eval") >= start + CUT_SCRIPT_CALLS,
                timeout_s=20,
                what="writes on the cut-off primary",
            )

    return wait


@pytest.mark.parametrize("wait_replicas", [1, 0])
def test_a_failover_after_writes_reached_the_primary_only(
    tmp_path: Path, wait_replicas: int
) -> None:
    """Eight writers, the replica cut off, the primary SIGKILLed, the replica promoted."""
    with SentinelRig(tmp_path) as rig:
        users = fresh_users(f"failover{wait_replicas}")
        options: dict[str, Any] = {"wait_replicas": wait_replicas, "wait_timeout_ms": WAIT_MS}
        workload = Workload(rig.url(), users, options=options).start()
        try:
            workload.wait_for(150)
            rig.cut_replica()
            _cut_off_primary_ran_writes(rig)()
            rig.fail_over()
            rig.replace_lost_node()
            if wait_replicas:
                workload.wait_for(workload.book.count + PROGRESS_AFTER)
            else:
                acked = workload.book.count
                wait_until(
                    lambda: workload.book.count >= acked + PROGRESS_AFTER,
                    timeout_s=30,
                    what="writers to go on after the failover",
                )
        finally:
            book = workload.stop()
        if wait_replicas:
            counts = audit(rig.url(), users, book)
            assert counts["retried"] > 0, "the cut and the failover should have hit writes"
            return
        # Without wait_replicas: acknowledged writes are gone, and the ledger cannot tell.
        lost = lost_acknowledgements(rig.url(), users, book)
        assert lost, "writes acknowledged by the cut-off primary should have been lost"
        assert max(applied_keys(rig.url(), users).values()) == 1, "nothing applied twice"
        # A writer that settles a hold whose reserve was lost meets "not found".
        for failure in book.failures:
            assert ReservationNotFoundError.__name__ in failure, failure
        with Credits(rig.url()) as check:
            assert all(check.verify_balance(user).valid for user in users)


@pytest.mark.cluster
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_on_a_cluster_the_wait_goes_to_the_node_that_ran_the_write(cluster: Any, kind: str) -> None:
    """No replicas on the rig: n=1 refuses each write after it landed, n=0 is unaffected."""
    nodes = {node.port: node.client(decode_responses=True) for node in cluster.nodes}
    router = redis.cluster.RedisCluster(startup_nodes=cluster.startup_nodes)
    plain, close_plain = make_ledger(kind, cluster.url, cluster=True)
    durable, close = make_ledger(
        kind, cluster.url, cluster=True, wait_replicas=1, wait_timeout_ms=20
    )

    def node_of(user: str) -> int:
        return int(router.get_node_from_key(user_keys(user).account).port)

    def waits() -> dict[int, int]:
        return {port: waits_on(client) for port, client in nodes.items()}

    try:
        by_node: dict[int, str] = {}
        while len(by_node) < len(nodes):
            user = unique_user()
            by_node.setdefault(node_of(user), user)
        for user in by_node.values():
            plain.initialize_user(user, 100)
        user = by_node[min(by_node)]
        before = waits()
        plain.deduct(user, 1, "chat_message")
        assert waits() == before, "wait_replicas=0 sends no WAIT"

        with pytest.raises(StoreUnavailableError, match="primary only"):
            durable.deduct(user, 5, "chat_message", idempotency_key="k5")
        after = waits()
        assert {p: after[p] - before[p] for p in nodes} == {
            p: int(p == node_of(user)) for p in nodes
        }, "one WAIT, on the node that ran the script"
        assert plain.get_balance(user) == 94, "the write landed before the WAIT fell short"

        with pytest.raises(StoreUnavailableError):
            durable.deduct_many([BulkItem(u, 1, "chat_message") for u in by_node.values()])
        final = waits()
        assert {p: final[p] - after[p] for p in nodes} == dict.fromkeys(nodes, 1)

        again = plain.deduct(user, 5, "chat_message", idempotency_key="k5")
        assert again.balance == 94, "the keyed repeat returns the first result"
        assert plain.get_balance(user) == 93
    finally:
        close()
        close_plain()
        router.close()
        for client in nodes.values():
            client.close()
