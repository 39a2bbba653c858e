"""The archiver under faults: killed between copy and trim, its archive gone, its bucket moved.

Each fault is made real: the archiver process is SIGKILLed right after the
archive committed a batch and before Redis trimmed it; the PostgreSQL server is
shut down mid-run and started again; the user's slot is migrated to another
Cluster node between two batches. After each, nothing is lost, nothing is
counted twice, and the next run finishes the work.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from archive_rig import archive_mark, daily_history, every_tx_id, forget_user, hot_events, is_trim
from cluster_rig import RedisCluster3
from ledger_fixtures import Clock, make_ledger
from redis.crc import key_slot
from worker_rig import REPO_ROOT, clean_env

from credits import Credits
from credits.errors import ArchiveUnavailableError, StoreUnavailableError
from credits.keys import user_keys
from credits.redis_server import RedisServer

pytestmark = pytest.mark.system  # starts processes and servers of its own

# Runs the archiver in a process of its own and SIGKILLs it at its second trim: the
# second batch is committed in the archive and still whole in Redis.
ARCHIVER = """
import os, signal, sys
from credits import Credits
from credits.scripts import script
url, archive, user, now_s = sys.argv[1:5]
client = Credits(url, archive_url=archive, clock=lambda: float(now_s))
trim, execute, trimmed = script("archive_trim"), client._execute, []
def dies_at_the_second_trim(call):
    args = getattr(call, "args", ())
    if args and args[0] in ("EVALSHA", "EVAL") and (trim.sha in args or trim.source in args):
        if trimmed:
            os.kill(os.getpid(), signal.SIGKILL)
        reply = execute(call)
        trimmed.append(call)
        return reply
    return execute(call)
client._execute = dies_at_the_second_trim
client.archive_events(batch_events=25, users=[user])
"""


def test_archiver_sigkilled_between_copy_and_trim(
    redis_url: str, archive_url: str, clock: Clock, user_id: str
) -> None:
    client, close = make_ledger("sync", redis_url, clock=clock, archive_url=archive_url)
    try:
        daily_history(client, clock, user_id, 150)
        before = every_tx_id(client, user_id)
        died = subprocess.run(
            [sys.executable, "-c", ARCHIVER, redis_url, archive_url, user_id, str(clock.now_s)],
            cwd=REPO_ROOT, env=clean_env(), capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert died.returncode == -signal.SIGKILL, died.stderr
        raw = client.redis
        assert client.archive.event_count(user_id) == 50  # two batches committed
        assert hot_events(raw, user_id) == 151 - 25  # one trimmed
        assert archive_mark(raw, user_id) == before[24]
        assert every_tx_id(client, user_id) == before  # the overlap is read once
        assert client.verify_balance(user_id).valid
        report = client.archive_events(batch_events=25, users=[user_id])
        assert report.events_archived == 61 - 25
        assert client.archive.event_count(user_id) == 61
        assert every_tx_id(client, user_id) == before
        assert client.verify_balance(user_id, full=True).valid
    finally:
        forget_user(client.redis, user_id)
        close()


@pytest.fixture
def own_postgres() -> Iterator[Any]:
    """A PostgreSQL of this test's own, to shut down and start again."""
    import pg_rig

    binaries = pg_rig.find_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL binaries to start a server of this test's own")
    started = pg_rig.start_throwaway(binaries)
    yield started
    started.stop()


def test_the_archive_goes_down_mid_run_and_archiving_resumes(
    redis_url: str, own_postgres: Any, clock: Clock, user_id: str
) -> None:
    client, close = make_ledger("sync", redis_url, clock=clock, archive_url=own_postgres.url)
    try:
        daily_history(client, clock, user_id, 150)
        before = every_tx_id(client, user_id)
        execute = client._execute

        def goes_down_after_the_first_trim(call: Any) -> Any:
            reply = execute(call)
            if is_trim(call) and own_postgres.process.poll() is None:
                own_postgres.shut_down()
            return reply

        client._execute = goes_down_after_the_first_trim
        with pytest.raises(ArchiveUnavailableError):
            client.archive_events(batch_events=25, users=[user_id])
        client._execute = execute
        # The archive is down: the hot ledger goes on, and reads of the hot part too.
        assert hot_events(client.redis, user_id) == 151 - 25
        assert client.deduct(user_id, 2, "chat_message").balance == 10**9 - 152
        assert len(client.get_transactions(user_id, limit=50)) == 50
        assert client.verify_balance(user_id).valid
        with pytest.raises(ArchiveUnavailableError):
            client.archive_events(users=[user_id])
        own_postgres.start_again()
        report = client.archive_events(batch_events=25, users=[user_id])
        assert report.events_archived == 61 - 25
        assert every_tx_id(client, user_id)[:-1] == before
        assert client.verify_balance(user_id, full=True).valid
    finally:
        forget_user(client.redis, user_id)
        close()


@pytest.fixture(scope="module")
def reshard_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster3]:
    """A cluster of this module's own: a slot of it gets moved."""
    with RedisCluster3(tmp_path_factory.mktemp("archive-reshard")) as started:
        yield started


def _node_id(node: RedisServer) -> str:
    with node.client() as client:
        return str(client.execute_command("CLUSTER", "MYID").decode())


def _owner(cluster: RedisCluster3, slot: int) -> RedisServer:
    with cluster.nodes[0].client() as client:
        for first, last, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return next(n for n in cluster.nodes if n.port == primary[1])
    raise AssertionError(f"slot {slot} has no owner")


@pytest.mark.cluster
def test_a_bucket_resharded_while_archiving(
    reshard_cluster: RedisCluster3, archive_url: str, clock: Clock, user_id: str
) -> None:
    """The user's slot is caught half-migrated at a trim, then moved whole mid-run."""
    keys = user_keys(user_id)
    slot = key_slot(keys.account.encode())
    with Credits(
        reshard_cluster.url, cluster=True, clock=clock, archive_url=archive_url, socket_timeout=2
    ) as client:
        daily_history(client, clock, user_id, 150)
        before = every_tx_id(client, user_id)
        source = _owner(reshard_cluster, slot)
        target = next(n for n in reshard_cluster.nodes if n is not source)
        execute = client._execute
        moved: list[str] = []

        def migrates_after_the_first_trim(call: Any) -> Any:
            reply = execute(call)
            if is_trim(call) and not moved:
                with source.client() as src, target.client() as dst:
                    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(source))
                    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(target))
                    src.execute_command(
                        "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", keys.archived
                    )
                moved.append(keys.archived)
            return reply

        client._execute = migrates_after_the_first_trim
        with pytest.raises(StoreUnavailableError):
            client.archive_events(batch_events=25, users=[user_id])  # TRYAGAIN at the trim
        client._execute = execute
        assert client.archive.event_count(user_id) >= 25
        with source.client() as src:
            rest = [k.decode() for k in src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1000)]
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *rest)
        for node in reshard_cluster.nodes:
            with node.client() as each:
                each.execute_command("CLUSTER", "SETSLOT", slot, "NODE", _node_id(target))
        assert _owner(reshard_cluster, slot) is target
        report = client.archive_events(batch_events=25, users=[user_id])  # on the new node
        assert report.events_archived + 25 == 61
        assert client.archive.event_count(user_id) == 61
        assert every_tx_id(client, user_id) == before
        assert client.verify_balance(user_id, full=True).valid
        with target.client() as dst:
            assert dst.xlen(keys.log) == 151 - 61
        try:
            with source.client() as src:
                assert src.exists(keys.log) == 0
        except redis.ResponseError:
            pass
