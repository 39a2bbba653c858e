"""Script cache loss, restarts and lost replies in the middle of concurrent use.

* ``SCRIPT FLUSH`` while eight writers (threads and asyncio tasks, single calls
  and ``deduct_many``) run: no operation fails at all (NOSCRIPT → EVAL), none
  runs twice.
* A Redis restart while they run: the only error anyone sees is
  ``StoreUnavailableError``; repeating with the same idempotency key (or
  reservation id) applies every operation exactly once, counted in the log.
* A reply lost after the script ran (a proxy drops the connection between
  Redis and the client): the repeat returns the first result and writes
  nothing; without a key, a repeat is a second charge, which is why the README
  says to give writes keys.
* A ``deduct_many`` pipeline cut halfway (some items applied, the rest never
  reached Redis), then repeated after a ``SCRIPT FLUSH``: each item once.

test_store_failures.py covers the single-call and bulk SCRIPT FLUSH recovery
without concurrency; these are the concurrent and mid-flight versions.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fault_workload import CuttingProxy, audit, fresh_users, run_with_fault
from ledger_fixtures import Clock, make_ledger

from credits import BulkItem, TxResult
from credits.errors import StoreUnavailableError
from credits.keys import user_keys
from credits.redis_server import RedisServer
from credits.scripts import script

pytestmark = pytest.mark.system  # starts its own servers or processes


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own: flushing its scripts or restarting it touches nobody else."""
    with RedisServer(tmp_path, persistent=True) as started:
        yield started


def _noscript_errors(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.info("errorstats").get("errorstat_NOSCRIPT", {}).get("count", 0))


@pytest.mark.slow
def test_script_flush_during_concurrent_use_fails_nothing(server: RedisServer) -> None:
    users = fresh_users("flush")
    flushes = 5

    def flush_repeatedly() -> None:
        with server.client() as admin:
            for _ in range(flushes):
                admin.script_flush()
                time.sleep(0.05)

    book = run_with_fault(server.url, users, flush_repeatedly, before=200, after=200)
    counts = audit(server.url, users, book)
    assert counts["unavailable_errors"] == 0, "a SCRIPT FLUSH must not fail any call"
    assert _noscript_errors(server) >= flushes  # the fallback really ran, after every flush


@pytest.mark.slow
def test_restart_during_concurrent_use_is_retried_exactly_once(server: RedisServer) -> None:
    users = fresh_users("restart")

    def restart() -> None:
        server.restart()  # SIGTERM (clean AOF flush), then start on the same port and data

    book = run_with_fault(server.url, users, restart, before=300, after=300)
    counts = audit(server.url, users, book)
    assert counts["retried"] > 0, "the restart should have interrupted operations in flight"


# --------------------------------------------------------------------------- lost replies


@pytest.fixture
def proxy(server: RedisServer) -> Iterator[CuttingProxy]:
    started = CuttingProxy(server.port)
    yield started
    started.close()


def _load_every_script(server: RedisServer) -> None:
    """So that the reply a proxy cuts is the script's, not a NOSCRIPT."""
    lua = resources.files("credits").joinpath("lua")
    with server.client() as admin:
        for path in lua.iterdir():
            if path.name.endswith(".lua") and path.name != "prelude.lua":
                admin.script_load(script(path.name.removesuffix(".lua")).source)


@pytest.fixture(params=["sync", "async"])
def through_proxy(
    request: pytest.FixtureRequest, proxy: CuttingProxy, server: RedisServer, clock: Clock
) -> Iterator[Any]:
    _load_every_script(server)
    client, close = make_ledger(request.param, proxy.url, clock=clock, socket_timeout=2)
    yield client
    close()


def _events(ledger: Any, user: str) -> list[Any]:
    return ledger.get_transactions(user, limit=1000)


OPERATIONS: dict[str, Callable[[Any, str, Any], Any]] = {
    "initialize": lambda ledger, user, hold: ledger.initialize_user(user + "-new", 70),
    "deduct": lambda ledger, user, hold: ledger.deduct(
        user, 7, "chat_message", {"n": 1}, idempotency_key="d-1"
    ),
    "add": lambda ledger, user, hold: ledger.add(user, 9, "purchase", idempotency_key="a-1"),
    "reserve": lambda ledger, user, hold: ledger.reserve(
        user, 20, "training_job", ttl=60, idempotency_key="r-1"
    ),
    "settle": lambda ledger, user, hold: ledger.settle(hold.id, 40),
    "release": lambda ledger, user, hold: ledger.release(hold.id, reason="provider refused"),
}


@pytest.mark.parametrize("operation", OPERATIONS)
def test_reply_lost_after_the_write_then_repeated(
    through_proxy: Any, proxy: CuttingProxy, user_id: str, operation: str
) -> None:
    ledger = through_proxy
    ledger.initialize_user(user_id, 1000)
    hold = ledger.reserve(user_id, 50, "video_generation", ttl=600)
    target = user_id + "-new" if operation == "initialize" else user_id
    before = len(_events(ledger, target))
    call = OPERATIONS[operation]

    proxy.cut("down", 0)  # Redis runs the call; the client never gets the reply
    with pytest.raises(StoreUnavailableError):
        call(ledger, user_id, hold)
    assert proxy.cuts == 1
    events = _events(ledger, target)
    assert len(events) == before + 1, "the write happened even though the reply was lost"

    repeated = call(ledger, user_id, hold)
    assert _events(ledger, target) == events, "the repeat wrote nothing"
    assert repeated.tx_id == events[0].tx_id, "and it returned the first result"
    assert ledger.verify_balance(target).valid


def test_without_a_key_a_repeat_is_a_second_charge(
    through_proxy: Any, proxy: CuttingProxy, user_id: str
) -> None:
    """Why the README says to give writes an idempotency key: nothing else can tell."""
    ledger = through_proxy
    ledger.initialize_user(user_id, 100)
    proxy.cut("down", 0)
    with pytest.raises(StoreUnavailableError):
        ledger.deduct(user_id, 10, "chat_message")
    assert ledger.deduct(user_id, 10, "chat_message").balance == 80


BULK_ITEMS = 300


@pytest.mark.parametrize("direction", ["up", "down"])
def test_bulk_cut_midway_then_repeated_after_a_flush(
    through_proxy: Any,
    proxy: CuttingProxy,
    server: RedisServer,
    unique_user: Any,
    direction: str,
) -> None:
    """``up``: only the first commands of the pipeline reach Redis; ``down``: all ran, no reply."""
    ledger = through_proxy
    users = [unique_user("bulk") for _ in range(3)]
    for user in users:
        ledger.initialize_user(user, 10_000)
    items = [
        BulkItem(users[i % 3], 1 + i % 5, "chat_message", {"op": f"b{i}"}, f"b{i}")
        for i in range(BULK_ITEMS)
    ]

    proxy.cut(direction, 60_000 if direction == "up" else 0)  # ~1/3 of the pipeline's bytes
    with pytest.raises(StoreUnavailableError):
        ledger.deduct_many(items)
    applied = sum(len(_events(ledger, user)) - 1 for user in users)
    if direction == "up":
        assert 0 < applied < BULK_ITEMS, applied
    else:
        assert applied == BULK_ITEMS

    with server.client() as admin:
        admin.script_flush()
    results = ledger.deduct_many(items)
    assert all(isinstance(r, TxResult) for r in results), results

    seen: Counter[str] = Counter()
    with server.client(decode_responses=True) as raw:
        for user in users:
            for _, fields in raw.xrange(user_keys(user).log):
                if fields["t"] == "deduct":
                    seen[json.loads(fields["m"])["op"]] += 1
    assert seen == Counter({f"b{i}": 1 for i in range(BULK_ITEMS)})
    for user in users:
        assert ledger.verify_balance(user).valid
    expected = {user: 10_000 for user in users}
    for item in items:
        expected[item.user_id] -= item.amount
    assert {user: ledger.get_balance(user) for user in users} == expected
