"""Parked deliveries: events an endpoint did not take within their retry window.

A parked delivery keeps a copy of the event (the outbox may trim it later),
with the attempts made and the last error, in the endpoint's
``credits:{wh:<id>}:failed`` hash, indexed by the time it was parked. Its
lane has moved on, so the endpoint's later events kept flowing; a parked
event retried later arrives out of order (the receiver dedupes on
``webhook-id`` and can order by ``created_at``).

``credits webhooks failed`` lists them; ``credits webhooks retry EVENT_ID``
POSTs one again at once, from wherever the command runs, with the same
checks and signature as the worker: delivered, it is struck off; failed
again, it stays with one more attempt counted. At most
:data:`~credits.limits.WEBHOOK_FAILED_PER_ENDPOINT_MAX` are kept per endpoint;
beyond, the oldest are dropped and counted (``failed_dropped``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from credits import limits
from credits.keys import EVENT_STATS_KEY, webhook_failed_index_key, webhook_failed_key
from credits.models import LedgerEvent
from credits.protocol import Batch, Command, Steps, batch_values

logger = logging.getLogger(__name__)


class FailedDelivery(BaseModel):
    """One parked delivery: which endpoint, which event, how it went."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    endpoint_id: str
    event: LedgerEvent
    attempts: int
    error: str
    parked_at: int  # Unix ms (the server's clock)


def park_commands(failed: FailedDelivery) -> list[Command]:
    """Keep ``failed`` (a second parking of the same event replaces the first)."""
    endpoint_id, event_id = failed.endpoint_id, failed.event.id
    return [
        Command(("HSET", webhook_failed_key(endpoint_id), event_id, failed.model_dump_json())),
        Command(("ZADD", webhook_failed_index_key(endpoint_id), failed.parked_at, event_id)),
    ]


def enforce_bound(endpoint_id: str) -> Steps[int]:
    """Drop the oldest parked deliveries beyond the bound; how many were dropped."""
    index = webhook_failed_index_key(endpoint_id)
    count = int((yield Command(("ZCARD", index))))
    excess = count - limits.WEBHOOK_FAILED_PER_ENDPOINT_MAX
    if excess <= 0:
        return 0
    oldest = yield Command(("ZRANGE", index, 0, excess - 1))
    if oldest:
        batch_values(
            (
                yield Batch(
                    (
                        Command(("HDEL", webhook_failed_key(endpoint_id), *oldest)),
                        Command(("ZREM", index, *oldest)),
                        Command(("HINCRBY", EVENT_STATS_KEY, "failed_dropped", len(oldest))),
                    )
                )
            )
        )
    return len(oldest)


def _scored(reply: list[Any]) -> list[tuple[str, float]]:
    """A ZRANGE ... WITHSCORES reply as (member, score): flat (RESP2) or pairs (RESP3)."""
    if reply and isinstance(reply[0], list | tuple):
        return [(str(member), float(score)) for member, score in reply]
    pairs = zip(reply[::2], reply[1::2], strict=True)
    return [(str(member), float(score)) for member, score in pairs]


def _parse(raw: str | None) -> FailedDelivery | None:
    if raw is None:
        return None
    try:
        return FailedDelivery.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        logger.error("a parked webhook delivery has a damaged record; ignored")
        return None


def list_failed(endpoint_ids: list[str], limit: int) -> Steps[list[FailedDelivery]]:
    """The most recently parked deliveries of these endpoints, newest first, at most ``limit``."""
    if not endpoint_ids:
        return []
    newest = batch_values(
        (
            yield Batch(
                tuple(
                    Command(("ZREVRANGE", webhook_failed_index_key(e), 0, limit - 1, "WITHSCORES"))
                    for e in endpoint_ids
                )
            )
        )
    )
    picked: list[tuple[float, str, str]] = []
    for endpoint_id, entries in zip(endpoint_ids, newest, strict=True):
        picked += [(score, endpoint_id, event_id) for event_id, score in _scored(entries)]
    picked = sorted(picked, reverse=True)[:limit]
    if not picked:
        return []
    reads = tuple(Command(("HGET", webhook_failed_key(e), event_id)) for _, e, event_id in picked)
    records = batch_values((yield Batch(reads)))
    return [found for found in map(_parse, records) if found is not None]


def find_failed(endpoint_ids: list[str], event_id: str) -> Steps[list[FailedDelivery]]:
    """The parked deliveries of ``event_id`` among these endpoints."""
    if not endpoint_ids:
        return []
    reads = tuple(Command(("HGET", webhook_failed_key(e), event_id)) for e in endpoint_ids)
    records = batch_values((yield Batch(reads)))
    return [found for found in map(_parse, records) if found is not None]


def forget_commands(failed: FailedDelivery) -> list[Command]:
    endpoint_id, event_id = failed.endpoint_id, failed.event.id
    return [
        Command(("HDEL", webhook_failed_key(endpoint_id), event_id)),
        Command(("ZREM", webhook_failed_index_key(endpoint_id), event_id)),
    ]


def again(failed: FailedDelivery, error: str, now_ms: int) -> FailedDelivery:
    """``failed`` after one more failed attempt."""
    changes: dict[str, Any] = {"attempts": failed.attempts + 1, "error": error, "parked_at": now_ms}
    return failed.model_copy(update=changes)
