"""The Redis the benchmarks run on: one started here, or ``CREDITS_BENCH_REDIS_URL``.

A server started here is ours: it is flushed between measures so each starts
from the same memory and key space, and it runs without persistence (``--save
"" --appendonly no``) so disk speed does not enter the ratios. A server given by
URL may hold other data, so it is never flushed: every key the run writes
carries the run's tag and is deleted by SCAN at the end. The shared Redis on
loopback port 6379 of the development machines is refused outright.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import redis

from credits.keys import due_key, users_key
from credits.limits import BUCKET_COUNT
from credits.waiting import wait_until

ENV_URL = "CREDITS_BENCH_REDIS_URL"
REFUSED_PORT = 6379
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
DATABASES_USED = 2  # the sweep compares two key spaces side by side: db n and n + 1
SCAN_COUNT = 1000
FLUSH_TIMEOUT_S = 300.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where the run writes; ``owned`` means this process started the server."""

    url: str
    owned: bool
    tag: str  # in every user id and baseline key this run writes

    def db_url(self, offset: int) -> str:
        """The same server, database ``n + offset`` (the sweep's second key space)."""
        parts = urlsplit(self.url)
        db = int(parts.path.strip("/") or 0) + offset
        return urlunsplit(parts._replace(path=f"/{db}"))

    def client(self, offset: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.db_url(offset), decode_responses=True)

    def reset(self) -> None:
        """Empty what the run wrote: FLUSHALL on our server, tagged keys on another."""
        if self.owned:
            with contextlib.closing(self.client()) as client:
                # ASYNC: a row's millions of keys are freed in the background; a blocking
                # FLUSHALL of them outlasts the client's socket timeout
                client.flushall(asynchronous=True)
                # ...and waited for, so the next row's memory and timings start clean
                wait_until(
                    lambda: int(client.info("memory").get("lazyfree_pending_objects", 0)) == 0,
                    timeout_s=FLUSH_TIMEOUT_S,
                    what="the flushed keys to be freed",
                )
            return
        for offset in range(DATABASES_USED):
            with contextlib.closing(self.client(offset)) as client:
                _delete_tagged(client, self.tag)


def _delete_tagged(client: redis.Redis, tag: str) -> None:
    doomed = list(client.scan_iter(match=f"*{tag}*", count=SCAN_COUNT))
    for start in range(0, len(doomed), SCAN_COUNT):
        client.unlink(*doomed[start : start + SCAN_COUNT])
    for bucket in range(BUCKET_COUNT):
        due = [m for m, _ in client.zscan_iter(due_key(bucket), match=f"{tag}*")]
        if due:
            client.zrem(due_key(bucket), *due)
        users = list(client.sscan_iter(users_key(bucket), match=f"{tag}*"))
        if users:
            client.srem(users_key(bucket), *users)


def _refuse_shared(url: str) -> None:
    parts = urlsplit(url)
    if (parts.hostname or "") in LOOPBACK_HOSTS and (parts.port or REFUSED_PORT) == REFUSED_PORT:
        raise SystemExit(
            f"refusing {ENV_URL}={url}: loopback port {REFUSED_PORT} is the machine's shared "
            "Redis; unset it (the harness starts its own) or point it at a server of yours"
        )


@contextlib.contextmanager
def redis_target() -> Iterator[RedisTarget]:
    """Yield the run's Redis; a server started here is stopped on exit."""
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    url = os.environ.get(ENV_URL)
    if url:
        _refuse_shared(url)
        target = RedisTarget(url=url, owned=False, tag=tag)
        try:
            yield target
        finally:
            target.reset()
        return
    from credits.redis_server import RedisServer

    with (
        tempfile.TemporaryDirectory(prefix="credits-bench-") as directory,
        RedisServer(directory, persistent=False) as server,
    ):
        logger.info("started redis-server pid %d at %s", server.pid, server.url)
        yield RedisTarget(url=server.url, owned=True, tag=tag)
