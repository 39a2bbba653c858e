"""Verified checkpoints: verify and reconcile read only what was written since the last one.

Each test runs on both clients (and on the Cluster in the system run). The
checkpoint stream and head are looked at behind the ledger's back, and
tampered with on purpose, to show that an incremental verify still catches a
wrong cache and a full one catches a wrong checkpoint.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ledger_fixtures import store_snapshot

from credits import BulkItem
from credits.errors import InvalidInputError
from credits.keys import user_keys
from credits.limits import BULK_ITEMS_MAX, CHECKPOINT_EVERY_EVENTS


def _deducts(ledger: Any, user_id: str, count: int) -> None:
    while count > 0:
        step = min(count, BULK_ITEMS_MAX)
        results = ledger.deduct_many([BulkItem(user_id, 1, "chat_message")] * step)
        assert all(not isinstance(r, Exception) for r in results)
        count -= step


def test_a_second_verify_reads_only_what_was_written_since(ledger: Any, user_id: str) -> None:
    ledger.initialize_user(user_id, 1000)
    _deducts(ledger, user_id, 5)
    first = ledger.verify_balance(user_id)
    assert first.valid and first.full and first.checkpoint is None
    assert (first.events, first.events_read) == (6, 6)
    again = ledger.verify_balance(user_id)
    assert again.valid and not again.full
    assert (again.events, again.events_read) == (6, 0)
    assert again.checkpoint == ledger.get_transactions(user_id, limit=1)[0].tx_id
    _deducts(ledger, user_id, 3)
    later = ledger.verify_balance(user_id)
    assert later.valid and (later.events, later.events_read) == (9, 3)
    full = ledger.verify_balance(user_id, full=True)
    assert full.valid and full.full and (full.events, full.events_read) == (9, 9)


def test_periodic_checkpoints_every_n_events_and_one_head(
    ledger: Any, user_id: str, store: Any
) -> None:
    ledger.initialize_user(user_id, 10**6)
    _deducts(ledger, user_id, 2 * CHECKPOINT_EVERY_EVENTS + 10)
    assert ledger.verify_balance(user_id).valid
    keys = user_keys(user_id)
    stored = store.xrange(keys.checkpoints)
    assert [int(fields["n"]) for _, fields in stored] == [
        CHECKPOINT_EVERY_EVENTS,
        2 * CHECKPOINT_EVERY_EVENTS,
    ]
    assert {fields["k"] for _, fields in stored} == {"p"}
    head_id, events, _ = store.get(keys.checkpoint_head).split("|", 2)
    assert int(events) == 2 * CHECKPOINT_EVERY_EVENTS + 11
    assert head_id == ledger.get_transactions(user_id, limit=1)[0].tx_id
    # A stored checkpoint's balance is the log's balance right after its event.
    cp_id, fields = stored[0]
    (_, event), *_ = store.xrange(keys.log, cp_id, cp_id)
    assert json.loads(fields["s"])["balance"] == int(event["B"])


def test_an_incremental_verify_still_catches_a_wrong_cache(
    ledger: Any, user_id: str, store: Any
) -> None:
    ledger.initialize_user(user_id, 500)
    assert ledger.verify_balance(user_id).valid  # the head now stands at the end
    keys = user_keys(user_id)
    head_before = store.get(keys.checkpoint_head)
    store.hset(keys.account, "bal", 450)  # behind the ledger's back
    found = ledger.verify_balance(user_id)
    assert not found.valid and found.events_read == 0
    assert (found.cached, found.calculated, found.difference) == (450, 500, -50)
    assert store.get(keys.checkpoint_head) == head_before  # no head over a wrong cache
    assert ledger.rebuild_balance(user_id) == 500
    assert ledger.verify_balance(user_id).valid


def test_a_full_verify_catches_a_tampered_checkpoint(ledger: Any, user_id: str, store: Any) -> None:
    ledger.initialize_user(user_id, 10**6)
    _deducts(ledger, user_id, CHECKPOINT_EVERY_EVENTS + 5)
    assert ledger.verify_balance(user_id).valid
    keys = user_keys(user_id)
    (cp_id, fields), *_ = store.xrange(keys.checkpoints)
    state = json.loads(fields["s"])
    state["balance"] += 7
    store.xdel(keys.checkpoints, cp_id)
    store.delete(keys.checkpoint_head)
    # Written back with its id (below the stream's last id, so by XADD's own rule
    # only into a fresh stream): a checkpoint that lies.
    store.delete(keys.checkpoints)
    store.xadd(keys.checkpoints, {"k": "p", "n": fields["n"], "s": json.dumps(state)}, id=cp_id)
    full = ledger.verify_balance(user_id, full=True)
    assert not full.valid
    assert any(f"checkpoint {cp_id} records balance" in p for p in full.problems), full.problems
    # The incremental verify starts from the lie and disagrees with the cache too.
    assert not ledger.verify_balance(user_id).valid
    store.delete(keys.checkpoints, keys.checkpoint_head)  # leave the shared Redis valid
    assert ledger.verify_balance(user_id).valid


def test_reconcile_costs_what_was_written_since_the_last(ledger: Any, unique_user: Any) -> None:
    users = [unique_user() for _ in range(5)]
    for user in users:
        ledger.initialize_user(user, 100)
        _deducts(ledger, user, 4)
    for user in users:
        ledger.verify_balance(user)
    quiet = ledger.verify_balance(users[0])
    assert quiet.events_read == 0
    _deducts(ledger, users[1], 2)
    assert ledger.verify_balance(users[1]).events_read == 2


def test_rebuild_from_a_checkpoint_restores_a_lost_account(
    ledger: Any, user_id: str, store: Any
) -> None:
    ledger.initialize_user(user_id, 10**6)
    _deducts(ledger, user_id, CHECKPOINT_EVERY_EVENTS + 3)
    hold = ledger.reserve(user_id, 40, "video_generation", ttl=600)
    assert ledger.verify_balance(user_id).valid
    before = ledger.get_account(user_id)
    store.delete(user_keys(user_id).account)  # lost, with its log and checkpoints left
    assert not ledger.verify_balance(user_id).valid
    assert ledger.rebuild_balance(user_id) == before.balance
    after = ledger.get_account(user_id)
    assert (after.balance, after.held, after.created_at) == (
        before.balance,
        before.held,
        before.created_at,
    )
    first = ledger.get_transactions(user_id, limit=1, after="0-0")[0]
    assert ledger.initialize_user(user_id, 10**6).tx_id == first.tx_id  # the first result
    assert ledger.get_balance(user_id) == before.balance  # not paid twice
    assert ledger.settle(hold.id, 40).charged == 40
    assert ledger.verify_balance(user_id, full=True).valid


def test_bad_input_writes_nothing(ledger: Any, user_id: str, store: Any) -> None:
    ledger.initialize_user(user_id, 5)
    before = store_snapshot(store, f"*{user_id}*")
    with pytest.raises(InvalidInputError):
        ledger.verify_balance(user_id, full="yes")
    with pytest.raises(InvalidInputError):
        ledger.reconcile(full=1)
    assert store_snapshot(store, f"*{user_id}*") == before
