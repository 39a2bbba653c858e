"""Fixtures for ledger tests: an injectable clock and one test body for both clients.

``ledger`` is parametrized over the blocking and the asyncio client, each on
the suite's single Redis and again on the 3-node Redis Cluster
(``cluster-sync``, ``cluster-async``; marked ``cluster``, so ``-m "not
cluster"`` leaves them out). The async client is wrapped so that its
coroutines run to completion on a private event loop, so a test written once
exercises all four and they cannot drift.

``backend`` is where the test's ledger lives (URL and cluster flag); the raw
``store`` and ``redis_client`` follow it, so a test that looks behind the
ledger's back looks at the same server. A test that builds its own clients
takes ``backend`` instead of ``redis_url`` (and ``@BOTH_BACKENDS`` to run on
the cluster too).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.cluster

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


@dataclass(frozen=True)
class Backend:
    """Where a test's ledger lives: the suite's single Redis, or the 3-node cluster."""

    url: str
    cluster: bool
    shared_raw: dict[bool, Any] = field(default_factory=dict, compare=False, repr=False)

    def credits(self, **kwargs: Any) -> Credits:
        return Credits(self.url, cluster=self.cluster, **kwargs)

    def async_credits(self, **kwargs: Any) -> AsyncCredits:
        return AsyncCredits(self.url, cluster=self.cluster, **kwargs)

    def raw(self, *, decode_responses: bool) -> Any:
        """A plain redis-py client of the same server(s): ``Redis`` or ``RedisCluster``.

        On the cluster it is one client per session (building a ``RedisCluster``
        costs a slot discovery, ~20 ms); tests must not close it.
        """
        if not self.cluster:
            return redis.Redis.from_url(self.url, decode_responses=decode_responses)
        if decode_responses not in self.shared_raw:
            self.shared_raw[decode_responses] = redis.cluster.RedisCluster.from_url(
                self.url, decode_responses=decode_responses
            )
        return self.shared_raw[decode_responses]

    def close_raw(self, client: Any) -> None:
        if not self.cluster:
            client.close()


class ClusterBackend:
    """The session's cluster as a backend, with a probe of every node's error counters."""

    def __init__(self, cluster: Any) -> None:
        self.backend = Backend(cluster.url, cluster=True)
        self._nodes = [node.client() for node in cluster.nodes]

    def crossslot_errors(self) -> int:
        """CROSSSLOT refusals counted by the cluster's nodes since they started."""
        total = 0
        for node in self._nodes:
            stats = node.info("errorstats").get("errorstat_CROSSSLOT", {})
            total += int(stats.get("count", 0))
        return total

    def close(self) -> None:
        for client in [*self._nodes, *self.backend.shared_raw.values()]:
            client.close()


@pytest.fixture(scope="session")
def cluster_backend(cluster: Any) -> Iterator[ClusterBackend]:
    started = ClusterBackend(cluster)
    yield started
    started.close()


LEDGER_PARAMS = [
    "sync",
    "async",
    pytest.param("cluster-sync", marks=pytest.mark.cluster),
    pytest.param("cluster-async", marks=pytest.mark.cluster),
]
# For tests that build their own clients from ``backend``: run on both backends.
BOTH_BACKENDS = pytest.mark.parametrize(
    "backend", ["single", pytest.param("cluster", marks=pytest.mark.cluster)], indirect=True
)


def _wants_cluster(request: pytest.FixtureRequest) -> bool:
    if getattr(request, "param", None) == "cluster":
        return True
    callspec = getattr(request.node, "callspec", None)
    kind = callspec.params.get("ledger", "") if callspec is not None else ""
    return isinstance(kind, str) and kind.startswith("cluster-")


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """The single Redis, or the cluster for ``cluster-*`` ledgers (and ``"cluster"`` params).

    On the cluster, the test also fails if any node refused a command with
    CROSSSLOT while it ran.
    """
    if not _wants_cluster(request):
        yield Backend(request.getfixturevalue("redis_url"), cluster=False)
        return
    if "redis_url" in request.fixturenames:
        pytest.fail(
            "this test runs on the cluster but also asks for redis_url (the single Redis): "
            "take `backend` and build clients with backend.credits(...)"
        )
    shared: ClusterBackend = request.getfixturevalue("cluster_backend")
    before = shared.crossslot_errors()
    yield shared.backend
    assert shared.crossslot_errors() == before, "a command was refused with CROSSSLOT"


@pytest.fixture(params=LEDGER_PARAMS)
def ledger(request: pytest.FixtureRequest, backend: Backend, clock: Clock) -> Iterator[Any]:
    """A client of the test's backend with the test's clock, once per client kind and backend."""
    kind = request.param.removeprefix("cluster-")
    client, close = make_ledger(kind, backend.url, cluster=backend.cluster, clock=clock)
    yield client
    close()


@pytest.fixture
def store(backend: Backend) -> Iterator[Any]:
    """A raw client, for looking behind the ledger's back (and corrupting it on purpose)."""
    client = backend.raw(decode_responses=True)
    yield client
    backend.close_raw(client)


@pytest.fixture
def redis_client(backend: Backend) -> Iterator[Any]:
    """Like ``store``, with bytes replies (for DUMP snapshots)."""
    client = backend.raw(decode_responses=False)
    yield client
    backend.close_raw(client)


def store_snapshot(client: redis.Redis, pattern: str = "credits:*") -> dict[Any, Any]:
    """Every ledger key with its content, to prove that nothing was written.

    Read by type rather than with DUMP: a hash big enough to be a real hash table
    DUMPs its fields in table order, which a mere read can change (incremental
    rehashing), so equal content could DUMP differently.
    """
    readers = {
        "hash": lambda key: sorted(client.hgetall(key).items()),
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        "set": lambda key: sorted(client.smembers(key)),
        "stream": lambda key: client.xrange(key),
        "string": lambda key: client.get(key),
        "list": lambda key: client.lrange(key, 0, -1),
    }
    snapshot: dict[Any, Any] = {}
    for key in sorted(client.scan_iter(match=pattern, count=1000)):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        snapshot[key] = (kind, readers[kind](key), client.pttl(key) > 0)
    return snapshot
