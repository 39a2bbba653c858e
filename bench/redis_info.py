"""Small typed readers of what Redis says about itself (INFO, SLOWLOG, streams).

redis-py types these replies loosely; the measures want plain ints and strs.
"""

from __future__ import annotations

from typing import cast

import redis


def used_memory(client: redis.Redis) -> int:
    """``used_memory`` in bytes, from INFO memory."""
    info = client.info("memory")
    return int(info["used_memory"])


def server_version(client: redis.Redis) -> str:
    info = client.info("server")
    return str(info["redis_version"])


def newest_entry(client: redis.Redis, stream: str) -> tuple[str, dict[str, str]]:
    """The last entry of a stream: (id, fields in their stored order)."""
    entries = cast(list[tuple[str, dict[str, str]]], client.xrevrange(stream, count=1))
    if not entries:
        raise LookupError(f"stream {stream!r} is empty")
    return entries[0]


def command_usec_per_call(client: redis.Redis, command: str) -> float | None:
    """Server-side microseconds per call of ``command`` since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats")
    entry = stats.get(f"cmdstat_{command.lower()}")
    return float(entry["usec_per_call"]) if entry else None
