"""Shared fixtures, one section per concern. Helpers live in ``rig.py``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import rig

from credits.redis_server import RedisCluster3

# --------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--slow",
        action="store_true",
        default=False,
        help="longer randomized runs: more Hypothesis examples and steps "
        "(the same as CREDITS_SLOW_TESTS=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Before collection, so modules that read CREDITS_SLOW_TESTS at import see it.
    if config.getoption("--slow"):
        os.environ["CREDITS_SLOW_TESTS"] = "1"


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
# Clock, the ``backend`` (single Redis or cluster), the sync/async ``ledger``
# fixture and the raw ``store`` / ``redis_client`` clients (which follow the
# ledger's backend) live in ledger_fixtures.py; importing them here registers
# them for every test module.
from ledger_fixtures import (  # noqa: E402, F401
    backend,
    clock,
    cluster_backend,
    ledger,
    redis_client,
    store,
)

# ------------------------------------------------------------------ Celery workers (helper-2)
# Real worker subprocesses (tests/workers.py) for test_tasks, test_cli and
# test_webhook_example. Imported lazily so other tests do not load Celery.


@pytest.fixture(scope="session")
def tasks_app(redis_url: str) -> object:
    """``credits.tasks.app`` of this process, sending to and reading from the test Redis."""
    import workers

    return workers.configure_app(redis_url)


@pytest.fixture
def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """``workers.start(...)`` runs a real worker on this test's own queue; all stop at the end."""
    import workers as worker_rig

    started = worker_rig.Workers(redis_url, tmp_path_factory.mktemp("workers"))
    yield started
    started.stop_all()
