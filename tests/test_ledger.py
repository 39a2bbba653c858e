"""Every ledger method, on both clients (the ``ledger`` fixture runs each test twice)."""

from __future__ import annotations

import time

import pytest
from freezegun import freeze_time
from ledger_fixtures import BOTH_BACKENDS, Backend, Clock, store_snapshot

from credits import Account, Transaction, TxResult
from credits.errors import (
    IdempotencyConflictError,
    InsufficientCreditsError,
    LimitExceededError,
)
from credits.keys import user_keys
from credits.limits import AMOUNT_MAX


def test_initialize_grants_default_credits_once(ledger, user_id, clock: Clock) -> None:
    first = ledger.initialize_user(user_id)
    assert isinstance(first, TxResult)
    assert first.balance == 100
    assert first.timestamp == clock.now_ms
    clock.advance(5)
    again = ledger.initialize_user(user_id, 500)
    assert again == first
    assert ledger.get_balance(user_id) == 100
    assert [tx.type for tx in ledger.get_transactions(user_id)] == ["initialize"]


def test_initialize_with_credits_and_metadata(ledger, user_id) -> None:
    result = ledger.initialize_user(user_id, 250, {"plan": "pro"})
    assert result.balance == 250
    (tx,) = ledger.get_transactions(user_id)
    assert tx.metadata == {"plan": "pro"}
    assert (tx.amount, tx.balance_delta, tx.held_delta, tx.balance_after) == (250, 250, 0, 250)


def test_initialize_with_zero_credits_creates_the_account(ledger, user_id) -> None:
    assert ledger.initialize_user(user_id, 0).balance == 0
    assert ledger.get_account(user_id).created_at is not None


def test_deduct_charges_and_logs(ledger, user_id, clock: Clock) -> None:
    welcome = ledger.initialize_user(user_id, 100).lot_id
    clock.advance(1)
    result = ledger.deduct(user_id, 10, "chat_message", {"app": "chat", "model": "m1"})
    assert result.balance == 90
    assert result.timestamp == clock.now_ms
    newest = ledger.get_transactions(user_id, limit=1)[0]
    assert newest == Transaction(
        tx_id=result.tx_id,
        user_id=user_id,
        type="deduct",
        amount=10,
        balance_delta=-10,
        held_delta=0,
        balance_after=90,
        action="chat_message",
        metadata={"app": "chat", "model": "m1"},
        timestamp=clock.now_ms,
        lots={welcome: -10},
    )


def test_deduct_insufficient_writes_nothing(ledger, user_id, redis_client) -> None:
    ledger.initialize_user(user_id, 15)
    before = store_snapshot(redis_client, f"*{user_id}*")
    with pytest.raises(InsufficientCreditsError) as caught:
        ledger.deduct(user_id, 16, "canvas_generation_simple")
    assert (caught.value.required, caught.value.available) == (16, 15)
    assert store_snapshot(redis_client, f"*{user_id}*") == before


def test_deduct_exact_balance_reaches_zero(ledger, user_id) -> None:
    ledger.initialize_user(user_id, 10)
    assert ledger.deduct(user_id, 10, "chat_message").balance == 0
    with pytest.raises(InsufficientCreditsError):
        ledger.deduct(user_id, 1, "chat_message")


def test_unknown_user_reads_as_empty(ledger, user_id, redis_client) -> None:
    assert ledger.get_balance(user_id) == 0
    assert ledger.get_account(user_id) == Account(
        user_id=user_id, balance=0, held=0, created_at=None
    )
    assert ledger.get_transactions(user_id) == []
    with pytest.raises(InsufficientCreditsError) as caught:
        ledger.deduct(user_id, 5, "chat_message")
    assert (caught.value.required, caught.value.available) == (5, 0)
    assert store_snapshot(redis_client, f"*{user_id}*") == {}


