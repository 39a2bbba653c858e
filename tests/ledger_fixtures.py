"""Fixtures for ledger tests: an injectable clock and one test body for both clients.

``ledger`` is parametrized over the blocking and the asyncio client. The async
one is wrapped so that its coroutines run to completion on a private event
loop, so a test written once exercises both and they cannot drift.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from credits import AsyncCredits, Credits

CLOCK_START_S = 1_800_000_000.0  # 2027-01-15, far from any real "now"


class Clock:
    """A clock the test moves by hand; passed as ``clock=`` to the clients."""

    def __init__(self, start_s: float = CLOCK_START_S) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    @property
    def now_ms(self) -> int:
        return int(self.now_s * 1000)


class BlockingFacade:
    """An AsyncCredits whose coroutine methods are run to completion when called."""

    def __init__(self, client: AsyncCredits, loop: asyncio.AbstractEventLoop) -> None:
        self._client = client
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(attr(*args, **kwargs))

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())


def make_ledger(kind: str, url: str, **kwargs: Any) -> tuple[Any, Callable[[], None]]:
    if kind == "sync":
        client = Credits(url, **kwargs)
        return client, client.close
    loop = asyncio.new_event_loop()
    facade = BlockingFacade(AsyncCredits(url, **kwargs), loop)

    def close() -> None:
        facade.close()
        loop.close()

    return facade, close


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sync", "async"])
def ledger(request: pytest.FixtureRequest, redis_url: str, clock: Clock) -> Iterator[Any]:
    """A client of the test Redis with the test's clock, once per client kind."""
    client, close = make_ledger(request.param, redis_url, clock=clock)
    yield client
    close()


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    """A raw client, for looking behind the ledger's back (and corrupting it on purpose)."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def store_snapshot(client: redis.Redis, pattern: str = "credits:*") -> dict[str, Any]:
    """Every ledger key with its serialized value, to prove that nothing was written."""
    return {key: client.dump(key) for key in sorted(client.scan_iter(match=pattern, count=1000))}
