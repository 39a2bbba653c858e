"""Can this Redis hold money? Checks a ledger needs that Redis does not enforce.

redbeat's ``checks.py`` logs an error when ``maxmemory-policy`` allows
eviction; for a ledger eviction silently loses balances and log events, so
the same check lives here, with the persistence settings next to it. Managed
services (Upstash, ElastiCache) often refuse ``CONFIG GET``: then the checks
say they could not look, rather than guess.
"""

from __future__ import annotations

import logging
from typing import Any

from credits.errors import StoreRefusedError
from credits.protocol import Command, Steps

logger = logging.getLogger(__name__)

SAFE_EVICTION_POLICIES = (
    "noeviction",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)


def store_warnings() -> Steps[list[str]]:
    """Warnings about the server's configuration, empty when it is fit for a ledger.

    ``volatile-*`` policies evict only keys with a TTL; the ledger's only such
    keys are idempotency claims, whose eviction could let a retry apply twice,
    so those policies are reported too, less loudly.
    """
    try:
        policies = _per_node(
            (yield Command(("CONFIG", "GET", "maxmemory-policy"), every_node=True))
        )
        persistence = _per_node((yield Command(("CONFIG", "GET", "appendonly"), every_node=True)))
    except StoreRefusedError as refused:
        # The store answered but would not show its configuration.
        return [f"could not read the server configuration ({refused}); check eviction by hand"]
    warnings: list[str] = []
    for node, config in sorted(policies.items()):
        where = f"{node}: " if node else ""
        eviction = config.get("maxmemory-policy", "unknown")
        if eviction not in SAFE_EVICTION_POLICIES:
            warnings.append(
                f"{where}maxmemory-policy is {eviction!r}: Redis may evict balances and log "
                "events; set it to 'noeviction'"
            )
        elif eviction != "noeviction":
            warnings.append(
                f"{where}maxmemory-policy is {eviction!r}: idempotency claims (keys with a TTL) "
                "may be evicted early and let a retry apply twice; prefer 'noeviction'"
            )
    for node, config in sorted(persistence.items()):
        where = f"{node}: " if node else ""
        if config.get("appendonly") != "yes":
            warnings.append(
                f"{where}appendonly is off: a restart loses every write since the last snapshot"
            )
    for warning in warnings:
        logger.warning("credits store check: %s", warning)
    return warnings


def _per_node(reply: Any) -> dict[str, dict[str, str]]:
    """CONFIG GET's reply by node name ("" for a single server)."""
    if isinstance(reply, dict) and reply and all(isinstance(v, dict) for v in reply.values()):
        return {str(node): _as_dict(config) for node, config in reply.items()}
    return {"": _as_dict(reply)}


def _as_dict(reply: Any) -> dict[str, str]:
    """CONFIG GET's reply: redis-py makes it a dict; a raw reply is a flat list."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    pairs = list(reply)
    return {str(pairs[i]): str(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)}
