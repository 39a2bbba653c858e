"""A primary, a replica and three sentinels on loopback, for failover tests (tests only).

All five processes come from the suite's ``redis-server`` binary
(:func:`credits.redis_server.find_redis_server`; a sentinel is that binary with
``--sentinel``), in subdirectories of one base directory, on ports the kernel
picks. Waiting is polling with a deadline, never a fixed sleep.

The faults a test needs, each deterministic on loopback:

* :meth:`SentinelRig.cut_replica`: the replica is SIGSTOPped and the primary
  drops its link, so writes from now on reach the primary only. (SIGSTOP alone
  is not enough: the kernel keeps receiving what the primary sends into the
  stopped replica's socket, and the replica reads it after SIGCONT.)
* :meth:`SentinelRig.fail_over`: SIGKILL of the primary, SIGCONT of the
  replica, and a wait until the sentinels have promoted it.
* :meth:`SentinelRig.replace_lost_node`: the killed node comes back, empty, as a
  replica of the new primary, as an operator replaces a dead machine; until
  then a ``wait_replicas=1`` client has no replica to wait for.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import redis

from credits.redis_server import HOST, RedisServer, find_redis_server, free_port
from credits.waiting import wait_until

SERVICE: Final = "credits"
SENTINEL_COUNT: Final = 3
QUORUM: Final = 2
# Loopback: 1 s to call a node down keeps a loaded CI machine from failing over
# by mistake; the failover then takes about 2-3 s (sentinel's own periods).
DOWN_AFTER_MS: Final = 1000
FAILOVER_TIMEOUT_MS: Final = 3000
READY_TIMEOUT_S: Final = 30.0
FAILOVER_TIMEOUT_S: Final = 60.0
STOP_TIMEOUT_S: Final = 10.0
PROBE_TIMEOUT_S: Final = 1.0


class SentinelRig:
    """One primary, one replica and three sentinels watching them as :data:`SERVICE`."""

    def __init__(self, base_dir: Path | str | None = None) -> None:
        self._owns_base_dir = base_dir is None
        self._base = Path(base_dir or tempfile.mkdtemp(prefix="credits-sentinel-")).resolve()
        self._binary = find_redis_server()
        self._nodes: dict[str, RedisServer] = {}  # "a" / "b": which is primary changes
        self._primary = "a"
        self._sentinels: list[subprocess.Popen[bytes]] = []
        self.sentinel_ports: list[int] = []
        self._stopped: set[str] = set()
        self._generation = 0

    # ---------------------------------------------------------------- addresses

    def url(self, db: int = 0) -> str:
        """``redis+sentinel://`` of the three sentinels, for the ledger, broker or backend."""
        hosts = ",".join(f"{HOST}:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}"

    @property
    def primary(self) -> RedisServer:
        return self._nodes[self._primary]

    @property
    def replica(self) -> RedisServer:
        return self._nodes[self._other(self._primary)]

    @staticmethod
    def _other(name: str) -> str:
        return "b" if name == "a" else "a"

    def primary_client(self) -> redis.Redis:
        """A plain client of the current primary (the caller closes it)."""
        return self.primary.client(decode_responses=True)

    def replica_client(self) -> redis.Redis:
        return self.replica.client(decode_responses=True)

    def sentinel_client(self, index: int = 0) -> redis.Redis:
        return redis.Redis(
            host=HOST,
            port=self.sentinel_ports[index],
            decode_responses=True,
            socket_timeout=PROBE_TIMEOUT_S,
        )

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        try:
            self._nodes["a"] = RedisServer(self._base / "a", executable=self._binary).start()
            self._nodes["b"] = self._start_replica("b", of=self._nodes["a"])
            self._wait_linked()
            for index in range(SENTINEL_COUNT):
                self._start_sentinel(index)
            wait_until(self._sentinels_see_everyone, timeout_s=READY_TIMEOUT_S, what="sentinels")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_replica(self, name: str, *, of: RedisServer, port: int | None = None) -> RedisServer:
        self._generation += 1
        directory = self._base / f"{name}-{self._generation}"
        args = ["--replicaof", HOST, str(of.port)]
        return RedisServer(directory, port=port, executable=self._binary, extra_args=args).start()

    def _wait_linked(self) -> None:
        def linked() -> bool:
            with contextlib.closing(self.primary_client()) as client:
                info = client.info("replication")
            return bool(info.get("connected_slaves") == 1 and info["slave0"]["state"] == "online")

        wait_until(linked, timeout_s=READY_TIMEOUT_S, what="the replica to sync")

    def _start_sentinel(self, index: int) -> None:
        port = free_port()
        directory = self._base / f"sentinel-{index}"
        directory.mkdir(parents=True, exist_ok=True)
        conf = directory / "sentinel.conf"  # sentinel rewrites its file: it must be writable
        conf.write_text(
            f"port {port}\nbind {HOST}\ndir {directory}\nlogfile {directory / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} {HOST} {self.primary.port} {QUORUM}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        proc = subprocess.Popen(
            [self._binary, str(conf), "--sentinel"],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        self._sentinels.append(proc)
        self.sentinel_ports.append(port)

    def _sentinels_see_everyone(self) -> bool:
        for index, proc in enumerate(self._sentinels):
            if proc.poll() is not None:
                raise RuntimeError(f"sentinel {index} exited with {proc.returncode}")
            try:
                with contextlib.closing(self.sentinel_client(index)) as client:
                    master = client.sentinel_master(SERVICE)
            except redis.RedisError:
                return False
            if int(master["num-other-sentinels"]) != SENTINEL_COUNT - 1:
                return False
            if int(master["num-slaves"]) < 1:
                return False
        return True

    def stop(self) -> None:
        for name in list(self._stopped):
            self._resume(name)
        for proc in self._sentinels:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        self._sentinels = []
        for node in self._nodes.values():
            node.stop()
        self._nodes = {}
        if self._owns_base_dir:
            shutil.rmtree(self._base, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- faults

    def cut_replica(self) -> None:
        """From now on writes reach the primary only: the replica frozen, its link dropped."""
        name = self._other(self._primary)
        os.kill(self._nodes[name].pid, signal.SIGSTOP)
        self._stopped.add(name)
        with contextlib.closing(self.primary_client()) as client:
            client.execute_command("CLIENT", "KILL", "TYPE", "replica")

    def resume_replica(self) -> None:
        """Undo :meth:`cut_replica` without a failover: the replica catches up."""
        self._resume(self._other(self._primary))
        self._wait_linked()

    def _resume(self, name: str) -> None:
        with contextlib.suppress(ProcessLookupError, RuntimeError):
            os.kill(self._nodes[name].pid, signal.SIGCONT)
        self._stopped.discard(name)

    def fail_over(self) -> None:
        """SIGKILL the primary, wake the replica, wait until the sentinels promoted it."""
        old, new = self._primary, self._other(self._primary)
        self._nodes[old].kill()
        self._resume(new)
        promoted_port = self._nodes[new].port

        def promoted() -> bool:
            for index in range(SENTINEL_COUNT):
                with contextlib.closing(self.sentinel_client(index)) as client:
                    try:
                        address = client.sentinel_get_master_addr_by_name(SERVICE)
                    except redis.RedisError:
                        return False
                if address is None or int(address[1]) != promoted_port:
                    return False
            with contextlib.closing(self._nodes[new].client(decode_responses=True)) as client:
                return bool(client.info("replication")["role"] == "master")

        wait_until(promoted, timeout_s=FAILOVER_TIMEOUT_S, what="the sentinels to promote")
        self._primary = new

    def replace_lost_node(self) -> None:
        """The killed node's port back, empty, as a replica of the new primary."""
        lost = self._other(self._primary)
        port = self._nodes[lost].port
        self._nodes[lost] = self._start_replica(lost, of=self.primary, port=port)
        self._wait_linked()


__all__ = ["SERVICE", "SentinelRig"]
