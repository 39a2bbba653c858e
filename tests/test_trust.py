"""Trust: the server's clock decides, bounds never leak into answers, hostile input, lost caches.

Each test here failed before the change it covers (docs/RELIABILITY.md, "Trust").
"""

from __future__ import annotations

import enum
import time
from datetime import timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from ledger_fixtures import BOTH_BACKENDS, Backend, Clock, store_snapshot

from credits import BulkItem
from credits.errors import (
    BalanceVerificationError,
    IdempotencyConflictError,
    InvalidInputError,
    ReservationClosedError,
    ReservationNotFoundError,
)
from credits.keys import user_keys
from credits.limits import (
    CLOSED_HOLD_RETENTION_MS,
    LAZY_EXPIRE_PER_CALL_MAX,
    METADATA_DEPTH_MAX,
    TRANSACTIONS_LIMIT_MAX,
)

DAY_S = 24 * 3600

# --------------------------------------------------------------------------- the server's clock


@BOTH_BACKENDS
def test_app_servers_with_skewed_clocks_agree_on_the_servers_time(
    backend: Backend, user_id: str
) -> None:
    """Two hosts, one ten minutes fast and one ten minutes slow, both with default clocks.

    Neither can expire the other's hold, revive an expired one, create one
    expired at birth, or stamp events with its own time.
    """
    fast_host, slow_host = backend.credits(), backend.credits()
    with fast_host, slow_host:
        real_ms = int(time.time() * 1000)
        with freeze_time(timedelta(minutes=10), tick=True):  # this host's clock runs fast
            fast_host.initialize_user(user_id, 1000)
            fast_hold = fast_host.reserve(user_id, 100, "video_generation", ttl=300)
        with freeze_time(timedelta(minutes=-10), tick=True):  # this one runs slow
            slow_hold = slow_host.reserve(user_id, 100, "video_generation", ttl=300)
            # the fast host's hold is not expired by the slow host's read, nor vice versa
            assert slow_host.get_account(user_id).held == 200
            assert slow_host.get_reservation(fast_hold.id).status == "open"
            # a heartbeat from the slow host keeps its hold alive (not "expired at birth")
            extended = slow_host.extend(slow_hold.id, 600)
        with freeze_time(timedelta(minutes=10), tick=True):
            assert fast_host.get_reservation(slow_hold.id).status == "open"
            assert fast_host.get_account(user_id).held == 200
        for hold in (fast_hold, slow_hold):
            # both expiries are the server's now + ttl, whatever the hosts' clocks said
            assert abs(hold.expires_at - (real_ms + 300_000)) < 60_000
        assert abs(extended.expires_at - (real_ms + 600_000)) < 60_000
        stamps = [tx.timestamp for tx in fast_host.get_transactions(user_id)]
        assert all(abs(stamp - real_ms) < 60_000 for stamp in stamps), stamps


@BOTH_BACKENDS
def test_a_host_a_month_ahead_cannot_stamp_or_purge_with_its_clock(
    backend: Backend, user_id: str
) -> None:
    with backend.credits() as client:
        client.initialize_user(user_id, 100)
        hold = client.reserve(user_id, 10, "video_generation", ttl=60)
        client.release(hold.id)
        with freeze_time(timedelta(days=31), tick=True):
            result = client.deduct(user_id, 1, "chat_message")
            # the closed hold is still readable: the host's month-ahead clock purged nothing
            assert client.get_reservation(hold.id).status == "released"
        assert abs(result.timestamp - time.time() * 1000) < 60_000
        later = client.deduct(user_id, 1, "chat_message")
        assert later.timestamp >= result.timestamp


