"""Webhook delivery in this process: real Redis, a real HTTP receiver on loopback, no worker.

The delivery run and the dispatcher tick are called directly, with the
schedule's clock in the test's hands (the Redis server's time plus an offset
the test moves), so retries, windows and pauses are driven without waiting for
them. Events are real: holds expired by the ledger, settles with a shortfall.
Each test has its own Redis (a worker on the shared one would deliver to every
endpoint there), and the worker path is tests/test_webhook_workers.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ledger_fixtures import Clock
from receiver_rig import Receiver

from credits import Credits, LedgerEvent
from credits.event_cursor import Cursor, encode_cursor
from credits.keys import outbox_key, user_keys, webhook_pause_key
from credits.limits import BUCKET_COUNT
from credits.redis_server import RedisServer
from credits.transport import blocking_executor, drive
from credits.webhooks import delivery, dispatch, failed, redeliver
from credits.webhooks.delivery import DeliveryConfig, RunReport, server_time
from credits.webhooks.schedule import Schedule
from credits.webhooks.stats import event_stats

pytestmark = pytest.mark.system  # HTTP receivers and a Redis of its own

SCHEDULE = Schedule.from_seconds((1.0, 2.0, 4.0))  # a 7-second window, four attempts
TIMEOUT_S = 0.5


class ScheduleClock:
    """The Redis server's clock plus an offset the test moves: what the schedule counts in."""

    def __init__(self, execute: Any) -> None:
        self._execute = execute
        self.offset_ms = 0

    def __call__(self) -> int:
        return int(drive(server_time(), self._execute)) + self.offset_ms

    def advance(self, seconds: float) -> None:
        self.offset_ms += int(seconds * 1000)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path) as started:
        yield started


@pytest.fixture
def client(server: RedisServer, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Credits]:
    monkeypatch.setenv("CREDITS_WEBHOOK_ALLOW_PRIVATE", "1")  # the receiver is on loopback
    with Credits(server.url, clock=clock) as ledger_client:
        yield ledger_client


@pytest.fixture
def execute(client: Credits) -> Any:
    return blocking_executor(client.redis)


@pytest.fixture
def schedule_clock(execute: Any) -> ScheduleClock:
    return ScheduleClock(execute)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        yield started


def config(**changes: Any) -> DeliveryConfig:
    options: dict[str, Any] = {
        "schedule": SCHEDULE, "timeout_s": TIMEOUT_S, "concurrency": 4,
        "allow_private": True, "budget_s": 5.0, "lock_ttl_ms": 30_000,
    }  # fmt: skip
    options.update(changes)
    return DeliveryConfig(**options)


def expire(client: Credits, clock: Clock, users: list[str], holds_each: int) -> None:
    """``holds_each`` reservation.expired events per user, by lazy expiry."""
    for user in users:
        client.initialize_user(user, 10_000)
        for _ in range(holds_each):
            client.reserve(user, 1, "video_generation", ttl=60)
    clock.advance(61)
    for user in users:
        client.get_balance(user)


def outbox_events(client: Credits, users: list[str]) -> list[LedgerEvent]:
    """What read_events has for ``users``, in order per user."""
    found: list[LedgerEvent] = []
    page = client.read_events(limit=1000)
    while page:
        found += [event for event in page if event.user_id in users]
        page = client.read_events(after=page.cursor, limit=1000)
    return found


def run(execute: Any, endpoint_id: str, clock: ScheduleClock, **changes: Any) -> RunReport:
    return delivery.run_locked(execute, endpoint_id, config(**changes), clock)


def per_user(ids: list[str], events: list[LedgerEvent]) -> dict[str, list[str]]:
    users = {event.id: event.user_id for event in events}
    order: dict[str, list[str]] = {}
    for event_id in ids:
        if event_id not in order.get(users[event_id], []):
            order.setdefault(users[event_id], []).append(event_id)
    return order


# --------------------------------------------------------------------------- delivering


