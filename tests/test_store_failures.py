"""Redis down, or a lost script cache: a typed error, never a half-applied change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ledger_fixtures import Clock

from credits import AsyncCredits, BulkItem, Credits
from credits.errors import StoreUnavailableError, TransactionError
from credits.redis_server import RedisServer, free_port


def test_unreachable_redis_is_store_unavailable(clock: Clock) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with Credits(url, clock=clock, socket_timeout=0.5) as client:
        with pytest.raises(StoreUnavailableError) as caught:
            client.deduct("u", 1, "chat_message")
        assert isinstance(caught.value, TransactionError)
        assert caught.value.__cause__ is not None
        with pytest.raises(StoreUnavailableError):
            client.get_balance("u")
        with pytest.raises(StoreUnavailableError):
            client.add_many([BulkItem("u", 1, "grant")])


def test_unreachable_redis_async(clock: Clock) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    async def run() -> None:
        async with AsyncCredits(url, clock=clock, socket_timeout=0.5) as client:
            with pytest.raises(StoreUnavailableError):
                await client.deduct("u", 1, "chat_message")
            with pytest.raises(StoreUnavailableError):
                await client.expire_reservations()

    asyncio.run(run())


@pytest.fixture
def own_server(tmp_path: Path) -> RedisServer:
    """A server of this test's own, so that SCRIPT FLUSH and kills touch nobody else."""
    with RedisServer(tmp_path) as server:
        yield server


def test_server_killed_mid_use_then_back(own_server: RedisServer, clock: Clock) -> None:
    with Credits(own_server.url, clock=clock, socket_timeout=1) as client:
        client.initialize_user("u", 100)
        client.deduct("u", 10, "chat_message", idempotency_key="k1")
        own_server.kill()
        with pytest.raises(StoreUnavailableError):
            client.deduct("u", 10, "chat_message", idempotency_key="k2")
        own_server.restart()  # not persistent: the data is gone, the client recovers
        assert client.get_balance("u") == 0
        client.add("u", 5, "grant")
        assert client.get_balance("u") == 5


def test_script_flush_is_recovered_without_running_twice(
    own_server: RedisServer, clock: Clock
) -> None:
    with Credits(own_server.url, clock=clock) as client:
        client.initialize_user("u", 100)
        client.deduct("u", 1, "chat_message")
        own_server.client().script_flush()
        assert client.deduct("u", 1, "chat_message").balance == 98
        own_server.client().script_flush()
        results = client.deduct_many([BulkItem("u", 1, "chat_message") for _ in range(5)])
        assert [r.balance for r in results] == [97, 96, 95, 94, 93]  # type: ignore[union-attr]
        assert len(client.get_transactions("u")) == 8
        assert client.verify_balance("u").valid


def test_script_flush_async(own_server: RedisServer, clock: Clock) -> None:
    async def run() -> int:
        async with AsyncCredits(own_server.url, clock=clock) as client:
            await client.add("u", 10, "grant")
            own_server.client().script_flush()
            await client.deduct("u", 3, "chat_message")
            return await client.get_balance("u")

    assert asyncio.run(run()) == 7


def test_repr_and_errors_do_not_leak_the_password(tmp_path: Path, clock: Clock) -> None:
    with RedisServer(tmp_path, password="s3cret-pw") as server:
        client = Credits(f"redis://127.0.0.1:{server.port}/0", "s3cret-pw", clock=clock)
        assert client.get_balance("u") == 0
        assert "s3cret-pw" not in repr(client)
        client.close()
        wrong = Credits(f"redis://127.0.0.1:{server.port}/0", "nope", clock=clock)
        with pytest.raises(TransactionError) as caught:
            wrong.get_balance("u")
        assert not isinstance(caught.value, StoreUnavailableError)  # not worth a retry
        assert "s3cret-pw" not in str(caught.value)
        wrong.close()
