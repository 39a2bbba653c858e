"""Spend limits per calendar window: refuse with the numbers, write nothing, count settles.

Every test runs on both clients, single Redis and Cluster (the ``ledger``
fixture), with an explicit clock standing for the server's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from ledger_fixtures import Clock, store_snapshot

from credits.errors import InvalidInputError, LimitExceededError
from credits.keys import bucket_tag, user_keys
from credits.limits import SPEND_LIMITS_PER_USER_MAX


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


def ms(*parts: int) -> int:
    return int(at(*parts) * 1000)


def user_snapshot(store: Any, user_id: str) -> dict[Any, Any]:
    return store_snapshot(store, f"credits:{bucket_tag(user_keys(user_id).bucket)}:*")


def used(ledger: Any, user_id: str, name: str) -> int:
    return next(limit.used for limit in ledger.list_limits(user_id) if limit.name == name)


def test_a_deduct_past_the_limit_is_refused_with_the_numbers_and_writes_nothing(
    ledger: Any, user_id: str, clock: Clock, store: Any
) -> None:
    clock.now_s = at(2027, 3, 3, 10)
    ledger.add(user_id, 10_000, "purchase")
    limit = ledger.set_limit(user_id, "daily", 500, every="day")
    assert (limit.used, limit.window_start, limit.window_end) == (0, ms(2027, 3, 3), ms(2027, 3, 4))
    ledger.deduct(user_id, 300, "chat_message")
    ledger.deduct(user_id, 150, "chat_message")
    before = user_snapshot(store, user_id)
    with pytest.raises(LimitExceededError) as refused:
        ledger.deduct(user_id, 60, "chat_message")
    error = refused.value
    assert (error.limit, error.amount, error.used, error.requested) == ("daily", 500, 450, 60)
    with pytest.raises(LimitExceededError):
        ledger.reserve(user_id, 51, "video_generation", ttl=600)
    assert user_snapshot(store, user_id) == before
    ledger.deduct(user_id, 50, "chat_message")  # exactly up to the limit is allowed
    assert used(ledger, user_id, "daily") == 500
    clock.now_s = at(2027, 3, 4)  # a new UTC day
    assert used(ledger, user_id, "daily") == 0
    ledger.deduct(user_id, 500, "chat_message")
    assert ledger.get_balance(user_id) == 10_000 - 1000


@pytest.mark.parametrize(
    ("every", "now", "start", "end"),
    [
        ("hour", (2027, 3, 3, 10, 59), (2027, 3, 3, 10), (2027, 3, 3, 11)),
        ("week", (2027, 3, 7, 23, 59), (2027, 3, 1), (2027, 3, 8)),  # Sunday; weeks start Monday
        ("month", (2027, 2, 28, 23), (2027, 2, 1), (2027, 3, 1)),
    ],
)
def test_every_window_is_a_utc_calendar_window(
    ledger: Any,
    user_id: str,
    clock: Clock,
    every: str,
    now: tuple[int, ...],
    start: tuple[int, ...],
    end: tuple[int, ...],
) -> None:
    clock.now_s = at(*now)
    ledger.add(user_id, 100, "purchase")
    limit = ledger.set_limit(user_id, "cap", 10, every=every)
    assert (limit.window_start, limit.window_end) == (ms(*start), ms(*end))
    ledger.deduct(user_id, 10, "chat_message")
    with pytest.raises(LimitExceededError):
        ledger.deduct(user_id, 1, "chat_message")
    clock.now_s = at(*end)
    ledger.deduct(user_id, 10, "chat_message")  # the next window starts at 0


def test_a_scoped_limit_counts_only_its_actions(ledger: Any, user_id: str, clock: Clock) -> None:
    ledger.add(user_id, 1000, "purchase")
    ledger.set_limit(user_id, "video", 100, every="day", scope=["video_generation"])
    ledger.deduct(user_id, 500, "chat_message")  # not in scope: neither counted nor refused
    ledger.deduct(user_id, 100, "video_generation")
    with pytest.raises(LimitExceededError):
        ledger.deduct(user_id, 1, "video_generation")
    ledger.deduct(user_id, 100, "chat_message")
    [limit] = ledger.list_limits(user_id)
    assert (limit.scope, limit.used) == (["video_generation"], 100)


def test_a_settle_is_never_refused_but_counts_and_a_release_stops_counting(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    ledger.add(user_id, 10_000, "purchase")
    ledger.set_limit(user_id, "daily", 1000, every="day")
    hold = ledger.reserve(user_id, 800, "training_job", ttl=3600)
    assert used(ledger, user_id, "daily") == 800  # held credits count
    settlement = ledger.settle(hold.id, 1500)  # 700 over the hold, and over the limit
    assert settlement.charged == 1500
    assert used(ledger, user_id, "daily") == 1500
    with pytest.raises(LimitExceededError):
        ledger.deduct(user_id, 1, "chat_message")
    clock.advance(86_400)
    small = ledger.reserve(user_id, 300, "training_job", ttl=3600)
    ledger.settle(small.id, 100)  # 200 given back stop counting
    assert used(ledger, user_id, "daily") == 100
    released = ledger.reserve(user_id, 400, "training_job", ttl=3600)
    ledger.release(released.id)
    assert used(ledger, user_id, "daily") == 100


def test_an_expired_hold_stops_counting_but_only_in_the_window_that_counted_it(
    ledger: Any, user_id: str, clock: Clock
) -> None:
    clock.now_s = at(2027, 3, 3, 10, 30)
    ledger.add(user_id, 10_000, "purchase")
    ledger.set_limit(user_id, "hourly", 500, every="hour")
    ledger.reserve(user_id, 400, "video_generation", ttl=60)
    assert used(ledger, user_id, "hourly") == 400
    clock.advance(61)  # expired within the same hour: its credits stop counting
    assert used(ledger, user_id, "hourly") == 0
    ledger.reserve(user_id, 450, "video_generation", ttl=3600)  # 10:31, expires 11:31
    clock.now_s = at(2027, 3, 3, 11, 5)
    ledger.reserve(user_id, 450, "video_generation", ttl=3600)  # counted in the 11:00 window
    assert used(ledger, user_id, "hourly") == 450
    clock.now_s = at(2027, 3, 3, 11, 32)  # the 10:31 hold expires: the 11:00 count stays
    assert ledger.get_account(user_id).held == 450
    assert used(ledger, user_id, "hourly") == 450
    with pytest.raises(LimitExceededError):
        ledger.deduct(user_id, 51, "chat_message")


def test_limit_reached_is_written_once_per_window(
    ledger: Any, user_id: str, clock: Clock, store: Any
) -> None:
    clock.now_s = at(2027, 3, 3, 10)
    ledger.add(user_id, 1000, "purchase")
    ledger.set_limit(user_id, "daily", 100, every="day")
    ledger.deduct(user_id, 60, "chat_message")
    ledger.deduct(user_id, 40, "chat_message")  # reaches it
    with pytest.raises(LimitExceededError):
        ledger.deduct(user_id, 1, "chat_message")  # refused: writes no event either
    clock.advance(86_400)
    ledger.deduct(user_id, 100, "chat_message")
    keys = user_keys(user_id)
    reached = [
        fields["d"]
        for _, fields in store.xrange(keys.outbox)
        if fields["u"] == keys.escaped and fields["t"] == "limit.reached"
    ]
    assert len(reached) == 2
    assert '"limit":"daily"' in reached[0] and f'"window_start":"{ms(2027, 3, 3)}"' in reached[0]


def test_changing_a_limit_keeps_the_windows_use_and_a_new_window_kind_starts_afresh(
    ledger: Any, user_id: str
) -> None:
    ledger.add(user_id, 1000, "purchase")
    ledger.set_limit(user_id, "cap", 100, every="day")
    ledger.deduct(user_id, 80, "chat_message")
    assert ledger.set_limit(user_id, "cap", 90, every="day").used == 80
    with pytest.raises(LimitExceededError):
        ledger.deduct(user_id, 11, "chat_message")
    assert ledger.set_limit(user_id, "cap", 90, every="hour").used == 0
    assert ledger.remove_limit(user_id, "cap") is True
    assert ledger.remove_limit(user_id, "cap") is False
    ledger.deduct(user_id, 500, "chat_message")
    assert ledger.list_limits(user_id) == []


def test_every_limit_must_hold(ledger: Any, user_id: str) -> None:
    ledger.add(user_id, 10_000, "purchase")
    ledger.set_limit(user_id, "hourly", 100, every="hour")
    ledger.set_limit(user_id, "daily", 150, every="day")
    ledger.deduct(user_id, 100, "chat_message")
    with pytest.raises(LimitExceededError) as refused:
        ledger.deduct(user_id, 1, "chat_message")
    assert refused.value.limit == "hourly"
    ledger.remove_limit(user_id, "hourly")
    ledger.deduct(user_id, 50, "chat_message")
    with pytest.raises(LimitExceededError) as again:
        ledger.deduct(user_id, 1, "chat_message")
    assert (again.value.limit, again.value.used) == ("daily", 150)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("cap", 0), {"every": "day"}),
        (("cap", -1), {"every": "day"}),
        (("cap", 2**53), {"every": "day"}),
        (("cap", 10), {"every": "year"}),
        (("cap", 10), {"every": None}),
        (("cap", 10), {"every": "day", "scope": "chat"}),
        (("cap", 1.5), {"every": "day"}),
        (("", 10), {"every": "day"}),
        ((None, 10), {"every": "day"}),
    ],
)
def test_bad_limits_are_refused_and_write_nothing(
    ledger: Any, user_id: str, store: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    ledger.add(user_id, 5, "purchase")
    before = user_snapshot(store, user_id)
    with pytest.raises(InvalidInputError):
        ledger.set_limit(user_id, *args, **kwargs)
    assert user_snapshot(store, user_id) == before


def test_at_most_so_many_limits_per_user(ledger: Any, user_id: str) -> None:
    for index in range(SPEND_LIMITS_PER_USER_MAX):
        ledger.set_limit(user_id, f"l{index}", 1000, every="day")
    with pytest.raises(LimitExceededError) as refused:
        ledger.set_limit(user_id, "one-more", 1000, every="day")
    assert refused.value.limit == "spend_limits"
