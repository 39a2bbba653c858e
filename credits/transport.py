"""Where transport happens: carrying :mod:`credits.protocol` over redis-py.

The executors (one call to Redis, blocking or asyncio, single server or
Cluster) and the drivers (run an operation's steps to the end) are the only
code that differs between the two clients. Errors from redis-py become credits
errors here, with the cause chained: connection loss and timeouts are
:class:`StoreUnavailableError` (outcome unknown, retryable with the same key),
anything else the server refused is :class:`StoreRefusedError` (nothing applied).
A refusal that only a failover explains (a script that met a read-only,
demoted primary: ``READONLY``; ``NOREPLICAS`` under ``min-replicas-to-write``)
is :class:`StoreUnavailableError` too, and a single-server pool that met a
demoted primary is emptied so that its next connection asks the sentinels again.

With ``wait_replicas`` the executors send each write and its ``WAIT`` in one
pipeline (:mod:`credits.replication`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis import exceptions as redis_errors

from credits.errors import (
    ArchiveUnavailableError,
    CreditsError,
    StoreRefusedError,
    StoreUnavailableError,
)
from credits.protocol import ArchiveCall, Call, Command, ScriptMissing, Steps
from credits.replication import (
    PROBE,
    Replication,
    commands_of,
    first_key,
    raise_first_error,
)

T = TypeVar("T")

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ClusterDownError,
    # "TTL exhausted": every attempt was redirected (ASK, TRYAGAIN, MOVED), as while a
    # bucket's slot is half-migrated during resharding; no attempt ran the script.
    redis_errors.ClusterError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    redis_errors.ReadOnlyError,
    OSError,
)


# Subclasses of ConnectionError that no retry can mend: a wrong password stays wrong.
_CONFIGURATION: tuple[type[BaseException], ...] = (
    redis_errors.AuthenticationError,
    redis_errors.AuthenticationWrongNumberOfArgsError,
)


def _cluster_unreachable(exc: BaseException) -> bool:
    """A RedisClusterException (not a RedisError) that says no node could be reached."""
    if not isinstance(exc, redis_errors.RedisClusterException):
        return False
    causes = (exc.__cause__, exc.__context__)
    return "cannot be connected" in str(exc) or any(isinstance(c, _UNAVAILABLE) for c in causes)


# Words of a refusal that means "this node is not (or no longer) a primary that may write".
_FAILOVER_WORDS: tuple[str, ...] = ("READONLY", "NOREPLICAS")


def demoted(exc: object) -> bool:
    """A refusal only a failover explains.

    On Redis 6.2 a script that writes on a replica fails with a plain
    ResponseError ("Error running script ... -READONLY ..."), which redis-py's
    Sentinel connection does not recognise, so the pool would stay pinned to
    the demoted primary: the executors empty it when they see one.
    """
    return isinstance(exc, redis_errors.ResponseError) and any(
        word in str(exc) for word in _FAILOVER_WORDS
    )


def translate(exc: BaseException) -> BaseException:
    """The credits error a redis-py failure stands for, with the cause attached."""
    if isinstance(exc, CreditsError | ScriptMissing):
        return exc
    if isinstance(exc, redis_errors.NoScriptError):
        return ScriptMissing(str(exc))
    error: BaseException
    unavailable = isinstance(exc, _UNAVAILABLE) and not isinstance(exc, _CONFIGURATION)
    if unavailable or demoted(exc) or _cluster_unreachable(exc):
        error = StoreUnavailableError(f"Redis unavailable: {type(exc).__name__}: {exc}")
    else:
        error = StoreRefusedError(f"Redis refused the call: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def translate_replies(replies: list[Any]) -> list[Any]:
    """A pipeline's replies with each failed command's error translated in place."""
    return [translate(r) if isinstance(r, TRANSLATED) else r for r in replies]


# RedisClusterException is a plain Exception in redis-py (slot discovery failed,
# a command with no key to route by, cluster mode off on the server).
TRANSLATED: tuple[type[BaseException], ...] = (
    redis_errors.RedisError,
    redis_errors.RedisClusterException,
    OSError,
)


# What a driver throws into the steps: redis-py failures (translated) and the
# credits errors an executor raises itself (a write its replicas did not confirm).
DRIVEN: tuple[type[BaseException], ...] = (*TRANSLATED, CreditsError)


def drive(steps: Steps[T], execute: Callable[[Call], Any]) -> T:
    """Run ``steps`` to the end with blocking I/O."""
    try:
        call = next(steps)
        while True:
            try:
                reply = execute(call)
            except DRIVEN as exc:
                call = steps.throw(translate(exc))
            else:
                call = steps.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result


async def drive_async(steps: Steps[T], execute: Callable[[Call], Awaitable[Any]]) -> T:
    """Run ``steps`` to the end with asyncio I/O."""
    try:
        call = next(steps)
        while True:
            try:
                reply = await execute(call)
            except DRIVEN as exc:
                call = steps.throw(translate(exc))
            else:
                call = steps.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result


BlockingRedis = redis.Redis | redis.cluster.RedisCluster
AsyncRedis = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def _is_cluster(client: object) -> bool:
    return isinstance(client, redis.cluster.RedisCluster | redis.asyncio.cluster.RedisCluster)


class _Durable:
    """One pipeline of a waited-for write: the call's commands, then the WAITs.

    Shared by both executors; they differ only in sending it. On a single
    server one WAIT follows the commands; on a Cluster one WAIT per node that
    owns a command's slot, sent to that node, so it runs on the connection
    that ran the commands (a cluster pipeline uses one connection per node).
    """

    def __init__(self, client: Any, call: Call, replication: Replication) -> None:
        self.client = client
        self.call = call
        self.replication = replication
        self.commands = commands_of(call)
        # (key, node name) of each command, to see afterwards whether one was redirected.
        self.routes: list[tuple[str, str]] = []

    def fill(self, pipe: Any) -> None:
        for command in self.commands:
            pipe.execute_command(*command.args)
        wait = self.replication.wait_args()
        if not _is_cluster(self.client):
            pipe.execute_command(*wait)
            return
        nodes: dict[str, Any] = {}
        for command in self.commands:
            key = first_key(command)
            if key is None:
                continue
            node = self.client.get_node_from_key(key)
            nodes.setdefault(node.name, node)
            self.routes.append((key, node.name))
        for node in nodes.values():
            pipe.execute_command(*wait, target_nodes=node)

    def finish(self, replies: list[Any]) -> Any:
        count = len(self.commands)
        head, waits = replies[:count], replies[count:]
        if isinstance(self.call, Command):
            raise_first_error(head)
        short = self.replication.short(waits)
        moved = [k for k, name in self.routes if self.client.get_node_from_key(k).name != name]
        if moved:
            short.append(f"{len(moved)} write(s) redirected to another node")
        if short:
            raise self.replication.not_acknowledged(short)
        return head[0] if isinstance(self.call, Command) else translate_replies(head)


def _demoted_in(replies: Any) -> bool:
    return isinstance(replies, list) and any(demoted(reply) for reply in replies)


def _waited(call: Call, replication: Replication | None) -> bool:
    return replication is not None and replication.applies_to(call)


def _pipeline(
    client: BlockingRedis | AsyncRedis, call: Call, replication: Replication | None
) -> tuple[Any, Callable[[list[Any]], Any]]:
    """The pipeline (no MULTI) for a Batch or a waited-for write, and how to read its replies.

    Shared by both executors: one sends it with blocking I/O, the other awaits it.
    """
    pipe = client.pipeline(transaction=False)
    if replication is not None and _waited(call, replication):
        durable = _Durable(client, call, replication)
        durable.fill(pipe)
        return pipe, durable.finish
    for command in commands_of(call):
        pipe.execute_command(*command.args)
    return pipe, translate_replies


class ArchiveLike(Protocol):
    def call(self, method: str, args: tuple[Any, ...]) -> Any: ...


def archive_call(archive: ArchiveLike | None, call: ArchiveCall) -> Any:
    """Run one :class:`ArchiveCall` (blocking); no archive configured is a typed error."""
    if archive is None:
        raise ArchiveUnavailableError(
            "this call needs the archive tier and none is configured: set CREDITS_ARCHIVE_URL "
            "(or pass archive_url=) to the archive the archiver writes to"
        )
    return archive.call(call.method, call.args)


def blocking_executor(
    client: BlockingRedis,
    replication: Replication | None = None,
    archive: ArchiveLike | None = None,
) -> Callable[[Call], Any]:
    """One Call over a blocking client: a Command's reply, or a Batch's list of replies.

    With ``replication``, a write and its WAIT go in one pipeline (see :class:`_Durable`).
    An :class:`ArchiveCall` goes to ``archive``.
    """

    def send(call: Call) -> Any:
        if isinstance(call, ArchiveCall):
            return archive_call(archive, call)
        waited = _waited(call, replication)
        if waited and replication is not None and replication.verb is None:
            replication.learn(_probe_blocking(client))
        if isinstance(call, Command) and not waited:
            if call.every_node and isinstance(client, redis.cluster.RedisCluster):
                nodes = client.get_nodes()  # type: ignore[no-untyped-call]
                return client.execute_command(*call.args, target_nodes=nodes)  # type: ignore[no-untyped-call]
            return client.execute_command(*call.args)  # type: ignore[no-untyped-call]
        pipe, finish = _pipeline(client, call, replication)
        raw = pipe.execute(raise_on_error=False)
        if _demoted_in(raw):
            _forget_demoted_blocking(client)
        return finish(raw)

    def execute(call: Call) -> Any:
        try:
            return send(call)
        except redis_errors.ResponseError as exc:
            if demoted(exc):
                _forget_demoted_blocking(client)
            raise

    return execute


def _probe_target(client: BlockingRedis | AsyncRedis) -> dict[str, Any]:
    """On a Cluster the probe goes to one node (the servers of one cluster agree)."""
    node = client.get_default_node() if _is_cluster(client) else None  # type: ignore[union-attr]
    return {"target_nodes": node} if node is not None else {}


def _probe_blocking(client: BlockingRedis) -> Any:
    target = _probe_target(client)
    try:
        return client.execute_command(*PROBE, **target)  # type: ignore[no-untyped-call]
    except redis_errors.ResponseError as exc:
        return exc


def _forget_demoted_blocking(client: BlockingRedis) -> None:
    if not _is_cluster(client):
        client.connection_pool.disconnect()  # type: ignore[union-attr]


def async_executor(
    client: AsyncRedis,
    replication: Replication | None = None,
    archive: ArchiveLike | None = None,
) -> Callable[[Call], Awaitable[Any]]:
    """One Call over an asyncio client (see :func:`blocking_executor`); archive calls
    run in a worker thread, so a slow archive never blocks the event loop."""

    async def send(call: Call) -> Any:
        if isinstance(call, ArchiveCall):
            return await asyncio.to_thread(archive_call, archive, call)
        waited = _waited(call, replication)
        if waited and replication is not None and replication.verb is None:
            replication.learn(await _probe_async(client))
        if isinstance(call, Command) and not waited:
            if call.every_node and isinstance(client, redis.asyncio.cluster.RedisCluster):
                return await client.execute_command(*call.args, target_nodes=client.get_nodes())
            return await client.execute_command(*call.args)
        pipe, finish = _pipeline(client, call, replication)
        raw = await pipe.execute(raise_on_error=False)
        if _demoted_in(raw):
            await _forget_demoted_async(client)
        return finish(raw)

    async def execute(call: Call) -> Any:
        try:
            return await send(call)
        except redis_errors.ResponseError as exc:
            if demoted(exc):
                await _forget_demoted_async(client)
            raise

    return execute


async def _probe_async(client: AsyncRedis) -> Any:
    target = _probe_target(client)
    try:
        return await client.execute_command(*PROBE, **target)
    except redis_errors.ResponseError as exc:
        return exc


async def _forget_demoted_async(client: AsyncRedis) -> None:
    if not _is_cluster(client):
        await client.connection_pool.disconnect()  # type: ignore[union-attr]
