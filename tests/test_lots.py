"""Credit lots: grants with their own expiry, start, priority, category and scope.

Every test runs on both clients, single Redis and Cluster (the ``ledger``
fixture), with an explicit clock standing for the server's.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ledger_fixtures import Clock, store_snapshot

from credits.errors import (
    InsufficientCreditsError,
    InvalidInputError,
    LimitExceededError,
    LotClosedError,
    LotNotFoundError,
)
from credits.keys import user_keys
from credits.limits import (
    FINISHED_LOT_RETENTION_MS,
    LOT_SCOPE_ACTIONS_MAX,
    LOTS_ACTIVE_PER_USER_MAX,
)

DAY_S = 24 * 3600
DAY_MS = DAY_S * 1000


def _by_id(ledger: Any, user_id: str) -> dict[str, Any]:
    return {lot.id: lot for lot in ledger.list_lots(user_id)}


# --------------------------------------------------------------------------- every credit in a lot


def test_initialize_and_add_make_lots_with_their_terms(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    welcome = ledger.initialize_user(user_id, 100)
    paid = ledger.add(user_id, 500, "purchase", {"order": "o-1"}, expires_in=365 * DAY_S)
    lots = _by_id(ledger, user_id)
    assert set(lots) == {welcome.lot_id, paid.lot_id}
    first, bought = lots[welcome.lot_id], lots[paid.lot_id]
    assert (first.category, first.amount, first.remaining, first.expires_at) == (
        "promotional", 100, 100, None,
    )  # fmt: skip
    assert (bought.category, bought.priority, bought.amount, bought.status) == (
        "paid", 50, 500, "active",
    )  # fmt: skip
    assert bought.expires_at == clock.now_ms + 365 * DAY_MS
    assert (bought.action, bought.metadata, bought.created_at) == (
        "purchase", {"order": "o-1"}, clock.now_ms,
    )  # fmt: skip
    assert ledger.get_lot(paid.lot_id) == bought
    assert ledger.get_balance(user_id) == 600
    add_event = ledger.get_transactions(user_id, limit=1)[0]
    assert add_event.lots == {paid.lot_id: 500}


# --------------------------------------------------------------------------- drawdown order


def test_drawdown_order_priority_then_expiry_then_creation(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    never = ledger.add(user_id, 10, "purchase").lot_id
    later = ledger.add(user_id, 10, "purchase", expires_in=30 * DAY_S).lot_id
    sooner = ledger.add(user_id, 10, "purchase", expires_in=7 * DAY_S).lot_id
    urgent = ledger.add(user_id, 10, "promo", priority=10, category="promotional").lot_id
    never_too = ledger.add(user_id, 10, "purchase").lot_id
    order = [lot.id for lot in ledger.list_lots(user_id, "active")]
    assert order == [urgent, sooner, later, never, never_too]
    ledger.deduct(user_id, 35, "chat_message")
    events = ledger.get_transactions(user_id, limit=1)
    assert events[0].lots == {urgent: -10, sooner: -10, later: -10, never: -5}
    assert ledger.get_lot(never).remaining == 5
    assert ledger.get_lot(urgent).status == "exhausted"


def test_promotional_credits_are_spent_before_paid_ones(ledger: Any, user_id: str) -> None:
    paid = ledger.add(user_id, 100, "purchase").lot_id
    promo = ledger.add(
        user_id, 30, "promo", category="promotional", priority=10, expires_in=30 * DAY_S
    ).lot_id
    ledger.deduct(user_id, 40, "chat_message")
    assert ledger.get_lot(promo).status == "exhausted"
    assert ledger.get_lot(paid).remaining == 90


# --------------------------------------------------------------------------- time: expiry and start


def test_a_lot_is_not_spendable_the_moment_it_expires_no_sweep_needed(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    lot = ledger.add(user_id, 50, "promo", category="promotional", expires_in=60).lot_id
    ledger.add(user_id, 20, "purchase")
    clock.advance(60)  # expires_at <= now: expired
    with pytest.raises(InsufficientCreditsError) as refused:
        ledger.deduct(user_id, 30, "chat_message")
    assert refused.value.available == 20
    expired = ledger.get_lot(lot)
    assert (expired.status, expired.remaining) == ("expired", 0)
    event = next(tx for tx in ledger.get_transactions(user_id) if tx.type == "lot_expire")
    assert (event.amount, event.balance_delta, event.lots) == (50, -50, {lot: -50})
    assert ledger.verify_balance(user_id).valid


def test_a_pending_lot_is_outside_the_balance_until_it_takes_effect(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    starts = clock.now_ms + 3600_000
    lot = ledger.add(user_id, 80, "grant", effective_at=starts).lot_id
    assert ledger.get_balance(user_id) == 0
    pending = ledger.get_lot(lot)
    assert (pending.status, pending.remaining) == ("pending", 80)
    add_event = ledger.get_transactions(user_id, limit=1)[0]
    assert (add_event.type, add_event.balance_delta, add_event.lots) == ("add", 0, {})
    clock.advance(3600)
    assert ledger.get_balance(user_id) == 80
    start = ledger.get_transactions(user_id, limit=1)[0]
    assert (start.type, start.balance_delta, start.lots) == ("lot_start", 80, {lot: 80})
    assert ledger.verify_balance(user_id).valid


def test_aware_datetimes_are_taken_and_naive_ones_refused(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    when = datetime.fromtimestamp(clock.now_s + 3600, tz=UTC)
    lot = ledger.add(user_id, 5, "grant", expires_at=when).lot_id
    assert ledger.get_lot(lot).expires_at == clock.now_ms + 3600_000
    with pytest.raises(InvalidInputError, match="aware"):
        ledger.add(user_id, 5, "grant", expires_at=when.replace(tzinfo=None))


# --------------------------------------------------------------------------- scope


def test_a_scoped_lot_pays_only_for_its_actions(ledger: Any, user_id: str) -> None:
    ledger.add(user_id, 10, "purchase")
    refund = ledger.add(user_id, 100, "refund", category="refund", scope=["video_generation"])
    assert ledger.get_balance(user_id) == 110
    assert ledger.get_balance(user_id, action="chat_message") == 10
    assert ledger.get_balance(user_id, action="video_generation") == 110
    with pytest.raises(InsufficientCreditsError) as refused:
        ledger.deduct(user_id, 50, "chat_message")
    assert (refused.value.required, refused.value.available) == (50, 10)
    ledger.deduct(user_id, 50, "video_generation")
    assert ledger.get_lot(refund.lot_id).remaining == 60
    assert ledger.get_lot(refund.lot_id).scope == ["video_generation"]


# --------------------------------------------------------------------------- holds pin lots


def test_a_hold_pins_its_lots_and_settle_charges_them_first(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    a = ledger.add(user_id, 30, "promo", priority=10, category="promotional").lot_id
    b = ledger.add(user_id, 100, "purchase").lot_id
    hold = ledger.reserve(user_id, 50, "video_generation", ttl=600)
    assert hold.lots == {a: 30, b: 20}
    assert (ledger.get_lot(a).held, ledger.get_lot(b).held) == (30, 20)
    settlement = ledger.settle(hold.id, 40)  # 30 from a, 10 from b; 10 back to b
    assert (settlement.charged, settlement.released) == (40, 10)
    assert (ledger.get_lot(a).status, ledger.get_lot(b).remaining) == ("exhausted", 90)
    event = ledger.get_transactions(user_id, limit=1)[0]
    assert event.lots == {b: 10}
    assert ledger.verify_balance(user_id).valid


def test_an_overage_draws_from_other_lots_in_order(ledger: Any, user_id: str) -> None:
    first = ledger.add(user_id, 20, "purchase").lot_id
    second = ledger.add(user_id, 50, "purchase").lot_id
    hold = ledger.reserve(user_id, 20, "video_generation", ttl=600)
    assert hold.lots == {first: 20}
    settlement = ledger.settle(hold.id, 45)
    assert (settlement.charged, settlement.shortfall) == (45, 0)
    assert ledger.get_transactions(user_id, limit=1)[0].lots == {second: -25}
    assert ledger.get_lot(second).remaining == 25


def test_credits_given_back_to_an_expired_lot_leave_in_the_same_event(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    promo = ledger.add(user_id, 40, "promo", category="promotional", expires_in=60).lot_id
    ledger.add(user_id, 10, "purchase", priority=90)
    hold = ledger.reserve(user_id, 30, "video_generation", ttl=600)
    assert hold.lots == {promo: 30}
    clock.advance(61)  # the lot expires (its 10 unheld leave), the hold is still open
    assert ledger.get_balance(user_id) == 10
    assert ledger.get_lot(promo).status == "expired"
    assert ledger.get_lot(promo).held == 30
    settlement = ledger.release(hold.id)
    assert (settlement.released, settlement.forfeited) == (0, 30)
    release = ledger.get_transactions(user_id, limit=1)[0]
    assert (release.balance_delta, release.held_delta, release.forfeited) == (0, -30, 30)
    assert ledger.get_balance(user_id) == 10
    assert ledger.get_account(user_id).held == 0
    assert ledger.verify_balance(user_id).valid


def test_expiry_of_a_hold_gives_its_lots_back(ledger: Any, user_id: str, clock: Clock) -> None:
    lot = ledger.add(user_id, 100, "purchase").lot_id
    ledger.reserve(user_id, 60, "video_generation", ttl=60)
    clock.advance(60)
    assert ledger.get_lot(lot).remaining == 100
    expire = ledger.get_transactions(user_id, limit=1)[0]
    assert (expire.type, expire.lots) == ("expire", {lot: 60})


# --------------------------------------------------------------------------- void


def test_void_removes_what_remains_once(ledger: Any, user_id: str, clock: Clock) -> None:
    keep = ledger.add(user_id, 10, "purchase").lot_id
    lot = ledger.add(user_id, 70, "grant", priority=10).lot_id
    hold = ledger.reserve(user_id, 20, "video_generation", ttl=600)
    assert hold.lots == {lot: 20}
    first = ledger.void_lot(lot, reason="granted by mistake")
    assert first.balance == 10
    assert ledger.void_lot(lot) == first
    event = next(tx for tx in ledger.get_transactions(user_id) if tx.type == "lot_void")
    assert (event.amount, event.lots, event.metadata) == (
        50, {lot: -50}, {"reason": "granted by mistake"},
    )  # fmt: skip
    assert ledger.release(hold.id).forfeited == 20  # held credits of it are voided on return
    voided = ledger.get_lot(lot)
    assert (voided.status, voided.remaining, voided.held) == ("voided", 0, 0)
    assert ledger.get_balance(user_id) == 10
    ledger.deduct(user_id, 10, "chat_message")
    with pytest.raises(LotClosedError) as closed:
        ledger.void_lot(keep)
    assert closed.value.status == "exhausted"
    assert ledger.verify_balance(user_id).valid


def test_voiding_a_pending_lot_moves_no_balance(ledger: Any, user_id: str, clock: Clock) -> None:
    lot = ledger.add(user_id, 40, "grant", effective_at=clock.now_ms + 60_000).lot_id
    result = ledger.void_lot(lot)
    assert result.balance == 0
    clock.advance(120)
    assert ledger.get_balance(user_id) == 0
    assert ledger.get_lot(lot).status == "voided"


def test_unknown_and_malformed_lot_ids(ledger: Any, user_id: str) -> None:
    real = ledger.add(user_id, 5, "grant").lot_id
    unknown = real[:-10] + "abcdef0123"
    for call in (ledger.get_lot, ledger.void_lot):
        with pytest.raises(LotNotFoundError):
            call(unknown)
        for bad in ("lot:nope", real.replace("lot:", "rsv:"), real + "0", 42, None):
            with pytest.raises(InvalidInputError):
                call(bad)


# --------------------------------------------------------------------------- verify and rebuild


def test_verify_checks_every_lot_and_rebuild_rebuilds_them(
    ledger: Any, user_id: str, store: Any, clock: Clock
) -> None:
    ledger.initialize_user(user_id, 100)
    lot = ledger.add(user_id, 50, "purchase", priority=10, expires_in=DAY_S).lot_id
    hold = ledger.reserve(user_id, 30, "video_generation", ttl=600)
    ledger.deduct(user_id, 25, "chat_message")
    ledger.add(user_id, 7, "grant", effective_at=clock.now_ms + 10_000)
    assert ledger.verify_balance(user_id).valid
    account = user_keys(user_id).account
    lots = json.loads(store.hget(account, "L"))
    for entry in lots:
        if entry["i"] == lot.rsplit(":", 1)[1]:
            entry["r"] = str(int(entry["r"]) + 3)  # damage one lot's remaining
    store.hset(account, "L", json.dumps(lots))
    verification = ledger.verify_balance(user_id)
    assert not verification.valid
    assert any("remaining" in p or " r=" in p for p in verification.problems), verification
    ledger.rebuild_balance(user_id)
    assert ledger.verify_balance(user_id).valid
    assert ledger.get_lot(lot).held == 30
    store.delete(account)  # and the whole account
    ledger.rebuild_balance(user_id)
    assert ledger.verify_balance(user_id).valid
    assert ledger.settle(hold.id, 30).charged == 30
    clock.advance(11)
    assert ledger.get_balance(user_id) == 100 + 50 - 30 - 25 + 7


# --------------------------------------------------------------------------- bounds and bad input


def test_active_lots_are_bounded_and_finished_ones_cost_nothing(
    ledger: Any, user_id: str, store: Any
) -> None:
    for _ in range(LOTS_ACTIVE_PER_USER_MAX):
        ledger.add(user_id, 1, "grant")
    with pytest.raises(LimitExceededError) as refused:
        ledger.add(user_id, 1, "grant")
    assert (refused.value.limit, refused.value.amount) == ("active_lots", LOTS_ACTIVE_PER_USER_MAX)
    ledger.deduct(user_id, LOTS_ACTIVE_PER_USER_MAX, "chat_message")  # every lot finishes
    assert store.hget(user_keys(user_id).account, "L") in ("[]", "{}")  # nothing active left
    ledger.add(user_id, 1, "grant")  # room again
    assert len(ledger.list_lots(user_id, "exhausted")) == LOTS_ACTIVE_PER_USER_MAX


def test_finished_lots_are_kept_for_their_retention_exactly(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    lot = ledger.add(user_id, 5, "grant").lot_id
    ledger.deduct(user_id, 5, "chat_message")
    clock.advance(FINISHED_LOT_RETENTION_MS / 1000 - 1)
    assert ledger.get_lot(lot).status == "exhausted"
    clock.advance(1)
    with pytest.raises(LotNotFoundError):
        ledger.get_lot(lot)
    assert ledger.list_lots(user_id) == []


@pytest.mark.parametrize(
    ("terms", "words"),
    [
        ({"expires_in": 0}, "more than zero"),
        ({"expires_in": -5}, "more than zero"),
        ({"expires_in": timedelta(seconds=-1)}, "more than zero"),
        ({"expires_at": 1, "expires_in": 60}, "not both"),
        ({"expires_at": 10**15, "effective_at": 10**15}, "before expires_at"),
        ({"priority": 101}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": True}, "priority"),
        ({"category": "allowance"}, "category"),
        ({"category": "rollover"}, "category"),
        ({"scope": []}, "scope"),
        ({"scope": "video_generation"}, "scope"),
        ({"scope": ["a"] * 2}, "twice"),
        ({"scope": [f"a{i}" for i in range(LOT_SCOPE_ACTIONS_MAX + 1)]}, "scope"),
        ({"scope": [""]}, "action"),
        ({"effective_at": "tomorrow"}, "effective_at"),
    ],
)
def test_bad_terms_are_refused_and_write_nothing(
    ledger: Any, user_id: str, redis_client: Any, terms: dict[str, Any], words: str
) -> None:
    ledger.add(user_id, 5, "grant")
    before = store_snapshot(redis_client, f"*{user_id}*")
    with pytest.raises(InvalidInputError, match=words):
        ledger.add(user_id, 5, "grant", **terms)
    assert store_snapshot(redis_client, f"*{user_id}*") == before


def test_terms_only_the_servers_clock_can_judge_are_refused_there(
    ledger: Any, user_id: str, redis_client: Any, clock: Clock
) -> None:
    ledger.add(user_id, 5, "grant")
    before = store_snapshot(redis_client, f"*{user_id}*")
    for terms in (
        {"expires_at": clock.now_ms},  # already expired: expires_at <= now
        {"expires_at": clock.now_ms - 1},
        {"expires_in": 60, "effective_at": clock.now_ms + 61_000},  # starts after it ends
    ):
        with pytest.raises(InvalidInputError):
            ledger.add(user_id, 5, "grant", **terms)
    assert store_snapshot(redis_client, f"*{user_id}*") == before


# --------------------------------------------------------------------------- the sweep and events


def test_the_sweep_expires_and_starts_lots_of_users_who_never_return(
    ledger: Any, unique_user: Any, clock: Clock
) -> None:
    users = [unique_user("idle") for _ in range(5)]
    lots = []
    for user in users:
        lots.append(ledger.add(user, 10, "promo", category="promotional", expires_in=60).lot_id)
        ledger.add(user, 3, "grant", effective_at=clock.now_ms + 30_000)
    clock.advance(61)
    assert ledger.expire_lots() >= 2 * len(users)
    for user, lot in zip(users, lots, strict=True):
        # read the log, not the account: a read would do the upkeep itself
        types = [tx.type for tx in ledger.get_transactions(user)]
        assert types[:2] == ["lot_expire", "lot_start"], types
        assert ledger.get_lot(lot).status == "expired"
        assert ledger.get_balance(user) == 3
        assert ledger.verify_balance(user).valid


def test_expiring_and_expired_lots_write_their_events_once(
    ledger: Any, user_id: str, clock: Clock, store: Any
) -> None:
    lot = ledger.add(user_id, 10, "promo", category="promotional", expires_in=10 * DAY_S).lot_id
    ledger.get_balance(user_id)  # more than the notice ahead: nothing yet
    clock.advance(4 * DAY_S)  # 6 days left: within the 7-day notice
    ledger.get_balance(user_id)
    ledger.get_balance(user_id)
    clock.advance(6 * DAY_S)
    ledger.get_balance(user_id)
    keys = user_keys(user_id)
    kinds = [
        (fields["t"], json.loads(fields["d"]).get("lot"))
        for _, fields in store.xrange(keys.outbox)
        if fields["u"] == keys.escaped and fields["t"].startswith("lot.")
    ]
    short = lot.rsplit(":", 1)[1]
    assert kinds == [("lot.expiring", short), ("lot.expired", short)]


def test_every_credit_counts_in_the_stats_by_category_and_action(
    ledger: Any, user_id: str, store: Any, clock: Clock
) -> None:
    stats_key = user_keys(user_id).stats
    before = {k: int(v) for k, v in store.hgetall(stats_key).items()}
    ledger.add(user_id, 30, "purchase")
    ledger.add(user_id, 5, "promo", category="promotional", priority=1, expires_in=60)
    ledger.deduct(user_id, 10, "chat_message")  # 5 promotional, 5 paid
    clock.advance(61)
    after = {k: int(v) for k, v in store.hgetall(stats_key).items()}
    grew = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert grew == {
        "granted:paid:purchase": 30,
        "granted:promotional:promo": 5,
        "charged:promotional:chat_message": 5,
        "charged:paid:chat_message": 5,
    }
