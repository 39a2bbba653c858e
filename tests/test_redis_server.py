"""The embedded redis-server launcher, against real processes (no mocks)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from cluster_rig import RedisCluster3
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

import credits.redis_server as redis_server_module
from credits.redis_server import (
    HOST,
    STATE_FILE_NAME,
    RedisServer,
    ServerExitedError,
    embedded_server,
    free_port,
    pid_is_alive,
    stop_embedded,
)

pytestmark = pytest.mark.system  # starts its own servers or processes

CHILD_TIMEOUT_S = 30.0


@pytest.fixture
def embedded_dir(tmp_path: Path) -> Iterator[Path]:
    """A data dir whose embedded server (if any) is stopped after the test."""
    data_dir = tmp_path / "data"
    yield data_dir
    stop_embedded(data_dir)


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", ""])
    proc.wait(timeout=CHILD_TIMEOUT_S)
    return proc.pid


def _write_state(data_dir: Path, text: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / STATE_FILE_NAME).write_text(text)


# --------------------------------------------------------------------------- RedisServer


def test_fixture_server_answers_ping(redis_client: redis.Redis) -> None:
    assert redis_client.ping() is True


def test_throwaway_server_has_no_persistence_and_never_evicts(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server, server.client(decode_responses=True) as client:
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
        assert server.url == f"redis://{HOST}:{server.port}/0"
        assert (tmp_path / "redis.log").is_file()
    assert not server.is_running


def test_value_survives_kill_and_restart_with_aof(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, persistent=True, appendfsync="always").start()
    try:
        with server.client() as client:
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
            client.set("credits:{u1}:acct", b"42")
        old_pid, port = server.pid, server.port
        server.kill()
        assert not pid_is_alive(old_pid)
        # redis 6.2 writes appendonly.aof; 7.x (a redis-server on PATH) writes appendonlydir/
        assert (tmp_path / "appendonly.aof").is_file() or (tmp_path / "appendonlydir").is_dir()

        server.restart()
        assert (server.port, server.pid != old_pid) == (port, True)
        with server.client() as client:
            assert client.get("credits:{u1}:acct") == b"42"
    finally:
        server.stop()


def test_password_server_refuses_unauthenticated_clients(tmp_path: Path) -> None:
    with RedisServer(tmp_path, password="s3cret") as server:
        assert server.url == f"redis://:s3cret@{HOST}:{server.port}/0"
        no_retry = Retry(NoBackoff(), 0)  # redis-py retries auth errors by default
        with (
            redis.Redis(host=HOST, port=server.port, retry=no_retry) as anonymous,
            pytest.raises(redis.AuthenticationError),
        ):
            anonymous.ping()
        with server.client() as client:
            assert client.ping() is True


def test_taken_port_fails_fast_with_the_log(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ServerExitedError, match="Address already in use"):
            RedisServer(tmp_path, port=port).start()


# --------------------------------------------------------------------------- embedded


def test_embedded_server_is_reused_for_the_same_dir(embedded_dir: Path) -> None:
    first = embedded_server(embedded_dir)
    second = embedded_server(embedded_dir)
    assert (second.pid, second.port) == (first.pid, first.port)
    with second.client() as client:
        assert client.config_get("appendonly") == {"appendonly": "yes"}


@pytest.mark.parametrize(
    "state_text",
    [
        pytest.param(lambda: json.dumps({"port": free_port(), "pid": _dead_pid()}), id="dead-pid"),
        pytest.param(lambda: json.dumps({"port": free_port(), "pid": os.getpid()}), id="not-redis"),
        pytest.param(lambda: "{not json", id="corrupt"),
    ],
)
def test_stale_state_file_starts_a_new_server(
    embedded_dir: Path, state_text: Callable[[], str]
) -> None:
    text = state_text()
    _write_state(embedded_dir, text)
    server = embedded_server(embedded_dir)
    assert server.is_running
    recorded = json.loads((embedded_dir / STATE_FILE_NAME).read_text())
    assert recorded == {"port": server.port, "pid": server.pid}
    assert json.dumps(recorded) != text


def test_embedded_server_outlives_the_process_that_started_it(embedded_dir: Path) -> None:
    child_code = (
        "import json, sys\n"
        "from credits.redis_server import embedded_server\n"
        "server = embedded_server(sys.argv[1])\n"
        "print(json.dumps({'pid': server.pid, 'port': server.port}))\n"
    )
    repo_root = Path(redis_server_module.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", child_code, str(embedded_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=CHILD_TIMEOUT_S,
        check=True,
    )
    started = json.loads(done.stdout)

    assert pid_is_alive(started["pid"])
    reused = embedded_server(embedded_dir)
    assert (reused.pid, reused.port) == (started["pid"], started["port"])

    assert stop_embedded(embedded_dir) is True
    assert not pid_is_alive(started["pid"])
    assert not (embedded_dir / STATE_FILE_NAME).exists()
    assert stop_embedded(embedded_dir) is False


def test_embedded_server_refuses_a_wrong_password(embedded_dir: Path) -> None:
    embedded_server(embedded_dir, password="s3cret")
    with pytest.raises(RuntimeError, match="does not answer as itself"):
        embedded_server(embedded_dir)


# --------------------------------------------------------------------------- cluster


@pytest.mark.cluster
def test_cluster_routes_hash_tags_to_all_three_nodes(cluster: RedisCluster3) -> None:
    client = RedisCluster(startup_nodes=cluster.startup_nodes)
    try:
        key_by_port: dict[int, str] = {}
        for index in range(1_000):
            key = f"credits:{{user-{index}}}:acct"
            owner = client.get_node_from_key(key)  # type: ignore[no-untyped-call]  # redis-py
            key_by_port.setdefault(owner.port, key)
            if len(key_by_port) == RedisCluster3.NODE_COUNT:
                break
        assert sorted(key_by_port) == sorted(cluster.ports)

        for port, key in key_by_port.items():
            assert client.set(key, str(port)) is True
            assert client.get(key) == str(port).encode()
            with redis.Redis(host=HOST, port=port) as owner:
                assert owner.get(key) == str(port).encode()
    finally:
        client.close()
