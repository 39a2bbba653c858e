"""Auto top-up: one open request at most, granted once per top-up id, off after failures."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from ledger_fixtures import Clock, store_snapshot

from credits import Credits
from credits.errors import InvalidInputError, TopupNotFoundError
from credits.keys import bucket_tag, user_keys


def topup_events(store: Any, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    keys = user_keys(user_id)
    return [
        (fields["t"], json.loads(fields["d"]))
        for _, fields in store.xrange(keys.outbox)
        if fields["u"] == keys.escaped and fields["t"].startswith("topup.")
    ]


def requested(ledger: Any, user_id: str) -> str:
    found = ledger.get_auto_topup(user_id)
    assert found is not None and found.open_topup_id is not None
    return str(found.open_topup_id)


def test_a_crossing_requests_one_top_up_and_paid_grants_it_once(
    ledger: Any, user_id: str, store: Any
) -> None:
    ledger.add(user_id, 500, "purchase")
    topup = ledger.set_auto_topup(user_id, below=100, amount=1000)
    assert (topup.below, topup.amount, topup.enabled, topup.open_topup_id) == (
        100,
        1000,
        True,
        None,
    )
    ledger.deduct(user_id, 450, "chat_message")  # 50: crosses
    ledger.deduct(user_id, 10, "chat_message")  # still below: no second request
    ledger.add(user_id, 100, "purchase")  # 140: above again, the request is still open
    ledger.deduct(user_id, 100, "chat_message")  # crosses again while open: still one
    [(kind, data)] = topup_events(store, user_id)
    topup_id = requested(ledger, user_id)
    assert kind == "topup.requested" and topup_id.endswith(data["topup"])
    assert (data["amount"], data["balance"], data["below"]) == ("1000", "50", "100")
    first = ledger.confirm_topup(topup_id, paid=True)
    assert (first.paid, first.amount, first.balance) == (True, 1000, 1040)
    lot = ledger.get_lot(first.lot_id)
    assert (lot.category, lot.action, lot.amount, lot.metadata) == (
        "paid", "topup", 1000, {"topup_id": topup_id.rsplit(":", 1)[1]},
    )  # fmt: skip
    # a payment webhook delivered again, even with another answer, returns the first result
    assert ledger.confirm_topup(topup_id, paid=True) == first
    assert ledger.confirm_topup(topup_id, paid=False) == first
    assert ledger.get_balance(user_id) == 1040
    assert ledger.get_auto_topup(user_id).open_topup_id is None
    assert ledger.verify_balance(user_id).valid


def test_a_target_top_up_asks_for_what_reaches_it(ledger: Any, user_id: str, store: Any) -> None:
    ledger.add(user_id, 300, "purchase")
    ledger.set_auto_topup(user_id, below=200, target=1000)
    ledger.deduct(user_id, 150, "chat_message")  # 150
    [(_, data)] = topup_events(store, user_id)
    assert data["amount"] == "850"
    paid = ledger.confirm_topup(requested(ledger, user_id), paid=True, amount=900)  # app's choice
    assert (paid.amount, paid.balance) == (900, 1050)


def test_three_failed_payments_in_a_row_switch_it_off(
    ledger: Any, user_id: str, store: Any
) -> None:
    ledger.add(user_id, 200, "purchase")
    ledger.set_auto_topup(user_id, below=100, amount=500)
    for attempt in range(3):
        ledger.deduct(user_id, 150, "chat_message")  # crosses below
        failed = ledger.confirm_topup(requested(ledger, user_id), paid=False)
        assert (failed.paid, failed.tx_id, failed.lot_id) == (False, None, None)
        ledger.add(user_id, 150, "purchase")  # back above, for the next crossing
        assert ledger.get_auto_topup(user_id).failures == attempt + 1
    state = ledger.get_auto_topup(user_id)
    assert (state.enabled, state.failures) == (False, 3)
    ledger.deduct(user_id, 150, "chat_message")  # crosses: but it is off
    kinds = [kind for kind, _ in topup_events(store, user_id)]
    assert kinds == ["topup.requested"] * 3 + ["topup.disabled"]
    assert topup_events(store, user_id)[-1][1]["reason"] == "payment_failed"
    again = ledger.set_auto_topup(user_id, below=100, amount=500)  # set again: back on
    assert (again.enabled, again.failures) == (True, 0)
    assert [kind for kind, _ in topup_events(store, user_id)][-1] == "topup.requested"


def test_a_success_resets_the_failures(ledger: Any, user_id: str) -> None:
    ledger.add(user_id, 200, "purchase")
    ledger.set_auto_topup(user_id, below=100, amount=500)
    for paid in (False, False, True, False, False):
        ledger.deduct(user_id, ledger.get_balance(user_id) - 50, "chat_message")
        ledger.confirm_topup(requested(ledger, user_id), paid=paid)
        if not paid:
            ledger.add(user_id, 100, "purchase")
    state = ledger.get_auto_topup(user_id)
    assert (state.enabled, state.failures) == (True, 2)


def test_the_monthly_cap_counts_requests_per_utc_month(
    ledger: Any, user_id: str, clock: Clock, store: Any
) -> None:
    clock.now_s = datetime(2027, 3, 30, tzinfo=UTC).timestamp()
    ledger.add(user_id, 200, "purchase")
    ledger.set_auto_topup(user_id, below=100, amount=100, max_per_month=2)
    for crossing in range(3):
        ledger.deduct(user_id, ledger.get_balance(user_id) - 50, "chat_message")
        if crossing < 2:  # the third crossing of the month asks for nothing
            ledger.confirm_topup(requested(ledger, user_id), paid=True)
        else:
            assert ledger.get_auto_topup(user_id).open_topup_id is None
        ledger.add(user_id, 150, "purchase")
    assert [kind for kind, _ in topup_events(store, user_id)] == ["topup.requested"] * 2
    assert ledger.get_auto_topup(user_id).requested_this_month == 2
    clock.now_s = datetime(2027, 4, 1, tzinfo=UTC).timestamp()
    assert ledger.get_auto_topup(user_id).requested_this_month == 0
    ledger.deduct(user_id, ledger.get_balance(user_id) - 50, "chat_message")
    assert [kind for kind, _ in topup_events(store, user_id)] == ["topup.requested"] * 3


def test_concurrent_confirmations_grant_once(backend: Any, user_id: str) -> None:
    with Credits(backend.url, cluster=backend.cluster) as ledger:
        ledger.add(user_id, 150, "purchase")
        ledger.set_auto_topup(user_id, below=100, amount=700)
        ledger.deduct(user_id, 100, "chat_message")
        topup_id = requested(ledger, user_id)
        results: list[Any] = []

        def confirm() -> None:
            with Credits(backend.url, cluster=backend.cluster) as client:
                results.append(client.confirm_topup(topup_id, paid=True))

        threads = [threading.Thread(target=confirm) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 8 and all(result == results[0] for result in results)
        assert ledger.get_balance(user_id) == 750
        assert sum(tx.action == "topup" for tx in ledger.get_transactions(user_id)) == 1


def test_unknown_and_malformed_top_up_ids(ledger: Any, user_id: str, store: Any) -> None:
    ledger.add(user_id, 150, "purchase")
    ledger.set_auto_topup(user_id, below=100, amount=700)
    ledger.deduct(user_id, 100, "chat_message")
    real = requested(ledger, user_id)
    before = store_snapshot(store, f"credits:{bucket_tag(user_keys(user_id).bucket)}:*")
    prefix, local = real.rsplit(":", 1)
    ms, seq = local.split("-")
    with pytest.raises(TopupNotFoundError):
        ledger.confirm_topup(f"{prefix}:{ms}-{int(seq) + 1}", paid=True)
    for bad in ("", "top:", real + "x", real.replace("top:", "lot:"), 7, None):
        with pytest.raises(InvalidInputError):
            ledger.confirm_topup(bad, paid=True)
    with pytest.raises(InvalidInputError):
        ledger.confirm_topup(real, paid="yes")
    with pytest.raises(InvalidInputError):
        ledger.confirm_topup(real, paid=True, amount=0)
    assert store_snapshot(store, f"credits:{bucket_tag(user_keys(user_id).bucket)}:*") == before
    assert ledger.remove_auto_topup(user_id) is True
    with pytest.raises(TopupNotFoundError):
        ledger.confirm_topup(real, paid=True)
    assert ledger.get_auto_topup(user_id) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"below": 100},  # neither amount nor target
        {"below": 100, "amount": 10, "target": 500},  # both
        {"below": 100, "target": 50},  # a target under the threshold
        {"below": 0, "amount": 10},
        {"below": 100, "amount": -1},
        {"below": 100, "amount": 10, "max_per_month": 0},
    ],
)
def test_bad_auto_top_up_terms_are_refused(
    ledger: Any, user_id: str, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInputError):
        ledger.set_auto_topup(user_id, **kwargs)
    assert ledger.get_auto_topup(user_id) is None