def test_events_arrive_signed_once_in_order_with_their_id(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, unique_user: Any,
) -> None:  # fmt: skip
    endpoint = client.add_webhook(receiver.url)
    users = [unique_user("signed") for _ in range(4)]
    expire(client, clock, users, 5)
    report = run(execute, endpoint.id, schedule_clock)
    assert (report.outcome, report.delivered) == ("done", 20)
    written = outbox_events(client, users)
    by_id = {event.id: event for event in written}
    got = receiver.delivered()
    assert len(got) == 20
    for request in got:
        payload = request.verify(endpoint.secret)  # the Standard Webhooks signature holds
        assert request.headers["webhook-id"] == payload["id"]
        assert LedgerEvent.model_validate(payload) == by_id[payload["id"]]
        assert request.headers["content-type"] == "application/json"
        assert request.path == "/hook"
    assert per_user(receiver.delivered_ids(), written) == per_user([e.id for e in written], written)
    again = run(execute, endpoint.id, schedule_clock)
    assert (again.delivered, len(receiver.requests)) == (0, 20)  # positions were kept
    assert event_stats(client.redis).delivered == 20


def test_a_filter_passes_other_types_over(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, user_id: str,
) -> None:  # fmt: skip
    endpoint = client.add_webhook(receiver.url, events=["settlement.*"])
    expire(client, clock, [user_id], 3)
    hold = client.reserve(user_id, 10, "training_job", ttl=600)
    client.settle(hold.id, 100_000)  # far more than the balance: a shortfall
    report = run(execute, endpoint.id, schedule_clock)
    # Skipped: the three expiries and the balance.depleted the shortfall's settle emits.
    assert (report.delivered, report.skipped) == (1, 4)
    (only,) = receiver.delivered()
    assert only.event["type"] == "settlement.shortfall"
    assert only.event["data"]["reservation_id"] == hold.id


def test_an_endpoint_receives_only_what_is_written_after_it_was_added(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, unique_user: Any,
) -> None:  # fmt: skip
    before, after = unique_user("before"), unique_user("after")
    expire(client, clock, [before], 2)
    endpoint = client.add_webhook(receiver.url)
    expire(client, clock, [after], 2)
    run(execute, endpoint.id, schedule_clock)
    assert {r.event["user_id"] for r in receiver.delivered()} == {after}


# --------------------------------------------------------------------------- failing


def test_a_failing_event_is_retried_by_the_schedule_and_holds_up_only_its_lane(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, unique_user: Any,
) -> None:  # fmt: skip
    endpoint = client.add_webhook(receiver.url)
    failing = unique_user("failing")
    others = []
    while len(others) < 3:  # users of other buckets: other lanes
        other = unique_user("other")
        if user_keys(other).bucket != user_keys(failing).bucket:
            others.append(other)
    expire(client, clock, [failing, *others], 3)
    receiver.fail_users = {failing}
    first = run(execute, endpoint.id, schedule_clock)
    assert (first.delivered, first.retried) == (9, 1)
    assert [r.event["user_id"] for r in receiver.requests].count(failing) == 1  # lane held
    assert run(execute, endpoint.id, schedule_clock).retried == 0  # not before its delay (1 s)
    schedule_clock.advance(1)
    assert run(execute, endpoint.id, schedule_clock).retried == 1  # the second attempt
    receiver.fail_users = set()
    schedule_clock.advance(2)
    last = run(execute, endpoint.id, schedule_clock)
    assert (last.delivered, last.parked) == (3, 0)
    written = outbox_events(client, [failing])
    assert [r for r in receiver.delivered_ids() if r in {e.id for e in written}] == [
        e.id for e in written
    ]  # in order, though the first took three attempts
    assert event_stats(client.redis).retried == 2


def test_an_event_past_its_window_is_parked_listed_and_retried(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, user_id: str,
) -> None:  # fmt: skip
    endpoint = client.add_webhook(receiver.url)
    expire(client, clock, [user_id], 3)
    receiver.mode = "fail"
    run(execute, endpoint.id, schedule_clock)
    schedule_clock.advance(SCHEDULE.window_ms / 1000)
    report = run(execute, endpoint.id, schedule_clock)
    assert report.parked == 3  # each one more failed attempt, each past its window
    parked = drive(failed.list_failed([endpoint.id], 100), execute)
    written = outbox_events(client, [user_id])
    assert sorted(p.event.id for p in parked) == sorted(e.id for e in written)
    assert all(p.error == "HTTP 500" and p.attempts >= 1 for p in parked)
    assert event_stats(client.redis).failed == 3
    # The lane moved on: a new event is delivered at once, the parked ones stay parked.
    receiver.mode = "ok"
    expire(client, clock, [user_id], 1)
    assert run(execute, endpoint.id, schedule_clock).delivered == 1
    # Retried by hand (what `credits webhooks retry` does): delivered and struck off.
    target = parked[0].event.id
    (outcome,) = redeliver.retry_parked(execute, target, allow_private=True, timeout_s=TIMEOUT_S)
    assert outcome.delivered and receiver.delivered_ids()[-1] == target
    still = drive(failed.list_failed([endpoint.id], 100), execute)
    assert target not in {p.event.id for p in still}


def test_a_hanging_endpoint_is_down_paused_and_delivered_when_it_comes_back(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, unique_user: Any,
) -> None:  # fmt: skip
    endpoint = client.add_webhook(receiver.url)
    users = [unique_user("hang") for _ in range(20)]
    expire(client, clock, users, 1)
    receiver.hang()
    started = time.monotonic()
    report = run(execute, endpoint.id, schedule_clock)
    took = time.monotonic() - started
    assert report.outcome == "down" and report.delivered == 0
    assert took < 4 * TIMEOUT_S  # a few timeouts in parallel, not one per lane
    assert client.redis.get(webhook_pause_key(endpoint.id))
    assert run(execute, endpoint.id, schedule_clock).outcome == "paused"
    receiver.come_back()
    schedule_clock.advance(SCHEDULE.delay_ms(1) / 1000)
    back = run(execute, endpoint.id, schedule_clock)
    assert (back.outcome, back.delivered, back.parked) == ("done", 20, 0)
    assert not client.redis.get(webhook_pause_key(endpoint.id))
    assert len(set(receiver.delivered_ids())) == 20


def test_a_dead_endpoints_backlog_drains_into_parked_without_a_request_each(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, unique_user: Any,
) -> None:  # fmt: skip
    endpoint = client.add_webhook(receiver.url)
    users = [unique_user("dead") for _ in range(40)]
    expire(client, clock, users, 5)
    receiver.hang()
    schedule_clock.advance(SCHEDULE.window_ms / 1000)  # all of them past their window
    report = run(execute, endpoint.id, schedule_clock, budget_s=20.0)
    assert (report.outcome, report.parked, report.delivered) == ("down", 200, 0)
    assert len(drive(failed.list_failed([endpoint.id], 1000), execute)) == 200


def test_the_address_is_checked_again_at_delivery(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, user_id: str,
) -> None:  # fmt: skip
    """Added while loopback was allowed; a worker that does not allow it never sends."""
    endpoint = client.add_webhook(receiver.url.replace("127.0.0.1", "localhost"))
    expire(client, clock, [user_id], 2)
    report = run(execute, endpoint.id, schedule_clock, allow_private=False)
    assert report.outcome == "down" and "loopback, private or reserved" in report.error
    assert receiver.requests == []


def test_two_endpoints_are_two_runs(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, unique_user: Any,
) -> None:  # fmt: skip
    with Receiver() as dead:
        dead.hang()
        dead_endpoint = client.add_webhook(dead.url)
        live_endpoint = client.add_webhook(receiver.url)
        expire(client, clock, [unique_user("two") for _ in range(10)], 2)
        assert run(execute, dead_endpoint.id, schedule_clock).outcome == "down"
        started = time.monotonic()
        live = run(execute, live_endpoint.id, schedule_clock)
        assert (live.delivered, live.outcome) == (20, "done")
        assert time.monotonic() - started < TIMEOUT_S  # nothing of the dead one's waits here


