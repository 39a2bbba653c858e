"""The dispatcher tick (beat, every ``CREDITS_WEBHOOK_INTERVAL_S``): work, trimming, counters.

One tick, under its own lease so two beats never tick at once:

1. reads the last entry id and the length of every bucket's outbox (one
   pipeline of 2 x 1,024 O(1) reads) and every endpoint's lanes and pause;
2. queues one delivery run (``deliver_events(endpoint_id=...)``) for each
   endpoint that has an event after one of its lanes that may be tried now and
   is not paused, unless one is already queued (a marker that the run clears
   when it starts): a backlog of runs never builds up behind a slow worker;
3. trims a slice of the buckets (all of them every 1,024 / 256 = 4 ticks): an
   entry goes when it is older than the retention (``CREDITS_EVENT_RETENTION_S``,
   7 days by default, for pollers of ``read_events``) **and** every endpoint's
   lane in its bucket is past it (delivered or parked). ``XTRIM MINID ~ ...
   LIMIT`` removes whole stream nodes below that id, a bounded number per call;
4. sets the ``written`` counter (see :mod:`~credits.webhooks.stats`).

So the outbox holds about the retention's worth of events under steady
traffic, and an endpoint that falls behind holds back trimming only of the
buckets it has not delivered, only until its events are delivered or parked
(at most the retry window, about a day, after they were written).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from credits import limits
from credits.events import StreamId, format_stream_id, parse_stream_id
from credits.keys import (
    EVENT_STATS_KEY,
    WEBHOOK_DISPATCH_LOCK_KEY,
    WEBHOOK_TRIM_TICK_KEY,
    outbox_key,
    webhook_lanes_key,
    webhook_pause_key,
    webhook_queued_key,
)
from credits.models import WebhookEndpoint
from credits.protocol import Batch, Command, Steps, batch_values
from credits.transport import drive
from credits.webhooks import locks, stats
from credits.webhooks.delivery import Clock, Execute, server_clock
from credits.webhooks.lanes import Lane, Pause, decode_lanes
from credits.webhooks.registry import list_webhooks

Enqueue = Callable[[str], None]
"""Queue a delivery run of the endpoint with this id."""

TICK_LOCK_TTL_MS = 30_000


@dataclass
class TickReport:
    """What one tick did (the task's return value)."""

    endpoints: int = 0
    queued: list[str] = field(default_factory=list)
    trimmed: int = 0
    outcome: str = "done"  # done | locked

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class _Outboxes:
    tails: list[StreamId | None]
    lengths: list[int]


def _outboxes(with_tails: bool) -> Steps[_Outboxes]:
    """Every bucket's length, and (when endpoints exist) its last id: 2 x 1,024 O(1) reads."""
    buckets = range(limits.BUCKET_COUNT)
    lengths = [Command(("XLEN", outbox_key(b))) for b in buckets]
    tails = [Command(("XREVRANGE", outbox_key(b), "+", "-", "COUNT", 1)) for b in buckets]
    replies = batch_values((yield Batch(tuple(lengths + (tails if with_tails else [])))))
    last = replies[limits.BUCKET_COUNT :] if with_tails else [[]] * limits.BUCKET_COUNT
    return _Outboxes(
        tails=[parse_stream_id(r[0][0]) if r else None for r in last],
        lengths=[int(n) for n in replies[: limits.BUCKET_COUNT]],
    )


def _lanes_and_pauses(
    endpoints: list[WebhookEndpoint],
) -> Steps[list[tuple[dict[int, Lane], Pause]]]:
    if not endpoints:
        return []
    replies = batch_values(
        (
            yield Batch(
                tuple(
                    command
                    for e in endpoints
                    for command in (
                        Command(("HGETALL", webhook_lanes_key(e.id))),
                        Command(("GET", webhook_pause_key(e.id))),
                    )
                )
            )
        )
    )
    return [
        (decode_lanes(replies[2 * i]), Pause.decode(replies[2 * i + 1]))
        for i in range(len(endpoints))
    ]


def has_work(
    endpoint: WebhookEndpoint, lanes: dict[int, Lane], tails: list[StreamId | None], now_ms: int
) -> bool:
    """An event after a lane of the endpoint that may be tried now."""
    for bucket, tail in enumerate(tails):
        if tail is None:
            continue
        lane = lanes.get(bucket, Lane())
        if tail > lane.start(endpoint.created_at) and lane.not_before_ms <= now_ms:
            return True
    return False


def trim_floor(
    bucket: int,
    endpoints: list[WebhookEndpoint],
    lanes: list[dict[int, Lane]],
    cutoff: StreamId,
) -> StreamId:
    """The smallest id of ``bucket`` still needed: by the retention, or by an endpoint's lane."""
    floor = cutoff
    for endpoint, its_lanes in zip(endpoints, lanes, strict=True):
        floor = min(floor, its_lanes.get(bucket, Lane()).trim_floor(endpoint.created_at))
    return floor


def _trim(
    buckets: list[int],
    outboxes: _Outboxes,
    endpoints: list[WebhookEndpoint],
    lanes: list[dict[int, Lane]],
    cutoff: StreamId,
) -> Steps[int]:
    trims = [
        Command(("XTRIM", outbox_key(b), "MINID", "~",
                 format_stream_id(trim_floor(b, endpoints, lanes, cutoff)),
                 "LIMIT", limits.OUTBOX_TRIM_ENTRIES_PER_CALL_MAX))
        for b in buckets
        if outboxes.lengths[b]
    ]  # fmt: skip
    if not trims:
        return 0
    return sum(int(n) for n in batch_values((yield Batch(tuple(trims)))))


def _count_written(outboxes: _Outboxes) -> Steps[None]:
    """``written`` = trimmed so far + entries still in the outboxes, never lower than before."""
    written, trimmed = yield Command(("HMGET", EVENT_STATS_KEY, "written", "trimmed"))
    counted = int(trimmed or 0) + sum(outboxes.lengths)
    if counted > int(written or 0):
        yield Command(("HSET", EVENT_STATS_KEY, "written", counted))


def _queue_runs(
    endpoints: list[WebhookEndpoint],
    states: list[tuple[dict[int, Lane], Pause]],
    outboxes: _Outboxes,
    now_ms: int,
    queued_ttl_ms: int,
    enqueue: Enqueue,
) -> Steps[list[str]]:
    due = [
        e.id
        for e, (lanes, pause) in zip(endpoints, states, strict=True)
        if pause.until_ms <= now_ms and has_work(e, lanes, outboxes.tails, now_ms)
    ]
    queued: list[str] = []
    for endpoint_id in due:
        marker = webhook_queued_key(endpoint_id)
        if (yield Command(("SET", marker, "1", "NX", "PX", queued_ttl_ms))):
            try:
                enqueue(endpoint_id)
            except Exception:
                yield Command(("DEL", marker))  # the next tick tries again
                raise
            queued.append(endpoint_id)
    return queued


def tick_steps(
    now_ms: int,
    retention_ms: int,
    queued_ttl_ms: int,
    enqueue: Enqueue,
    trim_buckets: int = limits.OUTBOX_TRIM_BUCKETS_PER_TICK,
) -> Steps[TickReport]:
    report = TickReport()
    token = yield from locks.acquire(WEBHOOK_DISPATCH_LOCK_KEY, TICK_LOCK_TTL_MS)
    if token is None:
        report.outcome = "locked"
        return report
    try:
        endpoints = yield from list_webhooks()
        report.endpoints = len(endpoints)
        outboxes = yield from _outboxes(with_tails=bool(endpoints))
        states = yield from _lanes_and_pauses(endpoints)
        report.queued = yield from _queue_runs(
            endpoints, states, outboxes, now_ms, queued_ttl_ms, enqueue
        )
        yield from _count_written(outboxes)
        tick_number = int((yield Command(("INCR", WEBHOOK_TRIM_TICK_KEY))))
        first = (tick_number * trim_buckets) % limits.BUCKET_COUNT
        buckets = [(first + i) % limits.BUCKET_COUNT for i in range(trim_buckets)]
        cutoff = (max(now_ms - retention_ms, 0), 0)
        lanes = [its_lanes for its_lanes, _ in states]
        report.trimmed = yield from _trim(buckets, outboxes, endpoints, lanes, cutoff)
        if report.trimmed:
            batch_values((yield Batch(tuple(stats.increments(trimmed=report.trimmed)))))
    finally:
        yield from locks.release(WEBHOOK_DISPATCH_LOCK_KEY, token)
    return report


def tick(
    execute: Execute,
    *,
    retention_ms: int,
    queued_ttl_ms: int,
    enqueue: Enqueue,
    clock: Clock | None = None,
    trim_buckets: int = limits.OUTBOX_TRIM_BUCKETS_PER_TICK,
) -> TickReport:
    """One dispatcher tick over ``execute`` (see the module docstring)."""
    now_ms = (clock or server_clock(execute))()
    return drive(tick_steps(now_ms, retention_ms, queued_ttl_ms, enqueue, trim_buckets), execute)
