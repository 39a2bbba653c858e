"""Accounts written before lots existed keep working: their balance is one paid lot.

The account is written here key by key exactly as the ledger wrote it before
lots (and before the held-after field): an account hash without lots, log
events without lot deltas, a hold record without pins. Then today's client
reads it, spends from it, settles its old hold, verifies and rebuilds it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ledger_fixtures import Clock

from credits.keys import LEGACY_LOT_ID, lot_id, reservation_id, user_keys

HOLD = "0123456789abcdef0123"


def write_old_format(store: Any, user_id: str, now_ms: int) -> None:
    """What the ledger wrote before lots: initialize 100, deduct 10, reserve 20."""
    keys = user_keys(user_id)
    expires = now_ms + 3_600_000
    events = [
        ("initialize", 100, 100, 0, 100, "initialize", ""),
        ("deduct", 10, -10, 0, 90, "chat_message", ""),
        ("reserve", 20, -20, 20, 70, "video_generation", HOLD),
    ]
    for seq, (kind, amount, delta, held, after, action, hold) in enumerate(events):
        store.xadd(
            keys.log,
            {"t": kind, "a": amount, "b": delta, "h": held, "B": after, "c": action,
             "m": "", "r": hold, "x": ""},
            id=f"{now_ms}-{seq}",
        )  # fmt: skip
    store.hset(
        keys.account,
        mapping={
            "bal": 70, "held": 20, "ct": now_ms, "lid": f"{now_ms}-2",
            "init": f"{now_ms}-0,100,{now_ms}", "nx": expires, "np": 2**53 - 1,
        },
    )  # fmt: skip
    record = {"a": "20", "c": "video_generation", "s": "open", "t": str(now_ms),
              "e": str(expires), "m": "", "x": f"{now_ms}-2"}  # fmt: skip
    store.hset(keys.holds, HOLD, json.dumps(record))
    store.zadd(keys.open, {HOLD: expires})
    store.zadd(keys.due, {f"{keys.escaped}:{HOLD}": expires})
    store.sadd(keys.users, keys.escaped)


@pytest.fixture
def old_user(ledger: Any, user_id: str, store: Any, clock: Clock) -> str:
    write_old_format(store, user_id, clock.now_ms)
    return user_id


def test_an_old_account_reads_as_one_paid_lot(ledger: Any, old_user: str) -> None:
    keys = user_keys(old_user)
    legacy = lot_id(keys, LEGACY_LOT_ID)
    assert ledger.verify_balance(old_user).valid
    account = ledger.get_account(old_user)
    assert (account.balance, account.held) == (70, 20)
    (lot,) = ledger.list_lots(old_user)
    assert (lot.id, lot.category, lot.expires_at, lot.remaining, lot.held, lot.amount) == (
        legacy, "paid", None, 70, 20, 90,
    )  # fmt: skip
    history = ledger.get_transactions(old_user)
    assert [tx.lots for tx in history] == [{legacy: -20}, {legacy: -10}, {legacy: 100}]
    hold = ledger.get_reservation(reservation_id(keys, HOLD))
    assert hold.lots == {legacy: 20}


def test_an_old_account_spends_settles_verifies_and_rebuilds(
    ledger: Any, old_user: str, store: Any
) -> None:
    keys = user_keys(old_user)
    legacy = lot_id(keys, LEGACY_LOT_ID)
    assert ledger.initialize_user(old_user, 999).balance == 100  # the first result, once
    ledger.deduct(old_user, 30, "chat_message")
    new = ledger.add(old_user, 50, "purchase", priority=90).lot_id
    settlement = ledger.settle(reservation_id(keys, HOLD), 15)
    assert (settlement.charged, settlement.released) == (15, 5)
    assert ledger.get_transactions(old_user, limit=1)[0].lots == {legacy: 5}
    assert ledger.get_lot(legacy).remaining == 45
    assert ledger.get_lot(new).remaining == 50
    assert ledger.verify_balance(old_user).valid
    store.delete(keys.account)
    assert ledger.rebuild_balance(old_user) == 95
    assert ledger.verify_balance(old_user).valid
    assert {lot.id: lot.remaining for lot in ledger.list_lots(old_user, "active")} == {
        legacy: 45,
        new: 50,
    }
    at = ledger.balance_at(old_user, 2**52)
    assert (at.balance, at.held) == (95, 0)
