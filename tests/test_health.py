"""The store check: eviction and persistence settings a ledger cannot live with."""

from __future__ import annotations

from pathlib import Path

from credits import Credits
from credits.redis_server import RedisServer


def test_a_persistent_noeviction_server_is_fit(tmp_path: Path) -> None:
    with RedisServer(tmp_path, persistent=True) as server, Credits(server.url) as client:
        assert client.check_store() == []


def test_eviction_and_no_persistence_are_reported(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server, Credits(server.url) as client:
        server.client().config_set("maxmemory-policy", "allkeys-lru")
        warnings = client.check_store()
        assert any("allkeys-lru" in w and "noeviction" in w for w in warnings)
        assert any("appendonly is off" in w for w in warnings)
        server.client().config_set("maxmemory-policy", "volatile-ttl")
        assert any("idempotency" in w for w in client.check_store())


def test_a_server_that_refuses_config_is_said_so(tmp_path: Path) -> None:
    refusing = RedisServer(tmp_path, extra_args=["--rename-command", "CONFIG", ""])
    with refusing as server, Credits(server.url) as client:
        (warning,) = client.check_store()
        assert "could not read the server configuration" in warning
