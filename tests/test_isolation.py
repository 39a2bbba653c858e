"""Hash tags: a user id can never reach another user's keys, or break out of its slot."""

from __future__ import annotations

from typing import Any

import pytest
from redis.crc import key_slot

from credits.keys import escape_user_id, parse_reservation_id, reservation_id, user_keys

TRICKY_IDS = [
    "alice",
    "{alice}",
    "alice}",
    "{",
    "}",
    "{}",
    "a:b",
    "a%3Ab",
    "a%b",
    "*",
    "user with spaces",
    "ユーザー",
    "emoji-🙂",
    "credits:{b1}:u:alice",
    "alice:log",
    "alice:idem:x",
]


def test_escaping_is_injective() -> None:
    escaped = {escape_user_id(user) for user in TRICKY_IDS}
    assert len(escaped) == len(TRICKY_IDS)
    assert all(":" not in e for e in escaped)


@pytest.mark.parametrize("user", TRICKY_IDS)
def test_every_key_of_a_user_shares_one_slot(user: str) -> None:
    keys = user_keys(user)
    slots = {key_slot(k.encode()) for k in [*keys.script_keys(), keys.idempotency("any:{key}")]}
    assert len(slots) == 1


@pytest.mark.parametrize("user", TRICKY_IDS)
def test_reservation_ids_round_trip(user: str) -> None:
    keys = user_keys(user)
    rid = reservation_id(keys, "0123456789abcdef0123")
    parsed = parse_reservation_id(rid)
    assert parsed is not None
    assert (parsed.user_id, parsed.hold_id) == (user, "0123456789abcdef0123")
    assert key_slot(rid.encode()) == key_slot(keys.account.encode())


def test_all_key_names_are_distinct_across_tricky_users() -> None:
    names: list[str] = []
    for user in TRICKY_IDS:
        keys = user_keys(user)
        names += [keys.account, keys.log, keys.holds, keys.open, keys.closed, keys.idempotency("x")]
    assert len(names) == len(set(names))


def test_tricky_users_stay_isolated(ledger: Any, unique_user: Any) -> None:
    suffix = unique_user()
    users = [f"{user}{suffix}" for user in TRICKY_IDS]
    for i, user in enumerate(users):
        ledger.initialize_user(user, 100 + i)
    for i, user in enumerate(users):
        ledger.deduct(user, i + 1, "chat_message")
    for i, user in enumerate(users):
        assert ledger.get_balance(user) == 100 + i - (i + 1)
        txs = ledger.get_transactions(user)
        assert [tx.type for tx in txs] == ["deduct", "initialize"]
        assert all(tx.user_id == user for tx in txs)
        hold = ledger.reserve(user, 1, "video_generation", ttl=60)
        assert ledger.get_reservation(hold.id).user_id == user
        assert ledger.settle(hold.id, 1).balance == 100 + i - (i + 1) - 1
        assert ledger.verify_balance(user).valid
