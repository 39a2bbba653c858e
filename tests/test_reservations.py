"""Reserve → run → settle, on both clients: every settle rule, expiry both ways, extend, reads."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from ledger_fixtures import BOTH_BACKENDS, Backend, Clock, store_snapshot

from credits import Reservation, Settlement
from credits.errors import (
    IdempotencyConflictError,
    InsufficientCreditsError,
    LimitExceededError,
    ReservationClosedError,
    ReservationNotFoundError,
)
from credits.keys import new_hold_id, reservation_id, user_keys
from credits.limits import OPEN_HOLDS_PER_USER_MAX

TTL_S = 600


@pytest.fixture
def funded(ledger: Any, user_id: str) -> Any:
    ledger.initialize_user(user_id, 1000)
    return ledger


def _hold(ledger: Any, user_id: str, amount: int = 300, ttl: Any = TTL_S) -> Reservation:
    return ledger.reserve(user_id, amount, "video_generation", ttl=ttl, metadata={"job": "v1"})


def test_reserve_moves_balance_to_held(funded: Any, user_id: str, clock: Clock) -> None:
    hold = _hold(funded, user_id)
    assert (hold.user_id, hold.amount, hold.action, hold.status) == (
        user_id,
        300,
        "video_generation",
        "open",
    )
    assert hold.created_at == clock.now_ms
    assert hold.expires_at == clock.now_ms + TTL_S * 1000
    assert hold.metadata == {"job": "v1"}
    account = funded.get_account(user_id)
    assert (account.balance, account.held) == (700, 300)
    assert funded.get_reservation(hold.id) == hold
    (tx,) = funded.get_transactions(user_id, limit=1)
    assert (tx.type, tx.amount, tx.balance_delta, tx.held_delta, tx.reservation_id) == (
        "reserve",
        300,
        -300,
        300,
        hold.id,
    )


def test_reserve_accepts_a_timedelta(funded: Any, user_id: str, clock: Clock) -> None:
    hold = _hold(funded, user_id, ttl=timedelta(hours=2))
    assert hold.expires_at == clock.now_ms + 2 * 3600 * 1000


def test_reserve_insufficient_writes_nothing(funded: Any, user_id: str, redis_client: Any) -> None:
    before = store_snapshot(redis_client, f"*{user_id}*")
    with pytest.raises(InsufficientCreditsError) as caught:
        _hold(funded, user_id, amount=1001)
    assert (caught.value.required, caught.value.available) == (1001, 1000)
    assert store_snapshot(redis_client, f"*{user_id}*") == before


def test_reserve_for_unknown_user(ledger: Any, user_id: str) -> None:
    with pytest.raises(InsufficientCreditsError) as caught:
        _hold(ledger, user_id, amount=1)
    assert caught.value.available == 0


def test_settle_under_the_hold_returns_the_rest(funded: Any, user_id: str) -> None:
    hold = _hold(funded, user_id)
    settlement = funded.settle(hold.id, 120, {"seconds": 12})
    assert settlement == Settlement(
        tx_id=settlement.tx_id,
        reservation_id=hold.id,
        charged=120,
        released=180,
        shortfall=0,
        balance=880,
        late=False,
    )
    account = funded.get_account(user_id)
    assert (account.balance, account.held) == (880, 0)
    closed = funded.get_reservation(hold.id)
    assert (closed.status, closed.closed_at is not None) == ("settled", True)
    (tx,) = funded.get_transactions(user_id, limit=1)
    assert (tx.type, tx.amount, tx.balance_delta, tx.held_delta, tx.metadata) == (
        "settle",
        120,
        180,
        -300,
        {"seconds": 12},
    )


def test_settle_exact(funded: Any, user_id: str) -> None:
    hold = _hold(funded, user_id)
    settlement = funded.settle(hold.id, 300)
    assert (settlement.charged, settlement.released, settlement.shortfall, settlement.balance) == (
        300,
        0,
        0,
        700,
    )


def test_settle_zero_charges_nothing(funded: Any, user_id: str) -> None:
    hold = _hold(funded, user_id)
    assert funded.settle(hold.id, 0).balance == 1000


def test_overage_covered_by_the_balance(funded: Any, user_id: str) -> None:
    hold = _hold(funded, user_id)
    settlement = funded.settle(hold.id, 450)
    assert (settlement.charged, settlement.released, settlement.shortfall, settlement.balance) == (
        450,
        0,
        0,
        550,
    )


def test_overage_beyond_the_balance_is_a_recorded_shortfall(ledger: Any, user_id: str) -> None:
    ledger.initialize_user(user_id, 400)
    hold = _hold(ledger, user_id)  # balance 100 left
    settlement = ledger.settle(hold.id, 500)
    assert (settlement.charged, settlement.released, settlement.shortfall, settlement.balance) == (
        400,
        0,
        100,
        0,
    )
    (tx,) = ledger.get_transactions(user_id, limit=1)
    assert (tx.amount, tx.shortfall, tx.balance_after, tx.late) == (400, 100, 0, False)
    assert ledger.verify_balance(user_id).valid


def test_settle_twice_returns_the_first(funded: Any, user_id: str, clock: Clock) -> None:
    hold = _hold(funded, user_id)
    first = funded.settle(hold.id, 100)
    clock.advance(3600)
    assert funded.settle(hold.id, 100) == first
    assert funded.settle(hold.id, 999) == first  # a second webhook never charges more
    assert funded.get_balance(user_id) == 900
    assert [tx.type for tx in funded.get_transactions(user_id)].count("settle") == 1


def test_release_returns_everything(funded: Any, user_id: str) -> None:
    hold = _hold(funded, user_id)
    released = funded.release(hold.id, reason="provider failed")
    assert (released.charged, released.released, released.shortfall, released.balance) == (
        0,
        300,
        0,
        1000,
    )
    assert funded.release(hold.id) == released
    assert funded.get_reservation(hold.id).status == "released"
    (tx,) = funded.get_transactions(user_id, limit=1)
    assert (tx.type, tx.metadata) == ("release", {"reason": "provider failed"})


def test_closed_holds_refuse_what_they_must(funded: Any, user_id: str) -> None:
    released = _hold(funded, user_id)
    funded.release(released.id)
    with pytest.raises(ReservationClosedError) as caught:
        funded.settle(released.id, 10)
    assert (caught.value.status, caught.value.operation) == ("released", "settle")
    with pytest.raises(ReservationClosedError):
        funded.extend(released.id, 60)
    settled = _hold(funded, user_id)
    funded.settle(settled.id, 10)
    with pytest.raises(ReservationClosedError):
        funded.release(settled.id)
    with pytest.raises(ReservationClosedError):
        funded.extend(settled.id, 60)


def test_unknown_reservation(funded: Any, user_id: str) -> None:
    missing = reservation_id(user_keys(user_id), new_hold_id())
    for call in (
        lambda: funded.settle(missing, 1),
        lambda: funded.release(missing),
        lambda: funded.extend(missing, 60),
        lambda: funded.get_reservation(missing),
    ):
        with pytest.raises(ReservationNotFoundError) as caught:
            call()
        assert caught.value.reservation_id == missing


def test_lazy_expiry_on_the_next_operation(funded: Any, user_id: str, clock: Clock) -> None:
    hold = _hold(funded, user_id, ttl=60)
    clock.advance(59.999)
    assert funded.get_account(user_id).held == 300
    clock.advance(0.001)  # expires_at itself is expired
    account = funded.get_account(user_id)
    assert (account.balance, account.held) == (1000, 0)
    expired = funded.get_reservation(hold.id)
    assert (expired.status, expired.closed_at) == ("expired", clock.now_ms)
    (tx,) = funded.get_transactions(user_id, limit=1)
    assert (tx.type, tx.amount, tx.balance_delta, tx.held_delta, tx.reservation_id) == (
        "expire",
        300,
        300,
        -300,
        hold.id,
    )
    with pytest.raises(ReservationClosedError):
        funded.release(hold.id)
    with pytest.raises(ReservationClosedError):
        funded.extend(hold.id, 60)


def test_lazy_expiry_before_a_deduct_makes_room(funded: Any, user_id: str, clock: Clock) -> None:
    _hold(funded, user_id, amount=1000, ttl=60)
    with pytest.raises(InsufficientCreditsError):
        funded.deduct(user_id, 10, "chat_message")
    clock.advance(61)
    assert funded.deduct(user_id, 10, "chat_message").balance == 990
    assert [tx.type for tx in funded.get_transactions(user_id, limit=2)] == ["deduct", "expire"]


def test_late_settle_charges_from_the_balance(funded: Any, user_id: str, clock: Clock) -> None:
    hold = _hold(funded, user_id, ttl=60)
    clock.advance(3600)  # the webhook comes an hour late
    settlement = funded.settle(hold.id, 250)
    assert (settlement.charged, settlement.released, settlement.shortfall, settlement.late) == (
        250,
        0,
        0,
        True,
    )
    assert settlement.balance == 750
    assert funded.get_reservation(hold.id).status == "settled"
    assert funded.settle(hold.id, 250) == settlement
    types = [tx.type for tx in funded.get_transactions(user_id, limit=3)]
    assert types == ["settle", "expire", "reserve"]
    assert funded.get_transactions(user_id, limit=1)[0].late
    assert funded.verify_balance(user_id).valid


def test_late_settle_with_overage_records_shortfall(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    ledger.initialize_user(user_id, 300)
    hold = _hold(ledger, user_id, ttl=60)
    clock.advance(120)
    ledger.deduct(user_id, 250, "chat_message")  # the expired hold came back first
    settlement = ledger.settle(hold.id, 100)
    assert (settlement.charged, settlement.shortfall, settlement.balance, settlement.late) == (
        50,
        50,
        0,
        True,
    )


def test_extend_is_a_heartbeat(funded: Any, user_id: str, clock: Clock) -> None:
    hold = _hold(funded, user_id, ttl=60)
    clock.advance(50)
    extended = funded.extend(hold.id, 60)
    assert extended.expires_at == clock.now_ms + 60_000
    shorter = funded.extend(hold.id, 1)
    assert shorter.expires_at == extended.expires_at  # never earlier than it was
    clock.advance(59)
    funded.expire_reservations()  # other tests' holds may be due; this one is not
    assert funded.get_reservation(hold.id).status == "open"
    clock.advance(1)
    assert funded.get_reservation(hold.id).status == "expired"


@BOTH_BACKENDS
def test_sweep_expires_holds_of_users_who_never_return(
    backend: Backend, unique_user: Any, clock: Clock
) -> None:
    with backend.credits(clock=clock) as client:
        users = [unique_user() for _ in range(20)]
        holds = []
        for user in users:
            client.initialize_user(user, 100)
            holds.append(client.reserve(user, 40, "training_job", ttl=60))
            client.reserve(user, 10, "training_job", ttl=3600)  # not due
        clock.advance(61)
        assert client.expire_reservations() >= 20
        assert client.expire_reservations() == 0
        store = client.redis
        for user, hold in zip(users, holds, strict=True):
            account = store.hmget(user_keys(user).account, "bal", "held")
            assert account == ["90", "10"]  # read raw: nobody touched the user since
            assert client.get_reservation(hold.id).status == "expired"


@BOTH_BACKENDS
def test_sweep_in_small_batches_closes_many_holds_of_one_user(
    backend: Backend, user_id: str, clock: Clock
) -> None:
    with backend.credits(clock=clock) as client:
        client.initialize_user(user_id, 1000)
        for _ in range(150):  # more than one lazy-expiry call closes
            client.reserve(user_id, 1, "video_generation", ttl=10)
        clock.advance(11)
        assert client.expire_reservations(batch_size=7) == 150
        assert client.redis.hmget(user_keys(user_id).account, "bal", "held") == ["1000", "0"]
        assert client.verify_balance(user_id).valid


def test_one_sweep_closes_every_due_hold_of_a_user(
    backend: Backend, user_id: str, clock: Clock
) -> None:
    """A user with more due holds than lazy expiry closes per call still needs one sweep."""
    with backend.credits(clock=clock) as client:
        client.initialize_user(user_id, 1000)
        for _ in range(150):
            client.reserve(user_id, 1, "video_generation", ttl=10)
        clock.advance(11)
        assert client.expire_reservations() >= 150
        assert client.redis.hmget(user_keys(user_id).account, "bal", "held") == ["1000", "0"]


def test_upkeep_hints_never_hide_a_due_hold(funded: Any, user_id: str, clock: Clock) -> None:
    """The account's next-expiry hint may only be early: a shorter hold after a longer one."""
    long = _hold(funded, user_id, amount=100, ttl=3600)
    short = _hold(funded, user_id, amount=50, ttl=60)
    funded.extend(long.id, 7200)
    clock.advance(61)
    assert funded.get_account(user_id).held == 100
    assert funded.get_reservation(short.id).status == "expired"
    funded.settle(long.id, 10)
    clock.advance(7200)
    assert funded.get_account(user_id).held == 0
    assert funded.get_balance(user_id) == 990


