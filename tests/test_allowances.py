"""Recurring allowances: one lot per period, granted once, with rollover.

Every test runs on both clients, single Redis and Cluster (the ``ledger``
fixture), with an explicit clock standing for the server's. The races at a
period boundary between many callers and the beat's task are in
``test_allowance_races.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ledger_fixtures import Clock, store_snapshot

from credits.errors import InvalidInputError, LimitExceededError
from credits.keys import bucket_tag, user_keys
from credits.limits import ALLOWANCES_PER_USER_MAX

DAY_S = 86_400


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def ms(*parts: int) -> int:
    return int(at(*parts) * 1000)


def grants(ledger: Any, user_id: str) -> list[tuple[str, int, int]]:
    """The user's allowance and rollover events, oldest first: (type, amount, balance delta)."""
    events = ledger.get_transactions(user_id, limit=1000)
    return [
        (tx.type, tx.amount, tx.balance_delta)
        for tx in reversed(events)
        if tx.type in ("allowance", "rollover")
    ]


def lots_by_category(ledger: Any, user_id: str) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = {}
    for lot in ledger.list_lots(user_id):
        found.setdefault(lot.category, []).append((lot.remaining, lot.status))
    return found


def user_snapshot(ledger: Any, store: Any, user_id: str) -> dict[Any, Any]:
    return store_snapshot(store, f"credits:{bucket_tag(user_keys(user_id).bucket)}:*")


# --------------------------------------------------------------------------- granting


def test_the_current_period_is_granted_at_once_as_an_allowance_lot(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 3, 10, 8)
    allowance = ledger.set_allowance(user_id, "monthly", 1000, every="month")
    assert (allowance.amount, allowance.every, allowance.anchor) == (1000, "month", clock.now_ms)
    assert (allowance.period_start, allowance.period_end) == (clock.now_ms, ms(2027, 4, 10, 8))
    assert (allowance.priority, allowance.rollover_max, allowance.granted) == (40, 0, 1000)
    [lot] = ledger.list_lots(user_id)
    assert (lot.category, lot.amount, lot.priority, lot.status) == ("allowance", 1000, 40, "active")
    assert (lot.effective_at, lot.expires_at) == (allowance.period_start, allowance.period_end)
    assert ledger.get_balance(user_id) == 1000
    assert grants(ledger, user_id) == [("allowance", 1000, 1000)]
    [tx] = ledger.get_transactions(user_id)
    assert tx.metadata == {
        "allowance": "monthly",
        "period_start": str(allowance.period_start),
        "period_end": str(allowance.period_end),
    }
    assert ledger.list_allowances(user_id) == [allowance]
    assert ledger.verify_balance(user_id).valid


def test_a_period_is_granted_once_however_many_calls_come(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 3, 10)
    ledger.set_allowance(user_id, "daily", 50, every="day")
    for _ in range(5):
        ledger.get_balance(user_id)
        ledger.list_allowances(user_id)
    clock.advance(DAY_S)
    for _ in range(5):
        ledger.get_balance(user_id)
    ledger.renew_allowances()
    assert grants(ledger, user_id) == [("allowance", 50, 50), ("allowance", 50, 50)]
    assert ledger.get_balance(user_id) == 50  # yesterday's lot expired at its period's end


def test_a_future_anchor_grants_nothing_until_it_comes(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 3, 10)
    allowance = ledger.set_allowance(
        user_id, "monthly", 300, every="month", anchor=datetime(2027, 4, 1, tzinfo=UTC)
    )
    assert (allowance.period_start, allowance.period_end) == (None, None)
    assert ledger.get_balance(user_id) == 0
    clock.now_s = at(2027, 4, 1) - 1
    assert ledger.get_balance(user_id) == 0
    clock.now_s = at(2027, 4, 1)
    assert ledger.get_balance(user_id) == 300
    [listed] = ledger.list_allowances(user_id)
    assert (listed.period_start, listed.period_end) == (ms(2027, 4, 1), ms(2027, 5, 1))


