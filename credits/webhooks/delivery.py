"""One endpoint's delivery run: its due lanes, in rounds, within a time budget.

What the Celery task ``deliver_events(endpoint_id=...)`` does, under the
endpoint's lease (:mod:`~credits.webhooks.locks`), so one run per endpoint at
a time and its lanes stay in order:

1. The endpoint's URL is resolved and checked again (DNS rebinding; see
   :mod:`~credits.webhooks.ssrf`); requests go to that checked address.
2. A round reads every lane that may be tried now: one probe for each lane's
   next event, then more for the lanes that have some, at most
   :data:`~credits.limits.WEBHOOK_EVENTS_PER_ROUND_MAX` in all.
3. The lanes are delivered concurrently (at most ``CREDITS_WEBHOOK_CONCURRENCY``
   requests in flight), each lane in order, stopping at its first failure.
   Events the endpoint's filter does not want are passed over.
4. The round's outcome is written: new positions, the failed events' next
   attempt or their parking (:mod:`~credits.webhooks.schedule`), the counters.
   A worker that dies before this delivers the round again: at least once.
5. Rounds go on until nothing is due or the budget
   (:data:`~credits.limits.WEBHOOK_RUN_BUDGET_S`) is spent; the next tick
   starts another run.

Down: when :data:`~credits.limits.WEBHOOK_DOWN_AFTER_FAILURES` attempts in a
row get no HTTP answer (refused, timeout, a failed lookup), the endpoint is
down. The run stops sending, parks what is past its window without sending
(so a dead endpoint's backlog drains), and pauses the endpoint by the
schedule; the next run after the pause tries again. So a dead or slow endpoint
costs one worker process at most a few timeouts per pause, and never holds
another endpoint's lanes, which are other runs.

Time: ``clock`` gives the ms the schedule counts in; the task passes the
Redis server's ``TIME``, tests pass their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from credits import limits
from credits.event_cursor import Entry, entries_after, first_entries
from credits.events import StreamId, matches, parse_entries, parse_stream_id
from credits.keys import (
    WEBHOOK_ENDPOINTS_KEY,
    webhook_lanes_key,
    webhook_lock_key,
    webhook_pause_key,
    webhook_queued_key,
)
from credits.models import LedgerEvent, WebhookEndpoint
from credits.protocol import Batch, Call, Command, Steps, batch_values
from credits.transport import drive
from credits.webhooks import failed, locks, stats
from credits.webhooks.failed import FailedDelivery
from credits.webhooks.lanes import Lane, Pause, decode_lanes
from credits.webhooks.registry import get_webhook
from credits.webhooks.schedule import Schedule, after_failure, past_window
from credits.webhooks.sender import Attempt, Sender, Target
from credits.webhooks.settings import WebhookSettings
from credits.webhooks.ssrf import allowed_addresses, check_url

Execute = Callable[[Call], Any]
Clock = Callable[[], int]
"""Unix ms: the schedule's time."""


def server_time() -> Steps[int]:
    """The Redis server's clock in ms (TIME)."""
    seconds, micros = yield Command(("TIME",))
    return int(seconds) * 1000 + int(micros) // 1000


def server_clock(execute: Execute) -> Clock:
    return lambda: drive(server_time(), execute)


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """What a run needs to know; from :class:`WebhookSettings` in the worker."""

    schedule: Schedule
    timeout_s: float
    concurrency: int
    allow_private: bool
    cluster: bool = False
    budget_s: float = limits.WEBHOOK_RUN_BUDGET_S
    lock_ttl_ms: int = 60_000

    @classmethod
    def from_settings(cls, settings: WebhookSettings) -> DeliveryConfig:
        return cls(
            schedule=settings.schedule(),
            timeout_s=settings.webhook_timeout_s,
            concurrency=settings.webhook_concurrency,
            allow_private=settings.webhook_allow_private,
            cluster=settings.redis_cluster,
            lock_ttl_ms=settings.lock_ttl_ms,
        )


@dataclass
class RunReport:
    """What one run did (the task's return value, shown in Flower)."""

    endpoint_id: str
    outcome: str = "done"  # done | budget | paused | down | gone | locked
    delivered: int = 0
    retried: int = 0
    parked: int = 0
    skipped: int = 0
    rounds: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class _Health:
    """Attempts of this run so far: down after enough transport failures in a row."""

    in_a_row: int = 0
    successes: int = 0
    down: bool = False

    def record(self, attempt: Attempt) -> None:
        if attempt.ok:
            self.successes += 1
            self.in_a_row = 0
        elif attempt.transport:
            self.in_a_row += 1
            if self.in_a_row >= limits.WEBHOOK_DOWN_AFTER_FAILURES:
                self.down = True


@dataclass
class _LaneResult:
    """How far a lane got in a round, and the event that stopped it, if one failed."""

    handled: str | None = None  # last entry id delivered, passed over, or parked
    delivered: int = 0
    skipped: int = 0
    failure: tuple[str, LedgerEvent, Attempt] | None = None
    parked: list[tuple[str, LedgerEvent]] = field(default_factory=list)