def test_reads_list_and_filter(funded: Any, user_id: str, clock: Clock) -> None:
    a = _hold(funded, user_id, amount=10, ttl=100)
    b = _hold(funded, user_id, amount=20, ttl=50)
    c = _hold(funded, user_id, amount=30)
    funded.settle(c.id, 5)
    listed = funded.list_reservations(user_id)
    assert [r.id for r in listed] == [b.id, a.id, c.id]
    assert [r.id for r in funded.list_reservations(user_id, "open")] == [b.id, a.id]
    assert [r.id for r in funded.list_reservations(user_id, "settled")] == [c.id]
    assert funded.list_reservations(user_id, "expired") == []
    assert len(funded.list_reservations(user_id, limit=1)) == 1
    clock.advance(60)
    assert [r.id for r in funded.list_reservations(user_id, "expired")] == [b.id]
    assert funded.get_account(user_id).held == 10


def test_idempotent_reserve(funded: Any, user_id: str, clock: Clock) -> None:
    first = funded.reserve(user_id, 100, "training_job", ttl=60, idempotency_key="job-7")
    clock.advance(1)
    again = funded.reserve(user_id, 100, "training_job", ttl=60, idempotency_key="job-7")
    assert again == first
    assert funded.get_account(user_id).held == 100
    with pytest.raises(IdempotencyConflictError):
        funded.reserve(user_id, 101, "training_job", ttl=60, idempotency_key="job-7")


