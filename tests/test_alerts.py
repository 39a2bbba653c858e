"""Balance alerts: edge-triggered, once per crossing, under any concurrency.

The alert events are written by the script of the change that crosses, so
they are read here straight from the user's outbox.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from ledger_fixtures import Clock

from credits import Credits
from credits.errors import InvalidInputError, LimitExceededError
from credits.keys import user_keys
from credits.limits import ALERTS_PER_USER_MAX


def alert_events(store: Any, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    keys = user_keys(user_id)
    return [
        (fields["t"], json.loads(fields["d"]))
        for _, fields in store.xrange(keys.outbox)
        if fields["u"] == keys.escaped and fields["t"].startswith("balance.")
    ]


def test_an_alert_fires_once_per_crossing_each_way(ledger: Any, user_id: str, store: Any) -> None:
    ledger.add(user_id, 100, "purchase")
    alert = ledger.set_alert(user_id, "low", below=50)
    assert (alert.name, alert.below, alert.triggered) == ("low", 50, False)
    ledger.deduct(user_id, 40, "chat_message")  # 60: still above
    ledger.deduct(user_id, 10, "chat_message")  # 50: at the threshold is not below
    assert alert_events(store, user_id) == []
    tx = ledger.deduct(user_id, 1, "chat_message")  # 49: crosses
    ledger.deduct(user_id, 9, "chat_message")  # 40: still below, nothing new
    [(kind, data)] = alert_events(store, user_id)
    assert kind == "balance.below"
    assert (data["alert"], data["below"], data["balance"], data["tx"]) == (
        "low",
        "50",
        "49",
        tx.tx_id,
    )
    assert ledger.list_alerts(user_id)[0].triggered
    ledger.add(user_id, 5, "purchase")  # 45: below
    ledger.add(user_id, 5, "purchase")  # 50: recovered
    ledger.add(user_id, 500, "purchase")  # still above
    assert [kind for kind, _ in alert_events(store, user_id)] == [
        "balance.below", "balance.recovered",
    ]  # fmt: skip
    assert not ledger.list_alerts(user_id)[0].triggered


def test_depleted_fires_when_the_balance_reaches_zero(
    ledger: Any, user_id: str, store: Any
) -> None:
    ledger.add(user_id, 30, "purchase")
    hold = ledger.reserve(user_id, 30, "video_generation", ttl=600)
    ledger.settle(hold.id, 10)
    ledger.deduct(user_id, 20, "chat_message")
    assert [kind for kind, _ in alert_events(store, user_id)] == [
        "balance.depleted", "balance.depleted",
    ]  # fmt: skip


def test_an_alert_set_below_the_balance_fires_at_once(
    ledger: Any, user_id: str, store: Any
) -> None:
    ledger.add(user_id, 20, "purchase")
    alert = ledger.set_alert(user_id, "low", below=100)
    assert alert.triggered
    [(kind, data)] = alert_events(store, user_id)
    assert (kind, data["balance"], data["below"]) == ("balance.below", "20", "100")
    ledger.add(user_id, 100, "purchase")
    assert [kind for kind, _ in alert_events(store, user_id)][-1] == "balance.recovered"


def test_a_new_users_first_grant_is_not_a_recovery(ledger: Any, user_id: str, store: Any) -> None:
    ledger.set_alert(user_id, "low", below=100)  # made before the account has credits
    ledger.add(user_id, 1000, "purchase")
    kinds = [kind for kind, _ in alert_events(store, user_id)]
    assert kinds == ["balance.below", "balance.recovered"]  # it was below when it was set


def test_concurrent_calls_across_a_threshold_alternate_below_and_recovered(
    backend: Any, store: Any, user_id: str
) -> None:
    ledger = Credits(backend.url, cluster=backend.cluster)
    ledger.add(user_id, 100, "purchase")
    ledger.set_alert(user_id, "mid", below=100)

    def bounce() -> None:
        with Credits(backend.url, cluster=backend.cluster) as client:
            for _ in range(25):
                client.deduct(user_id, 10, "chat_message")
                client.add(user_id, 10, "purchase")

    threads = [threading.Thread(target=bounce) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kinds = [kind for kind, data in alert_events(store, user_id) if data.get("alert") == "mid"]
    assert kinds, "the balance crossed the threshold, so the alert fired"
    expected = ["balance.below", "balance.recovered"] * (len(kinds) // 2 + 1)
    assert kinds == expected[: len(kinds)]  # never two of a kind in a row
    assert ledger.get_balance(user_id) == 100 and kinds[-1] == "balance.recovered"
    ledger.close()


def test_the_default_alert_applies_to_every_user(
    backend: Any, store: Any, unique_user: Any, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    monkeypatch.setenv("CREDITS_DEFAULT_ALERT_BELOW", "25")
    with Credits(backend.url, cluster=backend.cluster, clock=clock) as ledger:
        users = [unique_user("default-alert") for _ in range(2)]
        for user in users:
            ledger.add(user, 30, "purchase")
            ledger.deduct(user, 10, "chat_message")
        for user in users:
            [(kind, data)] = alert_events(store, user)
            assert (kind, data["alert"], data["below"], data["balance"]) == (
                "balance.below", "*", "25", "20",
            )  # fmt: skip


def test_removing_an_alert_stops_it(ledger: Any, user_id: str, store: Any) -> None:
    ledger.add(user_id, 100, "purchase")
    ledger.set_alert(user_id, "low", below=50)
    assert ledger.remove_alert(user_id, "low") is True
    assert ledger.remove_alert(user_id, "low") is False
    ledger.deduct(user_id, 90, "chat_message")
    assert [kind for kind, _ in alert_events(store, user_id)] == []
    assert ledger.list_alerts(user_id) == []


@pytest.mark.parametrize("below", [0, -1, 2**53, 1.5, "10", None, True])
def test_bad_thresholds_are_refused(ledger: Any, user_id: str, below: Any) -> None:
    with pytest.raises(InvalidInputError):
        ledger.set_alert(user_id, "low", below=below)
    assert ledger.list_alerts(user_id) == []


def test_at_most_so_many_alerts_per_user(ledger: Any, user_id: str) -> None:
    for index in range(ALERTS_PER_USER_MAX):
        ledger.set_alert(user_id, f"a{index}", below=index + 1)
    with pytest.raises(LimitExceededError):
        ledger.set_alert(user_id, "one-more", below=5)
