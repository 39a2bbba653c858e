"""Durability: ``kill -9`` of redis-server mid-run loses no acknowledged transaction.

The server runs with ``appendonly yes`` and ``appendfsync always``: Redis
writes and fsyncs the AOF before it answers a write, so every reply a writer
got is on disk. Eight concurrent writers (threads and asyncio tasks, single
calls and ``deduct_many``) record every acknowledged ``tx_id``; the server is
SIGKILLed twice (once during an AOF rewrite) and restarted on the same data
directory; the writers retry what was interrupted with the same idempotency
keys. The audit then finds every acknowledged ``tx_id`` in its user's log
under the operation that wrote it, no operation applied twice, and every
cached balance verified against its log.

``everysec`` is run too with ``--slow``: a *process* crash loses nothing there
either (the AOF was written to the kernel before the reply); what it risks
is a crash of the machine, which a test cannot stage. See docs/RELIABILITY.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from fault_workload import audit, fresh_users, run_with_fault

from credits import Credits
from credits.redis_server import RedisServer

pytestmark = pytest.mark.system  # starts its own servers or processes

SLOW = os.environ.get("CREDITS_SLOW_TESTS") == "1"
DOWN_S = 0.3  # how long the writers meet a dead server


def _crash(server: RedisServer, *, during_rewrite: bool = False) -> None:
    if during_rewrite:
        with server.client() as client:
            client.bgrewriteaof()
    server.kill()  # SIGKILL: no shutdown, no final fsync
    time.sleep(DOWN_S)
    server.start()  # same directory, same port: Redis loads the AOF


@pytest.mark.slow
@pytest.mark.parametrize(
    "fsync",
    ["always", pytest.param("everysec", marks=pytest.mark.skipif(not SLOW, reason="--slow only"))],
)
def test_kill_9_mid_run_loses_no_acknowledged_transaction(tmp_path: Path, fsync: str) -> None:
    server = RedisServer(tmp_path, persistent=True, appendfsync=fsync).start()  # type: ignore[arg-type]
    users = fresh_users("durable")
    try:

        def crash_twice() -> None:
            _crash(server)
            time.sleep(0.2)
            _crash(server, during_rewrite=True)

        book = run_with_fault(server.url, users, crash_twice, before=400, after=400)
        counts = audit(server.url, users, book)
        assert counts["retried"] > 0, "the crashes should have hit operations in flight"
        # Once more from a cold start: what was read above is what is on disk.
        server.kill()
        server.start()
        assert audit(server.url, users, book) == counts
    finally:
        server.stop()


def test_acknowledged_writes_survive_kill_9_one_by_one(tmp_path: Path) -> None:
    """The plain case, no concurrency: acknowledge, kill, restart, find it."""
    server = RedisServer(tmp_path, persistent=True, appendfsync="always").start()
    try:
        with Credits(server.url, socket_timeout=2) as client:
            client.initialize_user("u", 100)
            for i in range(5):
                result = client.deduct("u", 1, "chat_message", idempotency_key=f"k{i}")
                hold = client.reserve("u", 10, "video_generation", ttl=600)
                server.kill()
                server.start()
                assert client.get_transactions("u", limit=1)[0].tx_id == hold.tx_id
                assert client.get_reservation(hold.id).status == "open"
                assert client.deduct("u", 1, "chat_message", idempotency_key=f"k{i}") == result
                client.release(hold.id)
            assert client.get_balance("u") == 95
            assert client.verify_balance("u").valid
    finally:
        server.stop()
