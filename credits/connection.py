"""A client's options, from settings and arguments by one path, and its connections.

``Credits(...)``, ``AsyncCredits(...)`` and ``Credits.from_env()`` all come
through :meth:`ClientOptions.resolve`: each option is the argument when one is
given, else its ``CREDITS_*`` setting, else the setting's default. The one
exception is the token: a token read from the environment belongs to the URL
read from the environment, and is never sent to a URL passed in code.

redis-py retries a command after a connection error by default. For a ledger
that is unsafe: a script that ran but whose reply was lost would run twice.
So the connections here never retry on their own; the caller (or a Celery
task) retries with the same idempotency key or reservation id, which the
scripts apply once.

A ``redis+sentinel://`` URL (:mod:`credits.sentinel`) connects through
redis-py's Sentinel client: each new connection asks the sentinels where the
primary is, so after a failover the next call reaches the promoted replica
(the calls in between fail with :class:`StoreUnavailableError`, as any outage).
``wait_replicas`` (:mod:`credits.replication`) makes every write wait for that
many replicas before it is acknowledged.
"""

from __future__ import annotations

import math
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

from credits import limits, sentinel
from credits.archive.base import Archive, open_archive
from credits.errors import InvalidInputError
from credits.keys import config_arg
from credits.limits import AMOUNT_MAX
from credits.pricing import PricingEngine, load_pricing
from credits.protocol import Now
from credits.replication import Replication, WaitPolicy
from credits.settings import CreditsSettings, redact_url, resolve_redis_url
from credits.transport import TRANSLATED, AsyncRedis, BlockingRedis, translate

NO_WAIT = WaitPolicy(replicas=0, timeout_ms=limits.WAIT_TIMEOUT_MS_DEFAULT)

