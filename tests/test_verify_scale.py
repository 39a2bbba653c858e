"""Verify and rebuild a user with 100,000 events while deducts keep coming."""

from __future__ import annotations

import threading

import pytest

from credits import BulkItem, Credits
from credits.keys import user_keys
from credits.limits import BULK_ITEMS_MAX

pytestmark = pytest.mark.slow

EVENTS = 100_000


@pytest.fixture(scope="module")
def big_user(redis_url: str) -> str:
    user = f"big-{threading.get_ident()}-{id(object())}"
    with Credits(redis_url) as client:
        client.initialize_user(user, 10**9)
        for _ in range((EVENTS - 1) // BULK_ITEMS_MAX):
            client.deduct_many([BulkItem(user, 1, "chat_message")] * BULK_ITEMS_MAX)
        assert client.verify_balance(user).events >= EVENTS - BULK_ITEMS_MAX
    return user


def _deduct_until(redis_url: str, user: str, stop: threading.Event, done: list[int]) -> None:
    with Credits(redis_url) as client:
        while not stop.is_set():
            client.deduct(user, 1, "chat_message")
            done.append(1)


def test_verify_stays_correct_while_deducts_run(redis_url: str, big_user: str) -> None:
    stop = threading.Event()
    done: list[int] = []
    writer = threading.Thread(target=_deduct_until, args=(redis_url, big_user, stop, done))
    writer.start()
    try:
        with Credits(redis_url) as client:
            for _ in range(3):
                verification = client.verify_balance(big_user)
                assert verification.valid, verification
                assert verification.events >= EVENTS - BULK_ITEMS_MAX
    finally:
        stop.set()
        writer.join()
    assert done, "the writer ran during the verification"


def test_rebuild_does_not_lose_racing_writes(redis_url: str, big_user: str) -> None:
    with Credits(redis_url) as client:
        truth = client.get_balance(big_user)
        client.redis.hset(user_keys(big_user).account, "bal", truth + 12345)  # corrupt it
        stop = threading.Event()
        done: list[int] = []
        writer = threading.Thread(target=_deduct_until, args=(redis_url, big_user, stop, done))
        writer.start()
        try:
            client.rebuild_balance(big_user)
        finally:
            stop.set()
            writer.join()
        verification = client.verify_balance(big_user)
        assert verification.valid, verification
        assert verification.cached == truth - len(done)