def test_add_creates_account_and_credits(ledger, user_id, clock: Clock) -> None:
    result = ledger.add(user_id, 40, "purchase", {"payment_id": "pay_1"})
    assert result.balance == 40
    account = ledger.get_account(user_id)
    assert (account.balance, account.held, account.created_at) == (40, 0, clock.now_ms)
    assert ledger.add(user_id, 2, "refund").balance == 42


def test_add_past_the_bound_is_refused(ledger, user_id, redis_client) -> None:
    ledger.add(user_id, AMOUNT_MAX - 5, "grant")
    before = store_snapshot(redis_client, f"*{user_id}*")
    with pytest.raises(LimitExceededError) as refused:
        ledger.add(user_id, 6, "grant")
    assert (refused.value.limit, refused.value.used, refused.value.requested) == (
        "balance_total",
        AMOUNT_MAX - 5,
        6,
    )
    assert refused.value.outcome_known
    assert store_snapshot(redis_client, f"*{user_id}*") == before
    assert ledger.add(user_id, 5, "grant").balance == AMOUNT_MAX
    assert ledger.verify_balance(user_id).valid


def test_transactions_newest_first_with_limit(ledger, user_id, clock: Clock) -> None:
    ledger.initialize_user(user_id, 1000)
    for i in range(1, 6):
        clock.advance(1)
        ledger.deduct(user_id, i, "chat_message")
    txs = ledger.get_transactions(user_id, limit=3)
    assert [tx.amount for tx in txs] == [5, 4, 3]
    assert [tx.balance_after for tx in txs] == [1000 - 15, 1000 - 10, 1000 - 6]
    assert txs[0].timestamp > txs[1].timestamp > txs[2].timestamp
    assert len(ledger.get_transactions(user_id, limit=1000)) == 6


def test_transactions_time_range_is_inclusive(ledger, user_id, clock: Clock) -> None:
    ledger.initialize_user(user_id, 1000)
    stamps = []
    for _ in range(5):
        clock.advance(60)
        stamps.append(ledger.deduct(user_id, 1, "chat_message").timestamp)
    within = ledger.get_transactions(user_id, start_time=stamps[1], end_time=stamps[3])
    assert [tx.timestamp for tx in within] == [stamps[3], stamps[2], stamps[1]]
    since = ledger.get_transactions(user_id, start_time=stamps[3])
    assert [tx.timestamp for tx in since] == [stamps[4], stamps[3]]
    until = ledger.get_transactions(user_id, end_time=stamps[0], limit=10)
    assert [tx.type for tx in until] == ["deduct", "initialize"]
    limited = ledger.get_transactions(user_id, start_time=stamps[0], end_time=stamps[4], limit=2)
    assert [tx.timestamp for tx in limited] == [stamps[4], stamps[3]]


@BOTH_BACKENDS
def test_time_ranges_under_freezegun_with_an_explicit_clock(backend: Backend, user_id) -> None:
    # clock= is the explicit override for tests and imports; time.time is looked up
    # at each call, so freezegun drives it.
    explicit = backend.credits(clock=lambda: time.time())
    with explicit as client, freeze_time("2026-03-01 12:00:00") as frozen:
        client.initialize_user(user_id, 100)
        frozen.tick(3600)
        noon_plus_1h = client.deduct(user_id, 1, "chat_message").timestamp
        frozen.tick(3600)
        client.deduct(user_id, 2, "chat_message")
        assert noon_plus_1h == 1772366400000 + 3600_000  # 2026-03-01T13:00Z
        hour = client.get_transactions(
            user_id, start_time=noon_plus_1h - 1000, end_time=noon_plus_1h + 1000
        )
        assert [tx.amount for tx in hour] == [1]


def test_log_ids_stay_ordered_when_the_clock_steps_back(ledger, user_id, clock: Clock) -> None:
    ledger.initialize_user(user_id, 100)
    first = ledger.deduct(user_id, 1, "chat_message")
    clock.advance(-30)
    second = ledger.deduct(user_id, 1, "chat_message")
    assert second.timestamp == first.timestamp
    assert [tx.tx_id for tx in ledger.get_transactions(user_id, limit=2)] == [
        second.tx_id,
        first.tx_id,
    ]