Clock = Callable[[], float]
"""An explicit clock: returns Unix seconds. Without one, the Redis server's clock decides."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Everything a client is configured with, checked once."""

    url: str
    default_credits: int
    cluster: bool
    clock: Clock | None
    socket_timeout_s: float
    pricing: PricingEngine
    script_config: str  # what every script gets as ARGV[2] (credits.keys.config_arg)
    wait: WaitPolicy = NO_WAIT
    archive_url: str | None = None  # the archive tier (credits.archive); None: none
    hot_days: int = limits.HOT_DAYS_DEFAULT

    @classmethod
    def resolve(
        cls,
        url: str | None = None,
        token: str | None = None,
        *,
        default_credits: int | None = None,
        cluster: bool | None = None,
        clock: Clock | None = None,
        socket_timeout: float | None = None,
        pricing: PricingEngine | None = None,
        wait_replicas: int | None = None,
        wait_timeout_ms: int | None = None,
        archive_url: str | None = None,
        settings: CreditsSettings | None = None,
    ) -> ClientOptions:
        """The options: each argument given, else its setting (``settings`` or the environment)."""
        settings = settings if settings is not None else CreditsSettings()
        if url is None:
            url = settings.redis_url
            token = token if token is not None else settings.token()
        if not url:
            raise InvalidInputError(
                "no Redis configured: pass url=, set CREDITS_REDIS_URL, "
                "or use Credits.embedded() for a local redis-server"
            )
        if not isinstance(url, str) or not (token is None or isinstance(token, str)):
            raise InvalidInputError("url and token must be strings")
        grant = settings.default_credits if default_credits is None else default_credits
        if isinstance(grant, bool) or not isinstance(grant, int) or not 0 <= grant <= AMOUNT_MAX:
            raise InvalidInputError(
                f"default_credits must be an int in [0, {AMOUNT_MAX}], got {grant!r}"
            )
        if clock is not None and not callable(clock):
            raise InvalidInputError("clock must be a zero-argument callable returning Unix seconds")
        timeout = settings.socket_timeout_s if socket_timeout is None else socket_timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout < math.inf
        ):
            raise InvalidInputError(
                f"socket_timeout must be a number of seconds > 0, got {timeout!r}"
            )
        if pricing is not None and not isinstance(pricing, PricingEngine):
            raise InvalidInputError(
                f"pricing must be a PricingEngine, got {type(pricing).__name__}"
            )
        try:
            resolved = resolve_redis_url(url, token)
            if not sentinel.is_sentinel_url(resolved):
                urlsplit(resolved).port  # noqa: B018 -- parses the port, as redis-py will
        except InvalidInputError:
            raise
        except ValueError as exc:  # the message names the bad part, never the password
            raise InvalidInputError(f"malformed Redis URL: {exc}") from None
        archive = settings.archive_url if archive_url is None else archive_url
        if archive is not None and (not isinstance(archive, str) or not archive):
            raise InvalidInputError("archive_url must be a postgresql:// or sqlite:/// URL")
        on_cluster = settings.redis_cluster if cluster is None else bool(cluster)
        if on_cluster and sentinel.is_sentinel_url(resolved):
            raise InvalidInputError(
                "a Redis Cluster fails over by itself: use a redis:// URL of one of its nodes, "
                "not redis+sentinel://, with cluster=True"
            )
        return cls(
            url=resolved,
            default_credits=grant,
            cluster=on_cluster,
            clock=clock,
            socket_timeout_s=float(timeout),
            pricing=pricing if pricing is not None else load_pricing(settings.pricing),
            script_config=config_arg(
                lot_expiring_notice_ms=settings.lot_expiring_notice_s * 1000,
                default_alert_below=settings.default_alert_below,
            ),
            wait=_wait_policy(
                settings.wait_replicas if wait_replicas is None else wait_replicas,
                settings.wait_timeout_ms if wait_timeout_ms is None else wait_timeout_ms,
                float(timeout),
            ),
            archive_url=archive or None,
            hot_days=settings.hot_days,
        )

    def now(self) -> Now:
        """What an operation's scripts are told: the time (None: the server's clock) and setup.

        An explicit clock is for tests and imports: with it, this client's calls
        use its time instead of the server's ``TIME``. Read once per operation.
        """
        if self.clock is None:
            return Now(None, self.script_config)
        now = self.clock()
        if (
            isinstance(now, bool)
            or not isinstance(now, int | float)
            or not 0 <= now * 1000 <= AMOUNT_MAX
        ):
            raise InvalidInputError(f"clock() must return Unix seconds >= 0, got {now!r}")
        return Now(int(now * 1000), self.script_config)

    def describe(self) -> str:
        kind = "cluster" if self.cluster else "redis"
        waits = f", wait_replicas={self.wait.replicas}" if self.wait.replicas else ""
        return f"{kind} {redact_url(self.url)}{waits}"

    def open_archive(self) -> Archive | None:
        """This client's archive (not connected until first used), or None."""
        return open_archive(self.archive_url) if self.archive_url else None

    def replication(self) -> Replication | None:
        """A new client's own waiting for replicas (it learns its server's verb), or None."""
        return Replication(self.wait) if self.wait.replicas else None

    def _connection_kwargs(self) -> dict[str, Any]:
        return {
            "decode_responses": True,
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": self.socket_timeout_s,
        }

    def connect(self) -> BlockingRedis:
        if sentinel.is_sentinel_url(self.url):
            return sentinel.blocking_primary(
                self.url, self.socket_timeout_s, retry=Retry(NoBackoff(), 0), decode_responses=True
            )
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

    def connect_async(self) -> AsyncRedis:
        retry = redis.asyncio.retry.Retry(NoBackoff(), 0)
        if sentinel.is_sentinel_url(self.url):
            return sentinel.async_primary(
                self.url, self.socket_timeout_s, retry=retry, decode_responses=True
            )
        if self.cluster:
            return redis.asyncio.cluster.RedisCluster.from_url(
                self.url, retry=retry, **self._connection_kwargs()
            )
        return redis.asyncio.Redis.from_url(self.url, retry=retry, **self._connection_kwargs())


def _wait_policy(replicas: object, timeout_ms: object, socket_timeout_s: float) -> WaitPolicy:
    """``wait_replicas`` and its timeout, checked: a WAIT must end before the socket gives up."""
    if (
        isinstance(replicas, bool)
        or not isinstance(replicas, int)
        or not 0 <= replicas <= limits.WAIT_REPLICAS_MAX
    ):
        raise InvalidInputError(
            f"wait_replicas must be an int in [0, {limits.WAIT_REPLICAS_MAX}], got {replicas!r}"
        )
    if (
        isinstance(timeout_ms, bool)
        or not isinstance(timeout_ms, int)
        or not limits.WAIT_TIMEOUT_MS_MIN <= timeout_ms <= limits.WAIT_TIMEOUT_MS_MAX
    ):
        raise InvalidInputError(
            f"wait_timeout_ms must be an int in [{limits.WAIT_TIMEOUT_MS_MIN}, "
            f"{limits.WAIT_TIMEOUT_MS_MAX}], got {timeout_ms!r}"
        )
    if replicas and timeout_ms >= socket_timeout_s * 1000:
        raise InvalidInputError(
            f"wait_timeout_ms ({timeout_ms}) must be shorter than the socket timeout "
            f"({socket_timeout_s:g} s), or every slow WAIT would look like a lost connection"
        )
    return WaitPolicy(replicas=replicas, timeout_ms=timeout_ms)