Work = dict[int, list[tuple[str, LedgerEvent | None]]]


def _round_reads(lanes: dict[int, Lane], endpoint: WebhookEndpoint, now_ms: int, cluster: bool,
                 *, every_lane: bool) -> Steps[Work]:  # fmt: skip
    """The next events of every lane that may be tried now (all lanes when ``every_lane``)."""
    positions: dict[int, StreamId | None] = {}
    for bucket in range(limits.BUCKET_COUNT):
        lane = lanes.get(bucket, Lane())
        if every_lane or lane.not_before_ms <= now_ms:
            positions[bucket] = lane.start(endpoint.created_at)
    firsts = yield from first_entries(positions, cluster)
    if not firsts:
        return {}
    share = min(
        limits.WEBHOOK_EVENTS_PER_LANE_MAX,
        max(1, limits.WEBHOOK_EVENTS_PER_ROUND_MAX // len(firsts)),
    )
    more = yield from entries_after(firsts, share - 1)
    work: Work = {}
    for bucket, first in firsts.items():
        entries: list[Entry] = [first, *more.get(bucket, [])]
        work[bucket] = parse_entries(bucket, entries)
    return work


def _after_handled(
    items: list[tuple[str, LedgerEvent | None]], handled: str | None
) -> list[tuple[str, LedgerEvent | None]]:
    """The items of a lane after the last one it handled this round."""
    if handled is None:
        return items
    ids = [entry_id for entry_id, _ in items]
    return items[ids.index(handled) + 1 :]


def _park_past_window(
    items: list[tuple[str, LedgerEvent | None]],
    endpoint: WebhookEndpoint,
    schedule: Schedule,
    now_ms: int,
    result: _LaneResult,
) -> None:
    """Without sending: pass over unwanted events and park those whose window is over."""
    for entry_id, event in items:
        if event is None or not matches(endpoint.events, event.type):
            result.handled, result.skipped = entry_id, result.skipped + 1
        elif past_window(schedule, parse_stream_id(entry_id)[0], now_ms):
            result.handled = entry_id
            result.parked.append((entry_id, event))
        else:
            return


async def _deliver(
    work: Work,
    endpoint: WebhookEndpoint,
    target: Target,
    config: DeliveryConfig,
    health: _Health,
    deadline: float,
) -> dict[int, _LaneResult]:
    """Every lane of ``work`` at once, each in order, at most ``concurrency`` requests in flight."""
    gate = asyncio.Semaphore(config.concurrency)
    async with Sender(config.timeout_s) as sender:

        async def lane(items: list[tuple[str, LedgerEvent | None]]) -> _LaneResult:
            result = _LaneResult()
            for entry_id, event in items:
                if event is None or not matches(endpoint.events, event.type):
                    result.handled, result.skipped = entry_id, result.skipped + 1
                    continue
                async with gate:
                    if health.down or time.monotonic() >= deadline:
                        return result
                    attempt = await sender.post(
                        target, endpoint.secret, event.id, event.model_dump_json()
                    )
                health.record(attempt)
                if not attempt.ok:
                    result.failure = (entry_id, event, attempt)
                    return result
                result.handled, result.delivered = entry_id, result.delivered + 1
            return result

        buckets = list(work)
        outcomes = await asyncio.gather(*(lane(work[bucket]) for bucket in buckets))
    return dict(zip(buckets, outcomes, strict=True))


DOWN_PAST_WINDOW = "not sent: the endpoint was down and the event's retry window is over"


def _outcome_commands(
    endpoint: WebhookEndpoint,
    lanes: dict[int, Lane],
    results: dict[int, _LaneResult],
    schedule: Schedule,
    now_ms: int,
    report: RunReport,
) -> list[Command]:
    """Positions, retries, parkings and counters of one round, as commands."""
    writes: list[str | int] = []
    parkings: list[FailedDelivery] = []
    retried = 0
    for bucket, result in results.items():
        lane = lanes.get(bucket, Lane())
        position = parse_stream_id(result.handled) if result.handled else lane.position
        failures, not_before = (0, 0) if result.handled else (lane.failures, lane.not_before_ms)
        parkings += [
            FailedDelivery(endpoint_id=endpoint.id, event=event, attempts=0,
                           error=DOWN_PAST_WINDOW, parked_at=now_ms)
            for _, event in result.parked
        ]  # fmt: skip
        if result.failure is not None:
            entry_id, event, attempt = result.failure
            fate = after_failure(schedule, failures + 1, parse_stream_id(entry_id)[0], now_ms)
            if fate.parked:
                parkings.append(
                    FailedDelivery(endpoint_id=endpoint.id, event=event, attempts=fate.failures,
                                   error=attempt.error, parked_at=now_ms)
                )  # fmt: skip
                position, failures, not_before = parse_stream_id(entry_id), 0, 0
            else:
                failures, not_before = fate.failures, fate.next_at_ms
                retried += 1
        new = Lane(position=position, failures=failures, not_before_ms=not_before)
        if new != lane:
            writes += [bucket, new.encode()]
    commands = [command for parked in parkings for command in failed.park_commands(parked)]
    if writes:
        commands.insert(0, Command(("HSET", webhook_lanes_key(endpoint.id), *writes)))
    delivered = sum(result.delivered for result in results.values())
    commands += stats.increments(delivered=delivered, retried=retried, failed=len(parkings))
    report.delivered += delivered
    report.retried += retried
    report.parked += len(parkings)
    report.skipped += sum(result.skipped for result in results.values())
    return commands


def _resolve(endpoint: WebhookEndpoint, allow_private: bool) -> tuple[Target | None, str]:
    """The checked address to send to now, or why there is none."""
    try:
        url = check_url(endpoint.url)
        address = allowed_addresses(url, allow_private=allow_private)[0]
    except ValueError as exc:  # InvalidInputError: refused or unresolvable
        return None, str(exc)[: limits.WEBHOOK_ERROR_CHARS_MAX]
    return Target(url=url, address=address), ""


def run_endpoint(
    execute: Execute, endpoint_id: str, config: DeliveryConfig, clock: Clock
) -> RunReport:
    """One run of one endpoint (the caller holds its lease); see the module docstring."""
    report = RunReport(endpoint_id)
    endpoint = drive(get_webhook(endpoint_id), execute)
    if endpoint is None:
        report.outcome = "gone"
        return report
    now_ms = clock()
    pause = Pause.decode(drive(_get(webhook_pause_key(endpoint_id)), execute))
    if pause.until_ms > now_ms:
        report.outcome = "paused"
        return report
    deadline = time.monotonic() + config.budget_s
    health = _Health()
    target, problem = _resolve(endpoint, config.allow_private)
    if target is None:
        health.down, report.error = True, problem
    while True:
        lanes = decode_lanes(drive(_hgetall(webhook_lanes_key(endpoint_id)), execute))
        work = drive(
            _round_reads(lanes, endpoint, now_ms, config.cluster, every_lane=health.down), execute
        )
        if not work:
            break
        report.rounds += 1
        if health.down or target is None:
            results = {bucket: _LaneResult() for bucket in work}
        else:
            results = asyncio.run(_deliver(work, endpoint, target, config, health, deadline))
        if health.down:  # lanes stopped by it (or never tried) drain what is past its window
            for bucket, result in results.items():
                if result.failure is None:
                    rest = _after_handled(work[bucket], result.handled)
                    _park_past_window(rest, endpoint, config.schedule, now_ms, result)
        commands = _outcome_commands(endpoint, lanes, results, config.schedule, now_ms, report)
        if not drive(_still_there(endpoint_id, commands), execute):
            report.outcome = "gone"
            return report
        progressed = any(r.handled for r in results.values())
        if time.monotonic() >= deadline:
            report.outcome = "budget"
            break
        if health.down and not progressed:
            break
        now_ms = clock()
    if health.down:
        streak = pause.streak + 1
        until = now_ms + config.schedule.delay_ms(streak)
        drive(_set(webhook_pause_key(endpoint_id), Pause(streak, until).encode()), execute)
        report.outcome = "down"
        report.error = report.error or "no answer from the endpoint"
    elif health.successes and pause.streak:
        drive(_delete(webhook_pause_key(endpoint_id)), execute)
    return report


def run_locked(
    execute: Execute, endpoint_id: str, config: DeliveryConfig, clock: Clock | None = None
) -> RunReport:
    """:func:`run_endpoint` under the endpoint's lease; ``outcome="locked"`` if a run has it."""
    drive(_delete(webhook_queued_key(endpoint_id)), execute)
    lock = webhook_lock_key(endpoint_id)
    token = drive(locks.acquire(lock, config.lock_ttl_ms), execute)
    if token is None:
        return RunReport(endpoint_id, outcome="locked")
    try:
        return run_endpoint(execute, endpoint_id, config, clock or server_clock(execute))
    finally:
        drive(locks.release(lock, token), execute)


# ---------------------------------------------------------------- small steps


def _get(key: str) -> Steps[Any]:
    return (yield Command(("GET", key)))


def _hgetall(key: str) -> Steps[dict[str, str]]:
    return (yield Command(("HGETALL", key))) or {}


def _set(key: str, value: str) -> Steps[None]:
    yield Command(("SET", key, value))


def _delete(key: str) -> Steps[None]:
    yield Command(("DEL", key))


def _still_there(endpoint_id: str, commands: list[Command]) -> Steps[bool]:
    """Write a round's outcome unless the endpoint was removed meanwhile; whether it is there."""
    exists = yield Command(("HEXISTS", WEBHOOK_ENDPOINTS_KEY, endpoint_id))
    if not exists:
        return False
    if commands:
        batch_values((yield Batch(tuple(commands))))
    yield from failed.enforce_bound(endpoint_id)
    return True
