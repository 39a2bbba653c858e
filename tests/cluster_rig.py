"""A 3-master Redis Cluster on loopback, for routing tests (tests only).

Started from the same ``redis-server`` binary as the suite's single server
(:mod:`credits.redis_server`), so hash-tag routing is tested against real slot
ownership, resharding and a node going down.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import redis
from redis.cluster import ClusterNode

from credits.redis_server import HOST, LOG_TAIL_CHARS_MAX, RedisServer, find_redis_cli
from credits.waiting import wait_until

CLUSTER_SLOT_COUNT: Final = 16_384
CLUSTER_READY_TIMEOUT_S: Final = 30.0
CLUSTER_NODE_TIMEOUT_MS: Final = 5_000


class RedisCluster3:
    """A 3-master Redis Cluster (no replicas) on loopback, for routing tests.

    Each node runs in its own subdirectory of ``base_dir`` (a temporary
    directory, removed on stop, if not given). The slots are assigned with
    ``redis-cli --cluster create``; :meth:`start` returns once every node
    reports ``cluster_state:ok`` with all 16384 slots and 3 known nodes.
    """

    NODE_COUNT: Final = 3

    def __init__(
        self,
        base_dir: Path | str | None = None,
        *,
        node_timeout_ms: int = CLUSTER_NODE_TIMEOUT_MS,
        ready_timeout_s: float = CLUSTER_READY_TIMEOUT_S,
    ) -> None:
        self._base_dir = None if base_dir is None else Path(base_dir).resolve()
        self._owns_base_dir = base_dir is None
        self._node_timeout_ms = node_timeout_ms
        self._ready_timeout_s = ready_timeout_s
        self._nodes: list[RedisServer] = []

    @property
    def nodes(self) -> list[RedisServer]:
        return list(self._nodes)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self._nodes]

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        """For ``redis.cluster.RedisCluster(startup_nodes=...)``."""
        # redis-py leaves ClusterNode.__init__ unannotated.
        return [ClusterNode(HOST, port) for port in self.ports]  # type: ignore[no-untyped-call]

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT`` of the first node; clients discover the rest."""
        return f"redis://{HOST}:{self.ports[0]}"

    def start(self) -> Self:
        """Start the nodes, assign slots, wait for ``cluster_state:ok`` everywhere.

        Raises:
            RuntimeError: ``redis-cli --cluster create`` failed.
            TimeoutError: the cluster did not become ok in ``ready_timeout_s``.
        """
        if self._nodes:
            raise RuntimeError("cluster already started")
        if self._base_dir is None:
            self._base_dir = Path(tempfile.mkdtemp(prefix="credits-cluster-"))
        try:
            self._start_nodes(self._base_dir)
            self._create_cluster()
            wait_until(self._all_nodes_ok, timeout_s=self._ready_timeout_s, what="cluster ok")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_nodes(self, base_dir: Path) -> None:
        for index in range(self.NODE_COUNT):
            node = RedisServer(
                base_dir / f"node-{index}", cluster_node_timeout_ms=self._node_timeout_ms
            )
            self._nodes.append(node)
            node.start()

    def _create_cluster(self) -> None:
        argv = [
            find_redis_cli(), "--cluster", "create",
            *(f"{HOST}:{port}" for port in self.ports),
            "--cluster-replicas", "0", "--cluster-yes",
        ]  # fmt: skip
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=self._ready_timeout_s,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-LOG_TAIL_CHARS_MAX:]
            raise RuntimeError(f"redis-cli --cluster create exited {result.returncode}:\n{output}")

    def _all_nodes_ok(self) -> bool:
        return all(self._node_ok(node) for node in self._nodes)

    def _node_ok(self, node: RedisServer) -> bool:
        with contextlib.closing(node.client(decode_responses=True)) as probe:
            try:
                info = _parse_info_lines(probe.cluster("INFO"))
            except (redis.ConnectionError, redis.TimeoutError):
                return False
        return (
            info.get("cluster_state") == "ok"
            and info.get("cluster_slots_ok") == str(CLUSTER_SLOT_COUNT)
            and info.get("cluster_known_nodes") == str(self.NODE_COUNT)
        )

    def stop(self) -> None:
        """Stop every node; remove the base dir if this object created it."""
        for node in self._nodes:
            node.stop()
        self._nodes = []
        if self._owns_base_dir and self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
            self._base_dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _parse_info_lines(raw: object) -> dict[str, str]:
    """CLUSTER INFO as ``{field: value}``, whether redis-py parsed it already or not."""
    if isinstance(raw, dict):
        return {str(key): str(value) for key, value in raw.items()}
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields
