"""Webhook delivery by real Celery workers, to a real receiver on loopback; the CLI; Flower.

Each test has a Redis of its own (broker, result backend and store, as with
one Redis in production), because a worker delivers to every endpoint of its
store and trims its outboxes. The test plays beat: a thread sends the
dispatcher tick (``deliver_events()``) to the worker's queue every
``DELIVERY_TICK_S``, through a Celery app of the test's own pointed at that Redis. The
retry schedule is short (``CREDITS_WEBHOOK_RETRY_S``), and every wait is a
poll with a deadline.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ledger_fixtures import Clock
from receiver_rig import Receiver
from worker_rig import DELIVERY_TASK, REPO_ROOT, DeliveryBeat, Workers, clean_env

from credits import Credits, LedgerEvent
from credits.keys import outbox_key, user_keys, webhook_pause_key
from credits.limits import BUCKET_COUNT
from credits.redis_server import RedisServer, free_port
from credits.waiting import wait_until
from credits.webhooks.stats import event_stats

pytestmark = pytest.mark.system  # workers, HTTP receivers, a Redis of its own

TIMEOUT_S = "0.5"
FLAT_RETRIES = ",".join(["0.4"] * 30)  # every 0.4 s, for 12 s


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as started:
        yield started


@pytest.fixture
def client(server: RedisServer, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Credits]:
    monkeypatch.setenv("CREDITS_WEBHOOK_ALLOW_PRIVATE", "1")
    with Credits(server.url, clock=clock) as ledger_client:
        yield ledger_client


@pytest.fixture
def own_workers(server: RedisServer, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(server.url, tmp_path / "workers")
    (tmp_path / "workers").mkdir()
    yield started
    started.stop_all()


def worker_env(**more: str) -> dict[str, str]:
    return {
        "CREDITS_WEBHOOK_ALLOW_PRIVATE": "1",
        "CREDITS_WEBHOOK_TIMEOUT_S": TIMEOUT_S,
        "CREDITS_WEBHOOK_RETRY_S": FLAT_RETRIES,
        **more,
    }


def expire(client: Credits, clock: Clock, users: list[str], holds_each: int) -> None:
    for user in users:
        client.initialize_user(user, 10_000)
        for _ in range(holds_each):
            client.reserve(user, 1, "video_generation", ttl=60)
    clock.advance(61)
    for user in users:
        client.get_balance(user)


def written_for(client: Credits, users: set[str]) -> list[LedgerEvent]:
    found: list[LedgerEvent] = []
    page = client.read_events(limit=1000)
    while page:
        found += [event for event in page if event.user_id in users]
        page = client.read_events(after=page.cursor, limit=1000)
    return found


def first_deliveries(receiver: Receiver) -> list[str]:
    seen: list[str] = []
    for event_id in receiver.delivered_ids():
        if event_id not in seen:
            seen.append(event_id)
    return seen


def outbox_length(client: Credits) -> int:
    pipe = client.redis.pipeline(transaction=False)
    for bucket in range(BUCKET_COUNT):
        pipe.xlen(outbox_key(bucket))
    return sum(pipe.execute())


# --------------------------------------------------------------------------- delivery


def test_a_worker_delivers_through_failures_and_timeouts_in_order_at_least_once(
    client: Credits, clock: Clock, own_workers: Workers, server: RedisServer, unique_user: Any
) -> None:
    with Receiver() as receiver:
        endpoint = client.add_webhook(receiver.url)
        worker = own_workers.start(env=worker_env())
        users = [unique_user("w") for _ in range(6)]
        with DeliveryBeat(server.url, worker.queue):
            expire(client, clock, users, 3)
            receiver.wait_for(18)
            # It fails: the events are tried again and again ...
            receiver.mode = "fail"
            expire(client, clock, users, 2)
            wait_until(lambda: sum(r.status == 500 for r in receiver.requests) >= 6,
                       timeout_s=30, what="failed attempts")  # fmt: skip
            # ... until it comes back.
            receiver.come_back()
            receiver.wait_for(30)
            # It hangs: each attempt times out, the endpoint is paused, then delivered.
            receiver.hang()
            expire(client, clock, users, 2)
            wait_until(lambda: bool(client.redis.get(webhook_pause_key(endpoint.id))),
                       timeout_s=30, what="the endpoint paused as down")  # fmt: skip
            receiver.come_back()
            receiver.wait_for(42)
    written = written_for(client, set(users))
    assert len(written) == 42
    delivered = first_deliveries(receiver)
    assert set(delivered) == {event.id for event in written}  # every one, at least once
    for user in users:  # in order per user
        mine = [e.id for e in written if e.user_id == user]
        assert [i for i in delivered if i in set(mine)] == mine
    for request in receiver.delivered():
        assert request.verify(endpoint.secret)["id"] == request.headers["webhook-id"]
    assert event_stats(client.redis).failed == 0


def test_a_dead_endpoint_with_a_backlog_does_not_delay_another(
    client: Credits, clock: Clock, own_workers: Workers, server: RedisServer, unique_user: Any
) -> None:
    with Receiver() as dead, Receiver() as live:
        dead.hang()
        dead_endpoint = client.add_webhook(dead.url)
        expire(client, clock, [unique_user("backlog") for _ in range(100)], 20)  # 2,000 queued
        client.add_webhook(live.url)
        worker = own_workers.start(env=worker_env(), concurrency=2)
        latencies: list[float] = []
        with DeliveryBeat(server.url, worker.queue):
            for probe in range(8):
                user = unique_user(f"probe{probe}")
                started = time.monotonic()
                expire(client, clock, [user], 1)
                wait_until(lambda u=user: any(r.event["user_id"] == u for r in live.delivered()),
                           timeout_s=30, what="the live endpoint's delivery")  # fmt: skip
                latencies.append(time.monotonic() - started)
            assert client.redis.get(webhook_pause_key(dead_endpoint.id))  # it was down all along
    assert dead.requests == []  # never answered
    assert max(latencies) < 5.0, latencies
    assert sorted(latencies)[len(latencies) // 2] < 2.0, latencies


def test_the_outbox_stays_bounded_under_steady_traffic(
    client: Credits, clock: Clock, own_workers: Workers, server: RedisServer, unique_user: Any
) -> None:
    """Retention 1 s: delivered events older than that are trimmed while traffic goes on.

    About 40 events a second for 12 seconds (the receiver shares this process
    with the traffic, on a shared machine); the outbox's length is sampled
    after every burst. Without trimming it would only grow.
    """
    with Receiver() as receiver:
        client.add_webhook(receiver.url)
        worker = own_workers.start(
            env=worker_env(CREDITS_EVENT_RETENTION_S="1", CREDITS_WEBHOOK_TIMEOUT_S="3")
        )
        users = [unique_user("steady") for _ in range(5)]
        buckets = {user_keys(user).bucket for user in users}
        lengths: list[int] = []
        produced = 0
        pace = threading.Event()  # never set: its wait paces the traffic
        with DeliveryBeat(server.url, worker.queue):
            deadline = time.monotonic() + 12.0
            while time.monotonic() < deadline:
                expire(client, clock, users, 2)  # a burst of 10 events
                produced += 10
                lengths.append(sum(client.redis.xlen(outbox_key(b)) for b in buckets))
                pace.wait(0.25)
            receiver.wait_for(produced)
            wait_until(lambda: outbox_length(client) == 0, timeout_s=30,
                       what="the outbox trimmed empty")  # fmt: skip
    stats = event_stats(client.redis)
    assert stats.delivered >= produced and stats.written >= produced
    # The outbox held a few seconds' worth at most, and did not grow with the traffic.
    assert max(lengths) < produced / 2, f"{lengths} of {produced}"
    first_half, second_half = lengths[: len(lengths) // 2], lengths[len(lengths) // 2 :]
    assert max(second_half) <= max(first_half) + 20, lengths
    assert stats.trimmed >= produced


# --------------------------------------------------------------------------- operating


def credits_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(
        CREDITS_REDIS_URL=url, CREDITS_WEBHOOK_ALLOW_PRIVATE="1", COLUMNS="250",
        CREDITS_WEBHOOK_TIMEOUT_S=TIMEOUT_S,
    )  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", "from credits.cli import main; main()", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_parked_deliveries_are_listed_and_retried_from_the_cli(
    client: Credits, clock: Clock, own_workers: Workers, server: RedisServer, user_id: str
) -> None:
    with Receiver() as receiver:
        added = credits_cli("webhooks", "add", receiver.url, "-e", "reservation.*", url=server.url)
        assert added.returncode == 0, added.stderr
        listed = credits_cli("webhooks", "list", url=server.url)
        assert receiver.url in listed.stdout and "reservation.*" in listed.stdout
        receiver.mode = "fail"
        worker = own_workers.start(env=worker_env(CREDITS_WEBHOOK_RETRY_S="0.2,0.2"))
        with DeliveryBeat(server.url, worker.queue):
            expire(client, clock, [user_id], 2)
            wait_until(lambda: event_stats(client.redis).failed >= 2, timeout_s=30,
                       what="two parked deliveries")  # fmt: skip
        parked = credits_cli("webhooks", "failed", url=server.url)
        assert parked.returncode == 0, parked.stderr
        events = written_for(client, {user_id})
        assert all(event.id in parked.stdout for event in events) and "HTTP 500" in parked.stdout
        receiver.come_back()
        retried = credits_cli("webhooks", "retry", events[0].id, url=server.url)
        assert retried.returncode == 0, retried.stdout + retried.stderr
        assert "delivered" in retried.stdout
        assert receiver.delivered_ids() == [events[0].id]
        after = credits_cli("webhooks", "failed", url=server.url)
        assert events[0].id not in after.stdout and events[1].id in after.stdout
        again = credits_cli("webhooks", "retry", events[0].id, url=server.url)
        assert again.returncode == 1 and "not parked" in again.stderr
        endpoint_id = client.list_webhooks()[0].id
        removed = credits_cli("webhooks", "remove", endpoint_id, url=server.url)
        assert removed.returncode == 0 and client.list_webhooks() == []


def test_flower_shows_the_delivery_task(
    client: Credits, own_workers: Workers, server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    env = clean_env(CREDITS_REDIS_URL=server.url, FLOWER_UNAUTHENTICATED_API="true")
    log = (tmp_path / "flower.log").open("wb")
    flower = subprocess.Popen(
        [sys.executable, "-m", "credits.tasks.flower", f"--port={port}", "--address=127.0.0.1"],
        cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        try:
            return httpx.get(f"{base}/healthcheck", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def shown() -> bool:
        answer = httpx.get(f"{base}/api/tasks", params={"taskname": DELIVERY_TASK}, timeout=2.0)
        return answer.status_code == 200 and bool(answer.json())

    try:
        wait_until(listening, timeout_s=60, what="Flower")
        worker = own_workers.start(env=worker_env())
        with DeliveryBeat(server.url, worker.queue):
            wait_until(shown, timeout_s=60, what="Flower to list deliver_events", interval_s=0.5)
    finally:
        flower.terminate()
        flower.wait(timeout=15)
        log.close()
