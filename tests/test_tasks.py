"""The Celery tasks against a real worker subprocess and the test Redis.

The Redis of ``redis_url`` is broker, result backend and ledger store at once,
as in production with one Redis. Expiry is tested without waiting: the hold is
made by a client whose clock runs two minutes behind, so it is already due by
the worker's real clock when the sweep runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from worker_rig import REPO_ROOT, clean_env

from credits import Credits
from credits.errors import (
    InvalidInputError,
    PricingConfigError,
    ReservationClosedError,
    ReservationNotFoundError,
)
from credits.keys import user_keys
from credits.redis_server import RedisServer
from credits.tasks import (
    expire_lots,
    expire_reservations,
    reconcile_balances,
    release_reservation,
    settle_reservation,
)
from credits.tasks.outbox import OUTBOX_KEY
from credits.waiting import wait_until

RESULT_TIMEOUT_S = 30.0
HOLD_TTL_S = 600


@pytest.fixture
def client(redis_url: str) -> Iterator[Credits]:
    with Credits(redis_url) as ledger_client:
        yield ledger_client


def settle_events(client: Credits, user: str) -> int:
    return sum(tx.type == "settle" for tx in client.get_transactions(user, limit=1000))


def unacked_on(client: Credits, queue: str) -> int:
    """Messages of ``queue`` taken by a worker and not yet acknowledged (kombu's Redis layout)."""
    entries = client.redis.hvals("unacked")
    return sum(json.loads(entry)[2] == queue for entry in entries)


def unknown_hold_of(rid: str) -> str:
    """A well-formed reservation id of the same user that was never issued."""
    return rid[:-20] + "0" * 20


# --------------------------------------------------------------------------- settle and release


def test_settle_delivered_twice_charges_once(tasks_app, workers, client, user_id) -> None:
    client.initialize_user(user_id, 1000)
    hold = client.reserve(user_id, 300, "video_generation", ttl=HOLD_TTL_S)
    worker = workers.start()

    first = settle_reservation.apply_async((hold.id, 240), queue=worker.queue)
    again = settle_reservation.apply_async((hold.id, 240), queue=worker.queue)
    # A third delivery that disagrees still gets the first result: the hold closed once.
    late = settle_reservation.apply_async((hold.id,), {"actual_amount": 999}, queue=worker.queue)

    results = [r.get(timeout=RESULT_TIMEOUT_S) for r in (first, again, late)]
    assert results[0] == results[1] == results[2]
    assert results[0]["reservation_id"] == hold.id
    assert (results[0]["charged"], results[0]["released"], results[0]["shortfall"]) == (240, 60, 0)
    assert set(results[0]) >= {"tx_id", "charged", "released", "shortfall", "balance", "late"}
    assert client.get_account(user_id).balance == 760
    assert client.get_account(user_id).held == 0
    assert settle_events(client, user_id) == 1
    assert client.verify_balance(user_id).valid


def test_usage_is_priced_in_the_unit_of_the_holds_action(
    tasks_app, workers, client, user_id
) -> None:
    client.initialize_user(user_id, 5000)
    video = client.reserve(user_id, 300, "video_generation", ttl=HOLD_TTL_S)  # 30 s at 10/s
    training = client.reserve(user_id, 2000, "training_job", ttl=HOLD_TTL_S)  # 2 GPU-hours
    worker = workers.start()

    video_result = settle_reservation.apply_async(
        (video.id,), {"usage": 12.5, "metadata": {"provider": "veo"}}, queue=worker.queue
    ).get(timeout=RESULT_TIMEOUT_S)
    training_result = settle_reservation.apply_async(
        (training.id,), {"usage": 0.75}, queue=worker.queue
    ).get(timeout=RESULT_TIMEOUT_S)

    assert (video_result["charged"], video_result["released"]) == (125, 175)  # 12.5 s x 10
    assert (training_result["charged"], training_result["released"]) == (750, 1250)
    assert client.get_balance(user_id) == 5000 - 125 - 750
    settle = next(tx for tx in client.get_transactions(user_id) if tx.reservation_id == video.id
                  and tx.type == "settle")  # fmt: skip
    assert settle.metadata == {"usage": 12.5, "usage_unit": "second", "provider": "veo"}


def test_usage_is_priced_with_the_apps_configured_pricing(
    tasks_app, workers, client, user_id
) -> None:
    """CREDITS_PRICING names the app's rules; the worker prices usage with them, not defaults."""
    client.initialize_user(user_id, 5000)
    video = client.reserve(user_id, 300, "video_generation", ttl=HOLD_TTL_S)
    ocr = client.reserve(user_id, 100, "document_ocr", ttl=HOLD_TTL_S)
    worker = workers.start(
        env={
            "CREDITS_PRICING": "support.custom_pricing:PRICING",
            "PYTHONPATH": str(REPO_ROOT / "tests"),
        }
    )

    video_result = settle_reservation.apply_async(
        (video.id,), {"usage": 12.5}, queue=worker.queue
    ).get(timeout=RESULT_TIMEOUT_S)
    ocr_result = settle_reservation.apply_async((ocr.id,), {"usage": 7}, queue=worker.queue).get(
        timeout=RESULT_TIMEOUT_S
    )

    assert video_result["charged"] == 50  # 12.5 s x 4, the app's rate
    assert ocr_result["charged"] == 21  # an action only the app's rules know
    settle = next(tx for tx in client.get_transactions(user_id) if tx.reservation_id == ocr.id)
    assert settle.metadata == {"usage": 7, "usage_unit": "page"}


def test_usage_over_the_hold_settles_with_overage(tasks_app, workers, client, user_id) -> None:
    client.initialize_user(user_id, 2400)
    job = client.reserve(user_id, 2000, "training_job", ttl=HOLD_TTL_S)
    client.extend(job.id, HOLD_TTL_S * 2)
    worker = workers.start()

    result = settle_reservation.apply_async((job.id,), {"usage": 2.5}, queue=worker.queue).get(
        timeout=RESULT_TIMEOUT_S
    )

    # 2500 owed: the 2000 held plus the 400 left on the balance; 100 short.
    assert (result["charged"], result["shortfall"], result["balance"]) == (2400, 100, 0)


def test_release_task_returns_the_whole_hold(tasks_app, workers, client, user_id) -> None:
    client.initialize_user(user_id, 500)
    hold = client.reserve(user_id, 200, "video_generation", ttl=HOLD_TTL_S)
    worker = workers.start()

    result = release_reservation.apply_async((hold.id, "provider failed"), queue=worker.queue).get(
        timeout=RESULT_TIMEOUT_S
    )

    assert (result["charged"], result["released"], result["balance"]) == (0, 200, 500)
    assert client.get_reservation(hold.id).status == "released"


# --------------------------------------------------------------------------- business errors


def test_business_errors_fail_typed_and_are_not_retried(
    tasks_app, workers, client, user_id
) -> None:
    client.initialize_user(user_id, 500)
    released = client.reserve(user_id, 100, "video_generation", ttl=HOLD_TTL_S)
    client.release(released.id)
    open_hold = client.reserve(user_id, 100, "video_generation", ttl=HOLD_TTL_S)
    worker = workers.start()
    q = worker.queue

    missing = settle_reservation.apply_async((unknown_hold_of(open_hold.id), 10), queue=q)
    closed = settle_reservation.apply_async((released.id, 10), queue=q)
    both = settle_reservation.apply_async(
        (open_hold.id,), {"actual_amount": 5, "usage": 1}, queue=q
    )
    neither = settle_reservation.apply_async((open_hold.id,), queue=q)
    bad_usage = settle_reservation.apply_async((open_hold.id,), {"usage": -1}, queue=q)
    bad_amount = settle_reservation.apply_async((open_hold.id, 2.5), queue=q)

    with pytest.raises(ReservationNotFoundError) as not_found:
        missing.get(timeout=RESULT_TIMEOUT_S)
    assert not_found.value.reservation_id == unknown_hold_of(open_hold.id)
    with pytest.raises(ReservationClosedError) as was_closed:
        closed.get(timeout=RESULT_TIMEOUT_S)
    assert (was_closed.value.reservation_id, was_closed.value.status) == (released.id, "released")
    assert was_closed.value.operation == "settle"
    for result in (both, neither, bad_amount):
        with pytest.raises(InvalidInputError):
            result.get(timeout=RESULT_TIMEOUT_S)
    with pytest.raises(PricingConfigError):
        bad_usage.get(timeout=RESULT_TIMEOUT_S)

    for result in (missing, closed, both, neither, bad_usage, bad_amount):
        assert result.state == "FAILURE"
    log = worker.log_tail()
    assert "Retry in" not in log
    assert "raised expected" in log  # Celery's `throws`: logged without a traceback
    # Nothing moved: the open hold is still open and whole.
    assert client.get_reservation(open_hold.id).status == "open"
    assert client.get_account(user_id).held == 100


def test_store_outage_is_retried_with_backoff_until_it_returns(
    tasks_app, workers, tmp_path: Path, unique_user
) -> None:
    """The broker stays up while the ledger's own Redis goes away and comes back."""
    user = unique_user()
    with RedisServer(tmp_path / "store", persistent=True, appendfsync="always") as store:
        with Credits(store.url) as store_client:
            store_client.initialize_user(user, 1000)
            hold = store_client.reserve(user, 100, "video_generation", ttl=HOLD_TTL_S)
        worker = workers.start(store_url=store.url)
        store.stop()

        result = settle_reservation.apply_async((hold.id, 70), queue=worker.queue)
        wait_until(lambda: result.state == "RETRY", timeout_s=RESULT_TIMEOUT_S, what="a retry")
        store.start()  # same port, same AOF

        assert result.get(timeout=RESULT_TIMEOUT_S)["charged"] == 70
        with Credits(store.url) as store_client:
            assert store_client.get_account(user).balance == 930
            assert store_client.verify_balance(user).valid
        assert "Retry in" in worker.log_tail()


# --------------------------------------------------------------------------- upkeep


def test_sweep_task_expires_due_holds(tasks_app, workers, redis_url, client, user_id) -> None:
    client.initialize_user(user_id, 1000)
    keep = client.reserve(user_id, 100, "video_generation", ttl=HOLD_TTL_S)
    # Made by a client two minutes behind: a 60 s hold that is due by the real clock.
    with Credits(redis_url, clock=lambda: time.time() - 120) as behind:
        due = behind.reserve(user_id, 300, "video_generation", ttl=60)
    worker = workers.start()

    result = expire_reservations.apply_async(queue=worker.queue).get(timeout=RESULT_TIMEOUT_S)

    assert set(result) == {"expired"}
    assert result["expired"] >= 1
    assert client.get_reservation(due.id).status == "expired"
    assert client.get_reservation(keep.id).status == "open"
    account = client.get_account(user_id)
    assert (account.balance, account.held) == (900, 100)
    assert client.verify_balance(user_id).valid


def test_lot_sweep_task_expires_and_starts_lots(
    tasks_app, workers, redis_url, client, user_id
) -> None:
    """Lots of a user who never comes back: the beat's task moves them, by the server's clock."""
    keep = client.add(user_id, 5, "purchase", expires_in=3600)
    with Credits(redis_url, clock=lambda: time.time() - 120) as behind:  # two minutes back
        promo = behind.add(user_id, 50, "promo", category="promotional", expires_in=60)
        starts = behind.add(user_id, 20, "grant", effective_at=int(time.time() * 1000) - 60_000)
    worker = workers.start()

    result = expire_lots.apply_async(queue=worker.queue).get(timeout=RESULT_TIMEOUT_S)

    assert set(result) == {"expired"} and result["expired"] >= 2
    kinds = [tx.type for tx in client.get_transactions(user_id, limit=2)]
    assert sorted(kinds) == ["lot_expire", "lot_start"]  # written by the task, not by a read
    assert client.get_lot(promo.lot_id).status == "expired"
    assert client.get_lot(starts.lot_id).status == "active"
    assert client.get_lot(keep.lot_id).status == "active"
    assert client.get_balance(user_id) == 25
    assert client.verify_balance(user_id).valid


def test_reconcile_task_reports_and_fixes(tasks_app, workers, client, user_id, unique_user) -> None:
    client.initialize_user(user_id, 1000)
    healthy = unique_user()
    client.initialize_user(healthy, 50)
    client.redis.hset(user_keys(user_id).account, "bal", 1234)  # behind the ledger's back
    worker = workers.start()

    found = reconcile_balances.apply_async(queue=worker.queue).get(timeout=RESULT_TIMEOUT_S)
    assert set(found) == {"checked", "invalid", "fixed"}
    assert found["checked"] >= 2
    assert found["invalid"] >= 1
    assert found["fixed"] == 0
    assert not client.verify_balance(user_id).valid

    fixed = reconcile_balances.apply_async(kwargs={"fix": True}, queue=worker.queue).get(
        timeout=RESULT_TIMEOUT_S
    )
    assert fixed["fixed"] >= 1
    assert client.verify_balance(user_id).valid
    assert client.get_balance(user_id) == 1000


# --------------------------------------------------------------------------- crashes


HOLDS = 200
HELD_EACH = 10
ACTUAL_EACH = 7
KILL_AFTER_SETTLED = 50
# A short visibility timeout so the killed worker's tasks come back in seconds.
VISIBILITY_TIMEOUT_S = 3


def test_worker_sigkilled_mid_batch_loses_none_and_doubles_none(
    tasks_app, workers, client, user_id
) -> None:
    start_balance = HOLDS * HELD_EACH + 1000
    client.initialize_user(user_id, start_balance)
    holds = [
        client.reserve(user_id, HELD_EACH, "video_generation", ttl=HOLD_TTL_S) for _ in range(HOLDS)
    ]
    first = workers.start(visibility_timeout_s=VISIBILITY_TIMEOUT_S)
    results = [
        settle_reservation.apply_async((hold.id, ACTUAL_EACH), queue=first.queue) for hold in holds
    ]

    def settled() -> int:
        return HOLDS - client.get_account(user_id).held // HELD_EACH

    wait_until(lambda: settled() >= KILL_AFTER_SETTLED, timeout_s=RESULT_TIMEOUT_S, what="settles")
    first.kill()  # SIGKILL to the whole process group: main process and pool
    at_kill = settled()
    assert at_kill < HOLDS, "the worker finished before it could be killed; nothing was tested"
    # It died holding tasks: unacknowledged ones wait in the broker's unacked hash
    # (the visibility timeout brings them back); one taken off the queue but not
    # yet recorded there is gone from the broker (the outbox sends it again).
    taken_unsettled = HOLDS - client.redis.llen(first.queue) - at_kill
    assert unacked_on(client, first.queue) + taken_unsettled >= 1, "no task was in flight"

    workers.start(visibility_timeout_s=VISIBILITY_TIMEOUT_S)
    outcomes = [r.get(timeout=RESULT_TIMEOUT_S * 2) for r in results]

    assert all(o["charged"] == ACTUAL_EACH for o in outcomes)
    assert len({o["tx_id"] for o in outcomes}) == HOLDS
    account = client.get_account(user_id)
    assert (account.balance, account.held) == (start_balance - HOLDS * ACTUAL_EACH, 0)
    assert settle_events(client, user_id) == HOLDS
    assert client.verify_balance(user_id).valid


# --------------------------------------------------------------------------- configuration


def test_importing_tasks_needs_no_redis_and_a_worker_without_one_refuses() -> None:
    env = clean_env()
    imported = subprocess.run(
        [sys.executable, "-c", "import credits.tasks as t; print(t.settle_reservation.name)"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "credits.tasks.settle_reservation"

    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "credits.tasks", "worker"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert worker.returncode == 1
    assert "CREDITS_REDIS_URL" in worker.stderr
    assert "CELERY_BROKER_URL" in worker.stderr


def test_a_message_the_broker_lost_is_sent_again_from_the_outbox(
    tasks_app, workers, client, user_id
) -> None:
    """kombu's Redis transport loses a message taken by a worker that dies before recording it.

    Dropping the queued message by hand is that loss, made deterministic.
    """
    client.initialize_user(user_id, 1000)
    hold = client.reserve(user_id, 100, "video_generation", ttl=HOLD_TTL_S)
    result = settle_reservation.apply_async((hold.id, 60), queue=workers.queue)
    assert client.redis.delete(workers.queue) == 1  # the message is gone from the broker
    assert client.redis.hexists(OUTBOX_KEY, result.id)

    workers.start(visibility_timeout_s=VISIBILITY_TIMEOUT_S)

    assert result.get(timeout=RESULT_TIMEOUT_S)["charged"] == 60
    assert client.get_account(user_id).balance == 940
    wait_until(
        lambda: not client.redis.hexists(OUTBOX_KEY, result.id),
        timeout_s=RESULT_TIMEOUT_S,
        what="the outbox record to be cleared",
    )
