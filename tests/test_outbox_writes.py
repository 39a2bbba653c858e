"""The scripts write ledger events to the bucket's outbox in the same call as the change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ledger_fixtures import Clock

from credits.errors import RefusedError
from credits.keys import user_keys


def _events(store: Any, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    keys = user_keys(user_id)
    entries = store.xrange(keys.outbox)
    return [(f["t"], json.loads(f["d"])) for _, f in entries if f["u"] == keys.escaped]


def test_an_expired_hold_and_a_shortfall_write_their_events(
    ledger: Any, user_id: str, clock: Clock, store: Any
) -> None:
    ledger.initialize_user(user_id, 100)
    expiring = ledger.reserve(user_id, 30, "video_generation", ttl=60)
    short = ledger.reserve(user_id, 50, "training_job", ttl=600)
    clock.advance(61)
    ledger.get_balance(user_id)  # lazy expiry
    settlement = ledger.settle(short.id, 200)  # 50 held + 50 balance; 100 short
    assert settlement.shortfall == 100
    ledger.settle(short.id, 200)  # a repeat writes no second event
    events = _events(store, user_id)
    # the settle takes the balance to zero (balance.depleted, with its log event),
    # then reports what it could not charge
    assert [kind for kind, _ in events] == [
        "reservation.expired", "balance.depleted", "settlement.shortfall",
    ]  # fmt: skip
    expired, shortfall = events[0][1], events[2][1]
    assert expiring.id.endswith(expired["hold"]) and expired["amount"] == 30
    assert (shortfall["charged"], shortfall["shortfall"], shortfall["late"]) == (100, 100, False)
    assert expired["at"] == clock.now_ms


def test_a_refused_call_writes_no_event(ledger: Any, user_id: str, store: Any) -> None:
    ledger.initialize_user(user_id, 10)
    ledger.set_limit(user_id, "hourly", 8, every="hour")
    hold = ledger.reserve(user_id, 5, "video_generation", ttl=60)
    ledger.release(hold.id)  # a hold that closes without a crossing writes nothing
    for refused in (
        lambda: ledger.deduct(user_id, 11, "chat"),  # more than the balance
        lambda: ledger.deduct(user_id, 9, "chat"),  # more than the limit
        lambda: ledger.reserve(user_id, 9, "video_generation", ttl=60),
    ):
        with pytest.raises(RefusedError):
            refused()
    assert _events(store, user_id) == []
