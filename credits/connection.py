"""What both clients share before any I/O: configuration, the clock, connecting.

redis-py retries a command after a connection error by default. For a ledger
that is unsafe: a script that ran but whose reply was lost would run twice.
So the connections here never retry on their own; the caller (or a Celery
task) retries with the same idempotency key or reservation id, which the
scripts apply once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
from redis.backoff import NoBackoff
from redis.retry import Retry

from credits.errors import InvalidInputError
from credits.limits import AMOUNT_MAX
from credits.settings import CreditsSettings, redact_url, resolve_redis_url
from credits.steps import Batch, Call, Command
from credits.transport import TRANSLATED, translate, translate_replies

Clock = Callable[[], float]
SOCKET_TIMEOUT_S_DEFAULT = 5.0


def _system_clock() -> float:
    # Looked up at each call, so freezegun's patch of time.time is seen.
    return time.time()


@dataclass(frozen=True, slots=True)
class ClientOptions:
    url: str
    default_credits: int
    cluster: bool
    clock: Clock
    socket_timeout_s: float

    @classmethod
    def build(
        cls,
        url: str | None,
        token: str | None,
        *,
        default_credits: int,
        cluster: bool,
        clock: Clock | None,
        socket_timeout_s: float,
    ) -> ClientOptions:
        if url is None:
            settings = CreditsSettings()
            url = settings.redis_url
            if token is None and settings.redis_token is not None:
                token = settings.redis_token.get_secret_value()
        if not url:
            raise InvalidInputError(
                "no Redis configured: pass url=, set CREDITS_REDIS_URL, "
                "or use Credits.embedded() for a local redis-server"
            )
        if (
            isinstance(default_credits, bool)
            or not isinstance(default_credits, int)
            or default_credits < 0
        ):
            raise InvalidInputError(f"default_credits must be an int >= 0, got {default_credits!r}")
        if clock is not None and not callable(clock):
            raise InvalidInputError("clock must be a zero-argument callable returning Unix seconds")
        if not isinstance(url, str) or not (token is None or isinstance(token, str)):
            raise InvalidInputError("url and token must be strings")
        if (
            isinstance(socket_timeout_s, bool)
            or not isinstance(socket_timeout_s, int | float)
            or not 0 < socket_timeout_s < math.inf
        ):
            raise InvalidInputError(
                f"socket_timeout must be a number of seconds > 0, got {socket_timeout_s!r}"
            )
        try:
            resolved = resolve_redis_url(url, token)
            urlsplit(resolved).port  # noqa: B018 -- parses the port, as redis-py will
        except InvalidInputError:
            raise
        except ValueError as exc:  # the message names the bad part, never the password
            raise InvalidInputError(f"malformed Redis URL: {exc}") from None
        return cls(
            url=resolved,
            default_credits=default_credits,
            cluster=bool(cluster),
            clock=clock or _system_clock,
            socket_timeout_s=socket_timeout_s,
        )

    def now_ms(self) -> int:
        now = self.clock()
        if (
            isinstance(now, bool)
            or not isinstance(now, int | float)
            or not 0 <= now * 1000 <= AMOUNT_MAX
        ):
            raise InvalidInputError(f"clock() must return Unix seconds >= 0, got {now!r}")
        return int(now * 1000)

    def describe(self) -> str:
        kind = "cluster" if self.cluster else "redis"
        return f"{kind} {redact_url(self.url)}"

    def _connection_kwargs(self) -> dict[str, Any]:
        return {
            "decode_responses": True,
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": self.socket_timeout_s,
        }

    def connect(self) -> redis.Redis | redis.cluster.RedisCluster:
        if self.cluster:
            # The blocking cluster client discovers the slots as it is built.
            try:
                return redis.cluster.RedisCluster.from_url(
                    self.url, retry=Retry(NoBackoff(), 0), **self._connection_kwargs()
                )
            except TRANSLATED as exc:
                raise translate(exc) from exc
        return redis.Redis.from_url(
            self.url, retry=Retry(NoBackoff(), 0), **self._connection_kwargs()
        )

    def connect_async(self) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
        retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
        if self.cluster:
            return redis.asyncio.cluster.RedisCluster.from_url(
                self.url, retry=retry, **self._connection_kwargs()
            )
        return redis.asyncio.Redis.from_url(self.url, retry=retry, **self._connection_kwargs())


def blocking_executor(client: redis.Redis | redis.cluster.RedisCluster) -> Callable[[Call], Any]:
    def execute(call: Call) -> Any:
        if isinstance(call, Command):
            if call.every_node and isinstance(client, redis.cluster.RedisCluster):
                nodes = client.get_nodes()  # type: ignore[no-untyped-call]
                return client.execute_command(*call.args, target_nodes=nodes)  # type: ignore[no-untyped-call]
            return client.execute_command(*call.args)  # type: ignore[no-untyped-call]
        return _run_batch(client, call)

    return execute


def _run_batch(client: redis.Redis | redis.cluster.RedisCluster, batch: Batch) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for command in batch.commands:
        pipe.execute_command(*command.args)
    return translate_replies(pipe.execute(raise_on_error=False))


def async_executor(
    client: redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster,
) -> Callable[[Call], Any]:
    async def execute(call: Call) -> Any:  # Batch: see _run_batch
        if isinstance(call, Command):
            if call.every_node and isinstance(client, redis.asyncio.cluster.RedisCluster):
                return await client.execute_command(*call.args, target_nodes=client.get_nodes())
            return await client.execute_command(*call.args)
        pipe = client.pipeline(transaction=False)
        for command in call.commands:
            pipe.execute_command(*command.args)
        return translate_replies(await pipe.execute(raise_on_error=False))

    return execute
