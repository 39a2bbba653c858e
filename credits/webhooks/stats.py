"""Counters of events out, kept in Redis so any process's ``/metrics`` can read them.

One hash, ``credits:events:stats``, incremented by whoever does the work
(delivery runs, the dispatcher, ``credits webhooks retry``), so the numbers
are the ledger's, not one process's:

==================  ==========================================================
``written``         events written to the outbox (see below)
``delivered``       deliveries an endpoint answered with 2xx
``retried``         failed attempts that will be tried again
``failed``          deliveries parked after their retry window
``failed_dropped``  parked deliveries dropped past the per-endpoint bound
``trimmed``         outbox entries removed by the retention
==================  ==========================================================

``written`` is counted without touching the scripts: the dispatcher sets it
to the entries it has trimmed plus the entries still in the outboxes, never
lower than before. It misses only entries the scripts' own cap drops (about
10,000 per bucket, reached only when nothing trims for a long time). Every
value only grows, so each is a Prometheus counter
(``credits_events_<name>_total``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from credits.keys import EVENT_STATS_KEY
from credits.protocol import Command, Steps


@dataclass(frozen=True, slots=True)
class EventStats:
    written: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    failed_dropped: int = 0
    trimmed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {field.name: getattr(self, field.name) for field in fields(self)}


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def parse_stats(stored: dict[Any, Any] | None) -> EventStats:
    """An HGETALL of the counters (str or bytes keys) as :class:`EventStats`."""
    named = {
        (key.decode() if isinstance(key, bytes) else str(key)): value
        for key, value in (stored or {}).items()
    }
    return EventStats(**{field.name: _int(named.get(field.name)) for field in fields(EventStats)})


def read_stats() -> Steps[EventStats]:
    """The counters (one HGETALL)."""
    return parse_stats((yield Command(("HGETALL", EVENT_STATS_KEY))))


def event_stats(client: Any) -> EventStats:
    """The counters through any redis-py client (``Credits(...).redis`` will do), for /metrics."""
    return parse_stats(client.hgetall(EVENT_STATS_KEY))


def increments(**amounts: int) -> list[Command]:
    """HINCRBY commands for the non-zero ``amounts``."""
    return [
        Command(("HINCRBY", EVENT_STATS_KEY, name, amount))
        for name, amount in amounts.items()
        if amount
    ]
