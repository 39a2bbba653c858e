"""Carrying :mod:`credits.steps` over redis-py, blocking or asyncio.

The two drivers are the only code that differs between the clients. Errors
from redis-py become credits errors here, with the cause chained:
connection loss and timeouts are :class:`StoreUnavailableError` (retryable),
anything else the server refused is :class:`TransactionError`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis import exceptions as redis_errors

from credits.errors import StoreUnavailableError, TransactionError
from credits.steps import Call, ScriptMissing, Steps

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
        error = TransactionError(f"Redis refused the call: {type(exc).__name__}: {exc}")
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
