"""Ledger-wide figures for metrics, read from Redis in bounded pipelines.

Why steps (:mod:`credits.protocol`) and not a client method: metrics are read
by the HTTP process (asyncio) and by tools (blocking) alike, and each figure
is a fixed walk of the :data:`~credits.limits.BUCKET_COUNT` bucket keys, sent
:data:`~credits.limits.METRICS_BUCKETS_PER_BATCH` per pipeline, whatever the
number of users or holds:

* :func:`open_holds`: ``ZCARD`` of every bucket's due-index (one member per open hold);
* :func:`sweep_lag_ms`: how long the oldest due hold has waited past its
  expiry, by the server's clock (0 when the sweep is keeping up);
* :func:`credit_sums`: the per-bucket stats hashes ``credits:{bN}:stats``,
  fields ``<tx type>:<category>:<action>`` → credits moved, summed over buckets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final, NamedTuple

from credits import limits
from credits.keys import PREFIX, bucket_tag, due_key
from credits.protocol import Batch, Command, Steps, batch_values

STATS_FIELD_PARTS: Final = 3


class SumKey(NamedTuple):
    """One stats field: the transaction type, the credits' category, the action."""

    type: str
    category: str
    action: str


def stats_key(bucket: int) -> str:
    return f"{PREFIX}:{bucket_tag(bucket)}:stats"


def _bucket_batches() -> Iterator[range]:
    step = limits.METRICS_BUCKETS_PER_BATCH
    for first in range(0, limits.BUCKET_COUNT, step):
        yield range(first, min(first + step, limits.BUCKET_COUNT))


def open_holds() -> Steps[int]:
    """Open holds of the whole ledger."""
    total = 0
    for buckets in _bucket_batches():
        replies = batch_values(
            (yield Batch(tuple(Command(("ZCARD", due_key(b))) for b in buckets)))
        )
        total += sum(int(reply) for reply in replies)
    return total


def _server_ms(reply: Any) -> int:
    if isinstance(reply, dict):  # a cluster's every-node reply: the latest clock
        return max(_server_ms(value) for value in reply.values())
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


def _first_score(reply: Any) -> float | None:
    """The score of ``ZRANGE key 0 0 WITHSCORES``, whatever shape redis-py gave it."""
    if not reply:
        return None
    first = reply[0]
    if isinstance(first, list | tuple):
        return float(first[1])
    return float(reply[1])


def sweep_lag_ms() -> Steps[int]:
    """Milliseconds the oldest expired-but-open hold has waited for the sweep (0 if none)."""
    now = _server_ms((yield Command(("TIME",), every_node=True)))
    oldest: float | None = None
    for buckets in _bucket_batches():
        replies = batch_values(
            (
                yield Batch(
                    tuple(Command(("ZRANGE", due_key(b), 0, 0, "WITHSCORES")) for b in buckets)
                )
            )
        )
        for reply in replies:
            score = _first_score(reply)
            if score is not None and (oldest is None or score < oldest):
                oldest = score
    return 0 if oldest is None else max(0, now - int(oldest))


def parse_field(field: str) -> SumKey | None:
    """``<type>:<category>:<action>`` (the action may contain ``:``); None if malformed."""
    parts = field.split(":", STATS_FIELD_PARTS - 1)
    if len(parts) != STATS_FIELD_PARTS or not parts[0]:
        return None
    return SumKey(*parts)


def _pairs(reply: Any) -> Iterator[tuple[str, str]]:
    if isinstance(reply, dict):
        yield from reply.items()
    else:
        yield from zip(reply[::2], reply[1::2], strict=True)


def credit_sums() -> Steps[dict[SumKey, int]]:
    """Credits moved per (type, category, action), summed over every bucket's stats hash."""
    sums: dict[SumKey, int] = {}
    for buckets in _bucket_batches():
        replies = batch_values(
            (yield Batch(tuple(Command(("HGETALL", stats_key(b))) for b in buckets)))
        )
        for reply in replies:
            for field, value in _pairs(reply):
                key = parse_field(str(field))
                if key is None:
                    continue
                try:
                    amount = int(float(value))
                except ValueError:
                    continue
                sums[key] = sums.get(key, 0) + amount
    return sums
