"""Bad input gets a typed error and writes nothing: the store is dumped before and after."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from ledger_fixtures import store_snapshot

from credits.errors import CreditsError, InvalidInputError
from credits.limits import AMOUNT_MAX, METADATA_BYTES_MAX

GOOD_USER = f"sentinel-{uuid.uuid4().hex}"  # one per session: an external Redis keeps data

BAD_AMOUNTS: list[Any] = [0, -1, -(2**60), 2**53, 2**64, 1.0, 10.5, True, False, "10", None, [1]]
BAD_USERS: list[Any] = [
    "",
    "x" * 257,
    "a\nb",
    "tab\there",
    "nul\x00",
    "del\x7f",
    "\ud800",
    5,
    None,
    b"bytes",
]
BAD_METADATA: list[Any] = [
    [1, 2],
    "text",
    {"nan": float("nan")},
    {"inf": float("inf")},
    {"obj": object()},
    {"big": "x" * (METADATA_BYTES_MAX + 1)},
    {1: "non-str key is fine in JSON but"} | {"set": {1, 2}},
]
BAD_ACTIONS: list[Any] = ["", "a" * 129, "line\nbreak", None, 3]
BAD_LIMITS: list[Any] = [0, -1, 1001, 10**9, 1.5, True, "50", None]
BAD_TTLS: list[Any] = [
    0,
    -5,
    30 * 24 * 3600 + 1,
    10**12,
    1.5,
    True,
    "60",
    None,
    timedelta(0),
    timedelta(seconds=-1),
    timedelta(days=31),
    timedelta(milliseconds=999),
]


def _calls(ledger: Any) -> dict[str, Any]:
    return {
        "deduct": lambda **kw: ledger.deduct(
            kw.get("user_id", GOOD_USER),
            kw.get("amount", 1),
            kw.get("action", "chat_message"),
            kw.get("metadata"),
            idempotency_key=kw.get("idempotency_key"),
        ),
        "add": lambda **kw: ledger.add(
            kw.get("user_id", GOOD_USER),
            kw.get("amount", 1),
            kw.get("action", "purchase"),
            kw.get("metadata"),
            idempotency_key=kw.get("idempotency_key"),
        ),
        "reserve": lambda **kw: ledger.reserve(
            kw.get("user_id", GOOD_USER),
            kw.get("amount", 1),
            kw.get("action", "video_generation"),
            ttl=kw.get("ttl", 60),
            metadata=kw.get("metadata"),
            idempotency_key=kw.get("idempotency_key"),
        ),
    }


@pytest.fixture
def seeded(ledger: Any) -> Any:
    """The ledger, with a sentinel user whose state no bad call may change."""
    ledger.initialize_user(GOOD_USER, 1000)
    return ledger


def _state(redis_client: Any) -> tuple[list[bytes], dict[str, Any]]:
    """Every ledger key's name, and the sentinel user's keys with their values."""
    names = sorted(redis_client.scan_iter(match="credits:*", count=1000))
    return names, store_snapshot(redis_client, f"*{GOOD_USER}*")


def _refused(redis_client: Any, call: Any) -> CreditsError:
    before = _state(redis_client)
    with pytest.raises(InvalidInputError) as caught:
        call()
    assert _state(redis_client) == before
    assert str(caught.value)
    return caught.value


@pytest.mark.parametrize("operation", ["deduct", "add", "reserve"])
@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
def test_bad_amounts(seeded: Any, redis_client: Any, operation: str, amount: Any) -> None:
    error = _refused(redis_client, lambda: _calls(seeded)[operation](amount=amount))
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("operation", ["deduct", "add", "reserve"])
@pytest.mark.parametrize("user", BAD_USERS, ids=lambda u: repr(u)[:20])
def test_bad_user_ids(seeded: Any, redis_client: Any, operation: str, user: Any) -> None:
    _refused(redis_client, lambda: _calls(seeded)[operation](user_id=user))


@pytest.mark.parametrize("user", BAD_USERS, ids=lambda u: repr(u)[:20])
def test_bad_user_ids_on_reads(seeded: Any, redis_client: Any, user: Any) -> None:
    for read in (
        seeded.get_balance,
        seeded.get_account,
        seeded.get_transactions,
        seeded.verify_balance,
        seeded.rebuild_balance,
        seeded.list_reservations,
    ):
        _refused(redis_client, lambda read=read: read(user))
    _refused(redis_client, lambda: seeded.initialize_user(user))


@pytest.mark.parametrize("operation", ["deduct", "add", "reserve"])
@pytest.mark.parametrize("metadata", BAD_METADATA, ids=lambda m: repr(m)[:20])
def test_bad_metadata(seeded: Any, redis_client: Any, operation: str, metadata: Any) -> None:
    _refused(redis_client, lambda: _calls(seeded)[operation](metadata=metadata))


@pytest.mark.parametrize("operation", ["deduct", "add", "reserve"])
@pytest.mark.parametrize("action", BAD_ACTIONS, ids=repr)
def test_bad_actions(seeded: Any, redis_client: Any, operation: str, action: Any) -> None:
    _refused(redis_client, lambda: _calls(seeded)[operation](action=action))


@pytest.mark.parametrize("key", ["", "k" * 257, 7, b"k"], ids=repr)
def test_bad_idempotency_keys(seeded: Any, redis_client: Any, key: Any) -> None:
    _refused(redis_client, lambda: seeded.deduct(GOOD_USER, 1, "chat_message", idempotency_key=key))


@pytest.mark.parametrize("limit", BAD_LIMITS, ids=repr)
def test_bad_limits(seeded: Any, redis_client: Any, limit: Any) -> None:
    _refused(redis_client, lambda: seeded.get_transactions(GOOD_USER, limit=limit))


@pytest.mark.parametrize(
    "window",
    [
        {"start_time": -1},
        {"end_time": 1.5},
        {"start_time": "0"},
        {"start_time": 10, "end_time": 9},
        {"start_time": 2**60},
    ],
    ids=repr,
)
def test_bad_time_windows(seeded: Any, redis_client: Any, window: dict[str, Any]) -> None:
    _refused(redis_client, lambda: seeded.get_transactions(GOOD_USER, **window))


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
def test_bad_ttls(seeded: Any, redis_client: Any, ttl: Any) -> None:
    _refused(redis_client, lambda: _calls(seeded)["reserve"](ttl=ttl))


@pytest.mark.parametrize("credits", [-1, 2**53, 1.5, True, "100"], ids=repr)
def test_bad_initial_credits(seeded: Any, redis_client: Any, credits: Any) -> None:
    _refused(redis_client, lambda: seeded.initialize_user("someone-new", credits))


@pytest.mark.parametrize(
    "reservation_id",
    [
        "",
        "nope",
        "rsv:{b1}:user:zz",
        "rsv:{b999}:alice:0123456789abcdef0123",
        "rsv:{b12}:a:b:0123456789abcdef0123",
        42,
        None,
    ],
    ids=repr,
)
def test_malformed_reservation_ids(seeded: Any, redis_client: Any, reservation_id: Any) -> None:
    for call in (
        lambda: seeded.settle(reservation_id, 1),
        lambda: seeded.release(reservation_id),
        lambda: seeded.extend(reservation_id, 60),
        lambda: seeded.get_reservation(reservation_id),
    ):
        _refused(redis_client, call)


def test_bad_settle_amounts_and_reasons(seeded: Any, redis_client: Any) -> None:
    hold = seeded.reserve(GOOD_USER, 10, "video_generation", ttl=60)
    for actual in (-1, 1.5, True, None, 2**53):
        _refused(redis_client, lambda actual=actual: seeded.settle(hold.id, actual))
    _refused(redis_client, lambda: seeded.release(hold.id, reason=5))
    _refused(redis_client, lambda: seeded.release(hold.id, reason="r" * 5000))
    _refused(redis_client, lambda: seeded.list_reservations(GOOD_USER, status="weird"))
    assert seeded.get_reservation(hold.id).status == "open"


def test_a_valid_call_works_after_the_bad_ones(seeded: Any) -> None:
    before = seeded.get_balance(GOOD_USER)
    with pytest.raises(InvalidInputError):
        seeded.deduct(GOOD_USER, AMOUNT_MAX + 1, "chat_message")
    assert seeded.deduct(GOOD_USER, 1, "chat_message").balance == before - 1
    assert seeded.verify_balance(GOOD_USER).valid