def test_an_explicit_clock_is_an_override_for_tests_and_imports(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    ledger.initialize_user(user_id, 100)
    hold = ledger.reserve(user_id, 10, "video_generation", ttl=60)
    assert hold.created_at == clock.now_ms
    assert hold.expires_at == clock.now_ms + 60_000


# --------------------------------------------------------------------------- exactness under bounds

MANY = LAZY_EXPIRE_PER_CALL_MAX + 36  # more expired holds than one call may close


def _many_expired_holds(ledger: Any, user_id: str, clock: Clock) -> list[Any]:
    ledger.initialize_user(user_id, MANY * 10)
    holds = [ledger.reserve(user_id, 10, "video_generation", ttl=60) for _ in range(MANY)]
    clock.advance(61)
    return holds


def test_a_deduct_of_the_whole_freed_balance_succeeds_past_the_per_call_bound(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    _many_expired_holds(ledger, user_id, clock)
    result = ledger.deduct(user_id, MANY * 10, "training_job")
    assert result.balance == 0
    assert ledger.get_account(user_id).held == 0
    assert ledger.verify_balance(user_id).valid


def test_an_expired_hold_past_the_bound_is_never_revived_and_settles_late(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    holds = _many_expired_holds(ledger, user_id, clock)
    last = holds[-1]  # expires with the others; more than one call's upkeep is before it
    with pytest.raises(ReservationClosedError) as refused:
        ledger.extend(last.id, 600)
    assert refused.value.status == "expired"
    settlement = ledger.settle(holds[-2].id, 5)
    assert settlement.late is True
    assert settlement.charged == 5
    assert ledger.get_account(user_id).held == 0


def test_reads_and_bulk_calls_finish_the_upkeep_too(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    _many_expired_holds(ledger, user_id, clock)
    (result,) = ledger.deduct_many([BulkItem(user_id, MANY * 10, "chat_message")])
    assert not isinstance(result, Exception), result
    assert result.balance == 0


# --------------------------------------------------------------------------- hostile input


def test_metadata_deeper_than_the_bound_is_refused_before_writing(
    ledger: Any, user_id: str, redis_client: Any
) -> None:
    ledger.initialize_user(user_id, 100)
    deep: Any = "leaf"
    for _ in range(990):
        deep = {"x": deep}
    before = store_snapshot(redis_client, f"*{user_id}*")
    for call in (
        lambda: ledger.deduct(user_id, 1, "chat_message", deep),
        lambda: ledger.reserve(user_id, 1, "video_generation", ttl=60, metadata=deep),
        lambda: ledger.add(user_id, 1, "grant", {"list": [deep]}),
    ):
        with pytest.raises(InvalidInputError, match="deeper than"):
            call()
    assert store_snapshot(redis_client, f"*{user_id}*") == before
    ok: Any = "leaf"
    for _ in range(METADATA_DEPTH_MAX - 1):
        ok = {"x": ok}
    ledger.deduct(user_id, 1, "chat_message", {"deep": ok})  # exactly the bound: accepted
    assert ledger.get_transactions(user_id, limit=1)[0].metadata == {"deep": ok}


def test_metadata_keys_must_be_strings(ledger: Any, user_id: str) -> None:
    ledger.initialize_user(user_id, 100)
    for bad in ({1: "a", "1": "b"}, {"nested": {2: "x"}}, {"list": [{None: 1}]}):
        with pytest.raises(InvalidInputError, match="keys must be str"):
            ledger.deduct(user_id, 1, "chat_message", bad)
    assert ledger.get_balance(user_id) == 100


def test_equal_metadata_in_another_order_is_the_same_call(ledger: Any, user_id: str) -> None:
    ledger.initialize_user(user_id, 100)
    first = ledger.deduct(
        user_id, 5, "chat_message", {"a": 1, "b": {"y": 2, "x": 1}}, idempotency_key="k1"
    )
    again = ledger.deduct(
        user_id, 5, "chat_message", {"b": {"x": 1, "y": 2}, "a": 1}, idempotency_key="k1"
    )
    assert again == first
    with pytest.raises(IdempotencyConflictError):
        ledger.deduct(user_id, 5, "chat_message", {"a": 2, "b": {}}, idempotency_key="k1")
    assert ledger.get_balance(user_id) == 95


def test_only_the_canonical_reservation_id_is_accepted(ledger: Any, user_id: str) -> None:
    ledger.initialize_user(user_id, 100)
    hold = ledger.reserve(user_id, 10, "video_generation", ttl=60)
    bucket = user_keys(user_id).bucket
    _, tag, rest = hold.id.split(":", 2)
    variants = [
        hold.id.replace(f"{{b{bucket}}}", f"{{b0{bucket}}}"),  # a leading zero
        hold.id.upper(),
        hold.id + " ",
        " " + hold.id,
        hold.id[:-1] + "\ud800",  # a lone surrogate
        hold.id.encode(),  # bytes
        f"rsv:{tag}:{rest}:extra",
    ]
    for variant in variants:
        with pytest.raises(InvalidInputError):
            ledger.get_reservation(variant)
        with pytest.raises(InvalidInputError):
            ledger.settle(variant, 1)
    assert ledger.get_reservation(hold.id).status == "open"


class Credits(enum.IntEnum):
    TEN = 10


def test_int_subclasses_are_their_value_and_bools_are_refused(ledger: Any, user_id: str) -> None:
    ledger.initialize_user(user_id, 100)
    assert ledger.deduct(user_id, Credits.TEN, "chat_message").balance == 90
    hold = ledger.reserve(user_id, Credits.TEN, "video_generation", ttl=Credits.TEN)
    assert hold.amount == 10 and hold.expires_at - hold.created_at == 10_000
    for bad in (True, 10.0, "10", None):
        with pytest.raises(InvalidInputError):
            ledger.deduct(user_id, bad, "chat_message")
    assert ledger.get_balance(user_id) == 80


def test_unicode_ids_round_trip_and_undecodable_text_is_refused(ledger: Any) -> None:
    user = "ユーザー-" + "🚀" * 3 + "-{b7}:%3A"
    ledger.initialize_user(user, 50)
    hold = ledger.reserve(user, 5, "vidéo", ttl=60, metadata={"emoji": "🎬", "ключ": "значение"})
    assert ledger.get_reservation(hold.id).metadata == {"emoji": "🎬", "ключ": "значение"}
    assert ledger.get_reservation(hold.id).user_id == user
    for bad in ("\ud800", "a\udfffb"):
        with pytest.raises(InvalidInputError):
            ledger.deduct(bad, 1, "chat_message")
        with pytest.raises(InvalidInputError):
            ledger.deduct(user, 1, "chat_message", idempotency_key=bad)
        with pytest.raises(InvalidInputError):
            ledger.deduct(user, 1, "chat_message", {"k": bad})


# --------------------------------------------------------------------------- a lost account hash


def _lose_the_account_hash(store: Any, user_id: str) -> None:
    assert store.delete(user_keys(user_id).account) == 1


def test_a_lost_account_hash_is_found_restored_and_never_granted_twice(
    ledger: Any, user_id: str, store: Any, redis_client: Any
) -> None:
    ledger.initialize_user(user_id, 100)
    ledger.deduct(user_id, 30, "chat_message")
    hold = ledger.reserve(user_id, 20, "video_generation", ttl=600)
    _lose_the_account_hash(store, user_id)

    verification = ledger.verify_balance(user_id)
    assert not verification.valid
    assert verification.calculated == 50 and verification.held_calculated == 20
    assert any("missing" in problem for problem in verification.problems)
    assert ledger.reconcile().invalid >= 1

    before = store_snapshot(redis_client, f"*{user_id}*")
    for refused in (
        lambda: ledger.initialize_user(user_id, 100),
        lambda: ledger.add(user_id, 5, "grant"),
        lambda: ledger.deduct(user_id, 1, "chat_message"),
        lambda: ledger.reserve(user_id, 1, "video_generation", ttl=60),
        lambda: ledger.settle(hold.id, 5),
        lambda: ledger.get_balance(user_id),
    ):
        with pytest.raises(BalanceVerificationError, match="rebuild"):
            refused()
    assert store_snapshot(redis_client, f"*{user_id}*") == before  # nothing left behind

    assert ledger.rebuild_balance(user_id) == 50
    assert ledger.verify_balance(user_id).valid
    account = ledger.get_account(user_id)
    assert (account.balance, account.held) == (50, 20)
    assert account.created_at is not None
    assert ledger.initialize_user(user_id, 100).balance == 100  # the first result, not a grant
    assert ledger.get_balance(user_id) == 50
    assert ledger.settle(hold.id, 5).charged == 5
    assert ledger.verify_balance(user_id).valid


def test_a_stale_cached_log_end_is_invalid(ledger: Any, user_id: str, store: Any) -> None:
    ledger.initialize_user(user_id, 100)
    ledger.deduct(user_id, 1, "chat_message")
    account = user_keys(user_id).account
    store.hset(account, "lid", "1-0")
    assert not ledger.verify_balance(user_id).valid
    ledger.rebuild_balance(user_id)
    assert ledger.verify_balance(user_id).valid


def test_a_refused_initialize_creates_no_account(ledger: Any, user_id: str, store: Any) -> None:
    from credits.errors import LimitExceededError
    from credits.limits import AMOUNT_MAX

    with pytest.raises(InvalidInputError):
        ledger.initialize_user(user_id, AMOUNT_MAX + 1)
    ledger.add(user_id, AMOUNT_MAX, "grant")
    other = user_id + "-b"
    ledger.add(other, AMOUNT_MAX - 1, "grant")
    with pytest.raises(LimitExceededError):
        ledger.initialize_user(other, 2)
    assert store.hget(user_keys(other).account, "init") is None


# --------------------------------------------------------------------------- history paging


def test_every_event_of_a_crowded_millisecond_is_reachable_by_cursor(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    ledger.initialize_user(user_id, 10_000)
    crowd = TRANSACTIONS_LIMIT_MAX + 200  # one bulk call stamps all its items alike
    items = [BulkItem(user_id, 1, "chat_message", {"i": i}) for i in range(crowd)]
    ledger.deduct_many(items[:1000])
    ledger.deduct_many(items[1000:])
    seen: list[str] = []
    page = ledger.get_transactions(user_id, limit=TRANSACTIONS_LIMIT_MAX)
    while page:
        seen += [tx.tx_id for tx in page]
        page = ledger.get_transactions(user_id, limit=TRANSACTIONS_LIMIT_MAX, before=seen[-1])
    assert len(seen) == crowd + 1 == len(set(seen))
    # and forwards, polling what is new with `after`
    forward: list[str] = []
    cursor = "0-0"  # the start of every log
    while True:
        page = ledger.get_transactions(user_id, limit=333, after=cursor)
        if not page:
            break
        forward += [tx.tx_id for tx in reversed(page)]
        cursor = page[0].tx_id
    assert forward == list(reversed(seen))


def test_cursors_and_time_ranges_combine(ledger: Any, user_id: str, clock: Clock) -> None:
    ledger.initialize_user(user_id, 100)
    stamps = []
    for _ in range(5):
        clock.advance(1)
        stamps.append(ledger.deduct(user_id, 1, "chat_message"))
    page = ledger.get_transactions(
        user_id, start_time=stamps[1].timestamp, before=stamps[3].tx_id, limit=10
    )
    assert [tx.tx_id for tx in page] == [stamps[2].tx_id, stamps[1].tx_id]
    page = ledger.get_transactions(user_id, end_time=stamps[3].timestamp, after=stamps[1].tx_id)
    assert [tx.tx_id for tx in page] == [stamps[3].tx_id, stamps[2].tx_id]
    for bad in ("nope", "01-0", "1-01", 5, "1-2-3"):
        with pytest.raises(InvalidInputError):
            ledger.get_transactions(user_id, before=bad)


def test_balance_at_any_time(ledger: Any, user_id: str, clock: Clock) -> None:
    start = clock.now_ms
    assert ledger.balance_at(user_id, start).tx_id is None
    first = ledger.initialize_user(user_id, 100)
    clock.advance(10)
    hold = ledger.reserve(user_id, 30, "video_generation", ttl=600)
    clock.advance(10)
    settled = ledger.settle(hold.id, 20)
    at_start = ledger.balance_at(user_id, start)
    assert (at_start.balance, at_start.held, at_start.tx_id) == (100, 0, first.tx_id)
    during = ledger.balance_at(user_id, start + 15_000)
    assert (during.balance, during.held, during.tx_id) == (70, 30, hold.tx_id)
    after = ledger.balance_at(user_id, clock.now_ms + 1)
    assert (after.balance, after.held, after.tx_id) == (80, 0, settled.tx_id)
    assert ledger.balance_at(user_id, start - 1).tx_id is None
    with pytest.raises(InvalidInputError):
        ledger.balance_at(user_id, None)


# --------------------------------------------------------------------------- retention


def test_retention_counts_from_the_holds_last_change(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    ledger.initialize_user(user_id, 100)
    hold = ledger.reserve(user_id, 10, "video_generation", ttl=60)
    clock.advance(61)
    assert ledger.get_account(user_id).held == 0  # expired
    clock.advance(20 * DAY_S)
    first = ledger.settle(hold.id, 4)  # a late webhook, 20 days on
    assert first.late
    clock.advance(20 * DAY_S)  # 40 days after it expired, 20 after the late settle
    assert ledger.settle(hold.id, 4) == first
    clock.advance(CLOSED_HOLD_RETENTION_MS / 1000 - 20 * DAY_S)
    with pytest.raises(ReservationNotFoundError):
        ledger.get_reservation(hold.id)  # exactly the retention after the last change
