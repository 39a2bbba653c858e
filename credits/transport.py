"""Where transport happens: carrying :mod:`credits.protocol` over redis-py.

The executors (one call to Redis, blocking or asyncio, single server or
Cluster) and the drivers (run an operation's steps to the end) are the only
code that differs between the two clients. Errors from redis-py become credits
errors here, with the cause chained: connection loss and timeouts are
:class:`StoreUnavailableError` (outcome unknown, retryable with the same key),
anything else the server refused is :class:`StoreRefusedError` (nothing applied).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis import exceptions as redis_errors

from credits.errors import StoreRefusedError, StoreUnavailableError
from credits.protocol import Call, Command, ScriptMissing, Steps

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


def translate(exc: BaseException) -> BaseException:
    """The credits error a redis-py failure stands for, with the cause attached."""
    if isinstance(exc, redis_errors.NoScriptError):
        return ScriptMissing(str(exc))
    error: BaseException
    unavailable = isinstance(exc, _UNAVAILABLE) and not isinstance(exc, _CONFIGURATION)
    if unavailable or _cluster_unreachable(exc):
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


def drive(steps: Steps[T], execute: Callable[[Call], Any]) -> T:
    """Run ``steps`` to the end with blocking I/O."""
    try:
        call = next(steps)
        while True:
            try:
                reply = execute(call)
            except TRANSLATED as exc:
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
            except TRANSLATED as exc:
                call = steps.throw(translate(exc))
            else:
                call = steps.send(reply)
    except StopIteration as done:
        result: T = done.value
        return result


BlockingRedis = redis.Redis | redis.cluster.RedisCluster
AsyncRedis = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


def blocking_executor(client: BlockingRedis) -> Callable[[Call], Any]:
    """One Call over a blocking client: a Command's reply, or a Batch's list of replies."""

    def execute(call: Call) -> Any:
        if isinstance(call, Command):
            if call.every_node and isinstance(client, redis.cluster.RedisCluster):
                nodes = client.get_nodes()  # type: ignore[no-untyped-call]
                return client.execute_command(*call.args, target_nodes=nodes)  # type: ignore[no-untyped-call]
            return client.execute_command(*call.args)  # type: ignore[no-untyped-call]
        pipe = client.pipeline(transaction=False)
        for command in call.commands:
            pipe.execute_command(*command.args)
        return translate_replies(pipe.execute(raise_on_error=False))

    return execute


def async_executor(client: AsyncRedis) -> Callable[[Call], Awaitable[Any]]:
    """One Call over an asyncio client (see :func:`blocking_executor`)."""

    async def execute(call: Call) -> Any:
        if isinstance(call, Command):
            if call.every_node and isinstance(client, redis.asyncio.cluster.RedisCluster):
                return await client.execute_command(*call.args, target_nodes=client.get_nodes())
            return await client.execute_command(*call.args)
        pipe = client.pipeline(transaction=False)
        for command in call.commands:
            pipe.execute_command(*command.args)
        return translate_replies(await pipe.execute(raise_on_error=False))

    return execute