# --------------------------------------------------------------------------- the tick


def test_the_tick_queues_runs_only_for_endpoints_with_work(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, user_id: str,
) -> None:  # fmt: skip
    quiet = client.add_webhook(receiver.url, events=["lot.expired"])
    busy = client.add_webhook(receiver.url)
    queued: list[str] = []

    def tick() -> dispatch.TickReport:
        return dispatch.tick(execute, retention_ms=3_600_000, queued_ttl_ms=10_000,
                             enqueue=queued.append, clock=schedule_clock)  # fmt: skip

    assert tick().queued == []  # nothing written yet
    expire(client, clock, [user_id], 2)
    assert sorted(tick().queued) == sorted([quiet.id, busy.id])
    assert tick().queued == []  # already queued: not again
    for endpoint in (quiet, busy):
        run(execute, endpoint.id, schedule_clock)
    assert tick().queued == []  # delivered (or passed over): no work left
    assert len(receiver.delivered()) == 2


def test_the_tick_trims_what_every_endpoint_has_and_the_retention_allows(
    client: Credits, clock: Clock, execute: Any, schedule_clock: ScheduleClock,
    receiver: Receiver, unique_user: Any,
) -> None:  # fmt: skip
    users = [unique_user("trim") for _ in range(30)]
    delivered_to = client.add_webhook(receiver.url)
    lagging = client.add_webhook(receiver.url)
    expire(client, clock, users, 4)
    buckets = {user_keys(u).bucket for u in users}
    length = lambda: sum(client.redis.xlen(outbox_key(b)) for b in buckets)  # noqa: E731
    assert length() == 120
    run(execute, delivered_to.id, schedule_clock)

    def tick(retention_ms: int) -> int:
        report = dispatch.tick(execute, retention_ms=retention_ms, queued_ttl_ms=1,
                               enqueue=lambda _: None, clock=schedule_clock,
                               trim_buckets=BUCKET_COUNT)  # fmt: skip
        return report.trimmed

    schedule_clock.advance(60)
    assert tick(retention_ms=3_600_000) == 0  # within the retention
    assert tick(retention_ms=1000) == 0  # past it, but one endpoint has not had them
    assert length() == 120
    client.remove_webhook(lagging.id)
    assert tick(retention_ms=1000) == 120
    assert length() == 0
    stats = event_stats(client.redis)
    assert stats.trimmed == 120 and stats.written >= 120
    # Pollers of read_events see the trim as the events being gone, never as an error.
    assert client.read_events(after=encode_cursor(Cursor.beginning())) == []


# --------------------------------------------------------------------------- the Cluster


@pytest.mark.cluster
def test_delivery_and_the_tick_on_the_cluster(
    cluster_backend: Any, clock: Clock, receiver: Receiver, unique_user: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Every command of a run and a tick names one key, so each goes to its bucket's node."""
    monkeypatch.setenv("CREDITS_WEBHOOK_ALLOW_PRIVATE", "1")
    before = cluster_backend.crossslot_errors()
    with cluster_backend.backend.credits(clock=clock) as client:
        endpoint = client.add_webhook(receiver.url)
        try:
            execute = blocking_executor(client.redis)
            schedule_clock = ScheduleClock(execute)
            users = [unique_user("cluster") for _ in range(12)]
            expire(client, clock, users, 2)
            queued: list[str] = []
            dispatch.tick(execute, retention_ms=3_600_000, queued_ttl_ms=10_000,
                          enqueue=queued.append, clock=schedule_clock)  # fmt: skip
            assert endpoint.id in queued
            report = run(execute, endpoint.id, schedule_clock, cluster=True)
            assert (report.outcome, report.delivered) == ("done", 24)
            assert len(set(receiver.delivered_ids())) == 24
        finally:
            client.remove_webhook(endpoint.id)
    assert cluster_backend.crossslot_errors() == before