def test_unused_credits_roll_over_up_to_the_cap_into_a_rollover_lot(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 1, 31, 12)
    ledger.set_allowance(user_id, "monthly", 1000, every="month", rollover_max=300, priority=30)
    ledger.deduct(user_id, 200, "chat_message")  # 800 left of January's
    clock.now_s = at(2027, 2, 28, 12)  # anchored on the 31st: February's period starts on the 28th
    assert ledger.get_balance(user_id) == 1300  # 1000 new + 300 rolled over; 500 expired
    lots = {lot.category: lot for lot in ledger.list_lots(user_id, "active")}
    rollover, fresh = lots["rollover"], lots["allowance"]
    assert (rollover.amount, rollover.priority, rollover.expires_at) == (
        300,
        30,
        ms(2027, 3, 31, 12),
    )
    assert (fresh.amount, fresh.expires_at) == (1000, ms(2027, 3, 31, 12))
    [old] = [lot for lot in ledger.list_lots(user_id, "expired")]
    assert (old.category, old.remaining, old.expires_at) == ("allowance", 0, ms(2027, 2, 28, 12))
    assert grants(ledger, user_id) == [
        ("allowance", 1000, 1000), ("rollover", 300, 0), ("allowance", 1000, 1000),
    ]  # fmt: skip
    expired = [tx for tx in ledger.get_transactions(user_id) if tx.type == "lot_expire"]
    assert [tx.amount for tx in expired] == [500]
    # the rollover lot is drawn first in March (its expiry is the same, it was made first)
    ledger.deduct(user_id, 100, "chat_message")
    assert {lot.category: lot.remaining for lot in ledger.list_lots(user_id, "active")} == {
        "rollover": 200, "allowance": 1000,
    }  # fmt: skip
    # only allowance lots roll over: at March's end what is left of the rollover lot expires
    clock.now_s = at(2027, 3, 31, 12)
    assert ledger.get_balance(user_id) == 1300
    assert grants(ledger, user_id)[-2:] == [("rollover", 300, 0), ("allowance", 1000, 1000)]
    assert ledger.verify_balance(user_id).valid


def test_periods_nobody_touched_are_not_granted_afterwards(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 1, 5)
    ledger.set_allowance(user_id, "monthly", 100, every="month", rollover_max=100)
    clock.now_s = at(2027, 5, 20)  # February to April passed with no call and no beat
    assert ledger.get_balance(user_id) == 100  # May's period only; nothing rolls over a gap
    assert grants(ledger, user_id) == [("allowance", 100, 100), ("allowance", 100, 100)]
    [allowance] = ledger.list_allowances(user_id)
    assert (allowance.period_start, allowance.period_end) == (ms(2027, 5, 5), ms(2027, 6, 5))


def test_the_renewal_sweep_grants_users_who_never_come_back(
    ledger: Any, unique_user: Any, clock: Clock
) -> None:
    clock.now_s = at(2027, 6, 1)
    users = [unique_user("away") for _ in range(3)]
    for user in users:
        ledger.set_allowance(user, "weekly", 70, every="week", rollover_max=20)
    clock.advance(7 * DAY_S)
    assert ledger.renew_allowances() >= 3 * 2  # a rollover and a grant each (plus expiries)
    before = [grants(ledger, user) for user in users]
    assert before == [[("allowance", 70, 70), ("rollover", 20, 0), ("allowance", 70, 70)]] * 3
    ledger.renew_allowances()  # nothing more for these users: each period was granted
    assert [ledger.get_balance(user) for user in users] == [90] * 3
    assert [grants(ledger, user) for user in users] == before


# --------------------------------------------------------------------------- changes


def test_a_change_applies_from_the_next_period_by_default(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 3, 1)
    ledger.set_allowance(user_id, "monthly", 100, every="month")
    changed = ledger.set_allowance(user_id, "monthly", 250, every="month", priority=10)
    assert (changed.amount, changed.granted) == (100, 100)  # still this period's terms
    assert changed.next_change is not None and changed.next_change["amount"] == 250
    assert ledger.get_balance(user_id) == 100
    clock.now_s = at(2027, 4, 1)
    [allowance] = ledger.list_allowances(user_id)
    assert (allowance.amount, allowance.priority, allowance.next_change) == (250, 10, None)
    assert ledger.get_balance(user_id) == 250
    assert [lot.priority for lot in ledger.list_lots(user_id, "active")] == [10]


def test_effective_now_grants_the_positive_difference_for_the_rest_of_the_period(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 3, 1)
    ledger.set_allowance(user_id, "monthly", 100, every="month", rollover_max=500)
    clock.now_s = at(2027, 3, 15)
    raised = ledger.set_allowance(
        user_id, "monthly", 400, every="month", rollover_max=500, effective="now"
    )
    assert (raised.amount, raised.granted) == (400, 400)
    assert ledger.get_balance(user_id) == 400
    extra = [lot for lot in ledger.list_lots(user_id) if lot.amount == 300]
    assert [(lot.category, lot.expires_at) for lot in extra] == [("allowance", ms(2027, 4, 1))]
    lowered = ledger.set_allowance(
        user_id, "monthly", 50, every="month", rollover_max=500, effective="now"
    )
    assert (lowered.amount, lowered.granted) == (50, 400)  # nothing is taken back
    assert ledger.get_balance(user_id) == 400
    clock.now_s = at(2027, 4, 1)  # both of March's lots roll over, up to the cap
    assert ledger.get_balance(user_id) == 400 + 50
    assert grants(ledger, user_id)[-2:] == [("rollover", 400, 0), ("allowance", 50, 50)]
    assert ledger.verify_balance(user_id).valid