def test_a_fresh_client_settles_from_the_id_alone(
    funded: Any, user_id: str, backend: Backend, clock: Clock
) -> None:
    hold = _hold(funded, user_id)
    with backend.credits(clock=clock) as stranger:
        assert stranger.settle(hold.id, 100).balance == 900


@BOTH_BACKENDS
def test_open_holds_per_user_are_bounded(backend: Backend, user_id: str, clock: Clock) -> None:
    with backend.credits(clock=clock) as client:
        client.initialize_user(user_id, 10_000)
        for _ in range(OPEN_HOLDS_PER_USER_MAX):
            client.reserve(user_id, 1, "video_generation", ttl=600)
        with pytest.raises(LimitExceededError, match="open_holds") as refused:
            client.reserve(user_id, 1, "video_generation", ttl=600)
        assert refused.value.amount == refused.value.used == OPEN_HOLDS_PER_USER_MAX
        assert client.get_account(user_id).held == OPEN_HOLDS_PER_USER_MAX


@BOTH_BACKENDS
def test_threads_reserving_never_hold_more_than_the_balance(backend: Backend, user_id: str) -> None:
    with backend.credits() as setup:
        setup.initialize_user(user_id, 500)
    won: list[Reservation] = []
    lock = threading.Lock()

    def worker() -> None:
        with backend.credits() as client:
            for _ in range(30):
                try:
                    hold = client.reserve(user_id, 7, "video_generation", ttl=600)
                except InsufficientCreditsError:
                    continue
                with lock:
                    won.append(hold)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with backend.credits() as check:
        account = check.get_account(user_id)
        assert account.held == 7 * len(won) == 7 * (500 // 7)
        assert account.balance == 500 - account.held
        assert check.verify_balance(user_id).valid


@BOTH_BACKENDS
def test_settle_racing_the_sweep_at_the_expiry_instant(
    backend: Backend, unique_user: Any, clock: Clock
) -> None:
    """At exactly expires_at both the sweep and a settle may reach a hold first: it closes once."""
    with backend.credits(clock=clock) as client:
        users = [unique_user() for _ in range(30)]
        holds = []
        for user in users:
            client.initialize_user(user, 100)
            holds.append(client.reserve(user, 60, "video_generation", ttl=30))
        clock.advance(30)  # now == expires_at for every hold

        def settle_all() -> None:
            with backend.credits(clock=clock) as settler:
                for hold in holds:
                    settler.settle(hold.id, 50)

        def sweep() -> None:
            with backend.credits(clock=clock) as sweeper:
                sweeper.expire_reservations(batch_size=3)

        threads = [threading.Thread(target=settle_all), threading.Thread(target=sweep)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for user, hold in zip(users, holds, strict=True):
            txs = client.get_transactions(user)
            closes = [tx for tx in txs if tx.held_delta < 0]
            assert len(closes) == 1, [tx.type for tx in txs]
            assert [tx.type for tx in txs].count("settle") == 1
            assert client.get_account(user).held == 0
            assert client.get_balance(user) == 50  # charged 50 either way, late or not
            assert client.get_reservation(hold.id).status == "settled"
            assert client.verify_balance(user).valid


def test_closed_holds_are_forgotten_after_the_retention(
    funded: Any, user_id: str, clock: Clock
) -> None:
    from credits.limits import CLOSED_HOLD_RETENTION_MS

    hold = _hold(funded, user_id)
    first = funded.settle(hold.id, 100)
    clock.advance(CLOSED_HOLD_RETENTION_MS / 1000 - 1)
    assert funded.settle(hold.id, 100) == first  # a very late duplicate still gets its answer
    clock.advance(2)
    funded.deduct(user_id, 1, "chat_message")  # any call of the user purges
    with pytest.raises(ReservationNotFoundError):
        funded.get_reservation(hold.id)
    assert funded.verify_balance(user_id).valid  # the log keeps every event
