"""Shared fixtures, one section per concern. Helpers live in ``rig.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
import rig

from credits.redis_server import RedisCluster3

# --------------------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rig.RedisTarget]:
    """The suite's Redis: ``CREDITS_TEST_REDIS_URL``, or a server started here."""
    target = rig.start_redis_target(tmp_path_factory.mktemp("redis"))
    yield target
    rig.stop_redis_target(target)


@pytest.fixture(scope="session")
def redis_url(redis_target: rig.RedisTarget) -> str:
    return redis_target.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A 3-master Redis Cluster, started only if a test asks for it."""
    with RedisCluster3(tmp_path_factory.mktemp("cluster")) as started:
        yield started


# --------------------------------------------------------------------------- user ids


@pytest.fixture(name="unique_user")
def unique_user_fixture() -> Callable[[], str]:
    """``unique_user()`` returns a fresh user id on every call."""
    return rig.unique_user


@pytest.fixture
def user_id() -> str:
    """One fresh user id for this test."""
    return rig.unique_user()


# --------------------------------------------------------------------------- ledger (lead)
# Clock, the sync/async ``ledger`` fixture and the raw ``store`` client live in
# ledger_fixtures.py; importing them here registers them for every test module.
from ledger_fixtures import clock, ledger, store  # noqa: E402, F401