def test_a_new_schedule_starts_when_the_current_period_ends(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 3, 10)
    ledger.set_allowance(user_id, "plan", 100, every="month")
    ledger.set_allowance(user_id, "plan", 1000, every="year")
    clock.now_s = at(2027, 4, 10)
    [allowance] = ledger.list_allowances(user_id)
    assert (allowance.every, allowance.anchor) == ("year", ms(2027, 4, 10))
    assert (allowance.period_start, allowance.period_end) == (ms(2027, 4, 10), ms(2028, 4, 10))
    assert ledger.get_balance(user_id) == 1000


def test_removing_an_allowance_leaves_its_lot_to_expire(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 3, 1)
    ledger.set_allowance(user_id, "monthly", 100, every="month", rollover_max=100)
    assert ledger.remove_allowance(user_id, "monthly") is True
    assert ledger.remove_allowance(user_id, "monthly") is False
    assert ledger.list_allowances(user_id) == []
    assert ledger.get_balance(user_id) == 100
    clock.now_s = at(2027, 4, 1)
    assert ledger.get_balance(user_id) == 0  # expired; no renewal, no rollover
    ledger.renew_allowances()
    assert grants(ledger, user_id) == [("allowance", 100, 100)]


# --------------------------------------------------------------------------- the log


def test_verify_and_rebuild_cover_allowance_and_rollover_events(
    ledger: Any, user_id: str, clock: Clock, store: Any
) -> None:
    clock.now_s = at(2027, 3, 1)
    ledger.set_allowance(user_id, "monthly", 100, every="month", rollover_max=40)
    ledger.add(user_id, 10, "purchase")
    ledger.deduct(user_id, 30, "chat_message")
    clock.now_s = at(2027, 4, 1)
    assert ledger.get_balance(user_id) == 150  # 100 + 40 rolled over + 10 paid
    assert ledger.verify_balance(user_id).valid
    keys = user_keys(user_id)
    lots_before = ledger.list_lots(user_id, "active")
    plans = store.hget(keys.account, "PL")
    store.hset(keys.account, "bal", "99999")  # corrupt the cache
    assert not ledger.verify_balance(user_id).valid
    assert ledger.rebuild_balance(user_id) == 150
    assert ledger.list_lots(user_id, "active") == lots_before
    assert store.hget(keys.account, "PL") == plans  # the plans are kept
    store.delete(keys.account)  # the whole cache lost: rebuilt from the log alone
    assert ledger.rebuild_balance(user_id) == 150
    assert ledger.list_lots(user_id, "active") == lots_before
    assert ledger.verify_balance(user_id).valid


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("monthly", 0), {"every": "month"}),
        (("monthly", -5), {"every": "month"}),
        (("monthly", 2**53), {"every": "month"}),
        (("monthly", 10), {"every": "hour"}),
        (("monthly", 10), {"every": "Month"}),
        (("monthly", 10), {"every": "month", "rollover_max": -1}),
        (("monthly", 10), {"every": "month", "priority": 101}),
        (("monthly", 10), {"every": "month", "effective": "later"}),
        (("monthly", 10), {"every": "month", "anchor": datetime(2027, 1, 1)}),  # naive
        (("monthly", 10), {"every": "month", "anchor": -1}),
        (("monthly", 10), {"every": "month", "scope": []}),
        (("", 10), {"every": "month"}),
        (("a b", 10), {"every": "month"}),
        (("x" * 65, 10), {"every": "month"}),
        ((7, 10), {"every": "month"}),
        (("monthly", True), {"every": "month"}),
    ],
)
def test_bad_terms_are_refused_and_write_nothing(
    ledger: Any, user_id: str, store: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    ledger.add(user_id, 5, "purchase")
    before = user_snapshot(ledger, store, user_id)
    with pytest.raises(InvalidInputError):
        ledger.set_allowance(user_id, *args, **kwargs)
    assert user_snapshot(ledger, store, user_id) == before


def test_at_most_so_many_allowances_per_user(ledger: Any, user_id: str, store: Any) -> None:
    for index in range(ALLOWANCES_PER_USER_MAX):
        ledger.set_allowance(user_id, f"a{index}", 1, every="year")
    before = user_snapshot(ledger, store, user_id)
    with pytest.raises(LimitExceededError) as refused:
        ledger.set_allowance(user_id, "one-more", 1, every="year")
    assert (refused.value.limit, refused.value.used) == ("allowances", ALLOWANCES_PER_USER_MAX)
    assert user_snapshot(ledger, store, user_id) == before
    ledger.set_allowance(user_id, "a0", 2, every="year")  # changing one is fine
    assert len(ledger.list_allowances(user_id)) == ALLOWANCES_PER_USER_MAX