def test_idempotent_deduct_replays_first_result(ledger, user_id, clock: Clock) -> None:
    ledger.initialize_user(user_id, 100)
    first = ledger.deduct(user_id, 10, "chat_message", {"m": 1}, idempotency_key="msg-1")
    clock.advance(10)
    again = ledger.deduct(user_id, 10, "chat_message", {"m": 1}, idempotency_key="msg-1")
    assert again == first
    assert ledger.get_balance(user_id) == 90
    assert len(ledger.get_transactions(user_id)) == 2


@pytest.mark.parametrize(
    "changed",
    [
        {"amount": 11},
        {"action": "canvas_generation_simple"},
        {"metadata": {"m": 2}},
    ],
)
def test_idempotency_conflict_writes_nothing(ledger, user_id, redis_client, changed) -> None:
    ledger.initialize_user(user_id, 100)
    call = {"amount": 10, "action": "chat_message", "metadata": {"m": 1}}
    ledger.deduct(user_id, **call, idempotency_key="msg-1")
    before = store_snapshot(redis_client, f"*{user_id}*")
    with pytest.raises(IdempotencyConflictError) as caught:
        ledger.deduct(user_id, **{**call, **changed}, idempotency_key="msg-1")
    assert caught.value.idempotency_key == "msg-1"
    assert store_snapshot(redis_client, f"*{user_id}*") == before


def test_idempotency_keys_are_per_operation_and_live_a_day(ledger, user_id, store) -> None:
    ledger.add(user_id, 50, "purchase", idempotency_key="pay-1")
    assert ledger.add(user_id, 50, "purchase", idempotency_key="pay-1").balance == 50
    with pytest.raises(IdempotencyConflictError):
        ledger.deduct(user_id, 50, "purchase", idempotency_key="pay-1")
    ttl_ms = store.pttl(user_keys(user_id).idempotency("pay-1"))
    assert ttl_ms >= 24 * 3600 * 1000


def test_insufficient_deduct_does_not_claim_its_key(ledger, user_id) -> None:
    ledger.initialize_user(user_id, 5)
    with pytest.raises(InsufficientCreditsError):
        ledger.deduct(user_id, 10, "chat_message", idempotency_key="k")
    ledger.add(user_id, 5, "purchase")
    assert ledger.deduct(user_id, 10, "chat_message", idempotency_key="k").balance == 0


def test_verify_and_rebuild_after_corruption(ledger, user_id, store) -> None:
    ledger.initialize_user(user_id, 100)
    ledger.deduct(user_id, 30, "chat_message")
    ledger.add(user_id, 5, "refund")
    ok = ledger.verify_balance(user_id)
    assert (ok.valid, ok.cached, ok.calculated, ok.difference, ok.events) == (True, 75, 75, 0, 3)

    store.hset(user_keys(user_id).account, "bal", 1000)  # behind the client's back
    bad = ledger.verify_balance(user_id)
    assert (bad.valid, bad.cached, bad.calculated, bad.difference) == (False, 1000, 75, 925)
    assert ledger.verify_balance(user_id) == bad  # verify changes nothing

    assert ledger.rebuild_balance(user_id) == 75
    assert ledger.get_balance(user_id) == 75
    assert ledger.verify_balance(user_id).valid


def test_verify_unknown_user_is_valid_zero(ledger, user_id) -> None:
    result = ledger.verify_balance(user_id)
    assert (result.valid, result.cached, result.calculated) == (True, 0, 0)
    assert ledger.rebuild_balance(user_id) == 0
    assert ledger.get_account(user_id).created_at is None


@BOTH_BACKENDS
def test_context_managers_close(backend: Backend, clock: Clock) -> None:
    import asyncio

    with backend.credits(clock=clock) as client:
        assert client.get_balance("nobody-ctx") == 0

    async def use() -> int:
        async with backend.async_credits(clock=clock) as client:
            return await client.get_balance("nobody-ctx")

    assert asyncio.run(use()) == 0
