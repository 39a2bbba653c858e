"""Shared fixtures, one section per concern. Helpers live in ``rig.py``.

The ledger fixtures (clock, backend, the sync/async ``ledger``, raw clients)
are a plugin of their own, ``ledger_fixtures.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import rig
from cluster_rig import RedisCluster3

pytest_plugins = ["ledger_fixtures"]

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


# Fixtures that start processes or servers beyond the suite's one Redis: a test
# that uses one is a system test, whatever its module says.
SYSTEM_FIXTURES = frozenset({"workers", "tasks_app", "cluster", "cluster_backend"})
SYSTEM_MARKERS = frozenset({"slow", "cluster"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark system tests, so ``-m "not system"`` is the quick inner loop.

    A test is a system test when it is marked so (a module that starts its own
    servers or processes says ``pytestmark = pytest.mark.system``), is slow, or
    runs on the cluster, or uses a fixture that starts workers or the cluster.
    """
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        markers = {mark.name for mark in item.iter_markers()}
        if fixtures & SYSTEM_FIXTURES or markers & SYSTEM_MARKERS:
            item.add_marker(pytest.mark.system)


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


# --------------------------------------------------------------------------- Celery workers
# Real worker subprocesses (tests/worker_rig.py) for test_tasks, test_cli and
# test_webhook_example. Imported lazily so other tests do not load Celery.


@pytest.fixture(scope="session")
def tasks_app(redis_url: str) -> object:
    """``credits.tasks.app`` of this process, sending to and reading from the test Redis."""
    import worker_rig

    return worker_rig.configure_app(redis_url)


@pytest.fixture
def workers(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """``workers.start(...)`` runs a real worker on this test's own queue; all stop at the end."""
    import worker_rig

    started = worker_rig.Workers(redis_url, tmp_path_factory.mktemp("workers"))
    yield started
    started.stop_all()


# --------------------------------------------------------------------------- the archive tier
# A real PostgreSQL (tests/pg_rig.py: CREDITS_TEST_POSTGRES_URL, or one started from the
# system's binaries) and SQLite; every archive test runs on both, each in its own
# schema or file, and only what the suite made is dropped.


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    import pg_rig

    started = pg_rig.start_postgres_target()
    if isinstance(started, str):
        pytest.skip(started)
    made: list[str] = []
    started.made_schemas = made  # type: ignore[attr-defined]
    yield started
    try:
        started.drop_schemas(made)
    finally:
        started.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, empty archive of each kind for this test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('archive')}/archive.db"
    import pg_rig

    target = request.getfixturevalue("postgres")
    schema = pg_rig.new_schema()
    target.made_schemas.append(schema)
    return str(target.archive_url(schema))


ARCHIVE_CLIENT_KINDS = ["sync", "async", pytest.param("cluster-sync", marks=pytest.mark.cluster)]


@pytest.fixture(params=ARCHIVE_CLIENT_KINDS)
def tiered(request: pytest.FixtureRequest, clock: Any, archive_url: str) -> Iterator[Any]:
    """A ledger client with the test's archive and clock; the test's user is forgotten
    at the end (archive_rig.forget_user), its history gone with the archive."""
    from archive_rig import forget_user
    from ledger_fixtures import Backend, make_ledger

    kind: str = request.param
    if kind.startswith("cluster-"):
        backend = request.getfixturevalue("cluster_backend").backend
    else:
        backend = Backend(request.getfixturevalue("redis_url"), cluster=False)
    client, close = make_ledger(
        kind.removeprefix("cluster-"),
        backend.url,
        cluster=backend.cluster,
        clock=clock,
        archive_url=archive_url,
    )
    client.test_backend = backend
    user: str = request.getfixturevalue("user_id")
    yield client
    close()
    raw = backend.raw(decode_responses=True)
    forget_user(raw, user)
    backend.close_raw(raw)
