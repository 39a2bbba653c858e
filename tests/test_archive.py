"""The archive tier: copy-then-trim of old events, on SQLite and on a real PostgreSQL.

Every test runs with both archive backends and both clients (and on the Cluster
in the system run). History is written with the test's clock moved a day at a
time, so the hot window (90 days) is crossed without waiting for anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from archive_rig import (
    DAY_S,
    archive_mark,
    daily_history,
    every_tx_id,
    forget_user,
    hot_events,
    is_trim,
    unused_archive,
)
from ledger_fixtures import Backend, Clock, make_ledger, store_snapshot

from credits.errors import ArchiveUnavailableError, InvalidInputError
from credits.keys import user_keys
from credits.limits import HOT_DAYS_DEFAULT


@pytest.fixture
def raw(tiered: Any) -> Iterator[Any]:
    backend: Backend = tiered.test_backend
    client = backend.raw(decode_responses=True)
    yield client
    backend.close_raw(client)


def test_old_events_move_to_the_archive_and_every_read_still_adds_up(
    tiered: Any, clock: Clock, raw: Any, user_id: str
) -> None:
    daily_history(tiered, clock, user_id, 200)
    before = every_tx_id(tiered, user_id)
    report = tiered.archive_events(batch_events=40, users=[user_id])
    old = 200 - HOT_DAYS_DEFAULT + 1  # the initialize and the deducts past the window
    assert report.events_archived == old and report.users_archived == 1
    assert hot_events(raw, user_id) == 201 - old
    assert archive_mark(raw, user_id) == before[old - 1]
    assert tiered.archive.event_count(user_id) == old
    verification = tiered.verify_balance(user_id)
    assert verification.valid and verification.events_read == 0
    full = tiered.verify_balance(user_id, full=True)
    assert full.valid and full.events == 201 == full.events_read, full
    assert every_tx_id(tiered, user_id) == before
    # A second run has nothing due: the window has not moved.
    assert tiered.archive_events(users=[user_id]).events_archived == 0


def test_a_run_cut_between_copy_and_trim_loses_nothing_and_doubles_nothing(
    tiered: Any, clock: Clock, raw: Any, user_id: str
) -> None:
    daily_history(tiered, clock, user_id, 150)
    before = every_tx_id(tiered, user_id)
    owner = tiered._client if hasattr(tiered, "_client") else tiered
    execute = owner._execute
    trimmed: list[Any] = []

    def dies_at_the_second_trim(call: Any) -> Any:
        if is_trim(call) and trimmed:
            raise KeyboardInterrupt("the archiver died between copy and trim")
        return call

    owner._execute = _intercept(execute, dies_at_the_second_trim, trimmed)
    with pytest.raises(KeyboardInterrupt):
        tiered.archive_events(batch_events=20, users=[user_id])
    owner._execute = execute
    # One batch trimmed, the second copied but not trimmed: both tiers hold it.
    assert tiered.archive.event_count(user_id) == 40
    assert hot_events(raw, user_id) == 151 - 20
    assert every_tx_id(tiered, user_id) == before  # no duplicate, no gap
    report = tiered.archive_events(batch_events=20, users=[user_id])
    assert report.events_archived == 61 - 20
    assert tiered.archive.event_count(user_id) == 61
    assert every_tx_id(tiered, user_id) == before
    assert tiered.verify_balance(user_id, full=True).valid


def _intercept(execute: Any, before: Any, trimmed: list[Any]) -> Any:
    """The client's executor with ``before(call)`` first; successful trims recorded."""
    import inspect

    if inspect.iscoroutinefunction(execute):

        async def awaited(call: Any) -> Any:
            reply = await execute(before(call))
            if is_trim(call):
                trimmed.append(call)
            return reply

        return awaited

    def blocking(call: Any) -> Any:
        reply = execute(before(call))
        if is_trim(call):
            trimmed.append(call)
        return reply

    return blocking


def test_a_user_whose_cache_differs_is_not_archived(
    tiered: Any, clock: Clock, raw: Any, user_id: str
) -> None:
    daily_history(tiered, clock, user_id, 120)
    raw.hset(user_keys(user_id).account, "bal", 3)  # behind the ledger's back
    report = tiered.archive_events(users=[user_id])
    assert report.unverified == [user_id] and report.events_archived == 0
    assert hot_events(raw, user_id) == 121 and archive_mark(raw, user_id) is None
    tiered.rebuild_balance(user_id)  # leave the shared Redis valid for later reconciles


def test_an_archive_that_is_down_trims_nothing_and_the_ledger_goes_on(
    tiered: Any, clock: Clock, raw: Any, user_id: str
) -> None:
    daily_history(tiered, clock, user_id, 120)
    unused_archive_url = unused_archive(tiered.archive.kind)
    down = make_ledger(
        "sync",
        tiered.test_backend.url,
        cluster=tiered.test_backend.cluster,
        clock=clock,
        archive_url=unused_archive_url,
    )
    client, close = down
    try:
        with pytest.raises(ArchiveUnavailableError):
            client.archive_events(users=[user_id])
        assert hot_events(raw, user_id) == 121 and archive_mark(raw, user_id) is None
        assert client.deduct(user_id, 5, "chat_message").balance == 10**9 - 125
    finally:
        close()
    assert tiered.archive_events(users=[user_id]).events_archived == 120 - HOT_DAYS_DEFAULT + 1
    assert tiered.verify_balance(user_id, full=True).valid


def test_bad_input_archives_nothing(tiered: Any, clock: Clock, raw: Any, user_id: str) -> None:
    daily_history(tiered, clock, user_id, 95)
    before = store_snapshot(raw, f"*{user_id}*")
    for bad in ({"hot_days": 0}, {"batch_events": 0}, {"users": [""]}, {"hot_days": True}):
        with pytest.raises(InvalidInputError):
            tiered.archive_events(**bad)
    assert store_snapshot(raw, f"*{user_id}*") == before


def test_reads_need_the_archive_once_history_moved(
    tiered: Any, clock: Clock, redis_url: str, user_id: str
) -> None:
    if tiered.test_backend.cluster:
        pytest.skip("one backend is enough for a configuration error")
    daily_history(tiered, clock, user_id, 100)
    tiered.archive_events(users=[user_id])
    plain, close = make_ledger("sync", redis_url, clock=clock)
    try:
        assert len(plain.get_transactions(user_id, limit=5)) == 5  # the hot page needs nothing
        with pytest.raises(ArchiveUnavailableError, match="CREDITS_ARCHIVE_URL"):
            plain.get_transactions(user_id, limit=1000)
        with pytest.raises(ArchiveUnavailableError):
            plain.verify_balance(user_id, full=True)
        assert plain.verify_balance(user_id).valid  # incremental: from the checkpoint
    finally:
        close()


def test_the_beat_task_archives_through_a_real_worker(
    tasks_app: Any, workers: Any, redis_url: str, tmp_path: Any, user_id: str
) -> None:
    from credits.tasks import archive_events

    long_ago = Clock(start_s=time.time() - 200 * DAY_S)
    archive = f"sqlite:///{tmp_path}/archive.db"
    writer, close = make_ledger("sync", redis_url, clock=long_ago, archive_url=archive)
    try:
        daily_history(writer, long_ago, user_id, 60)
        before = every_tx_id(writer, user_id)
        worker = workers.start(env={"CREDITS_ARCHIVE_URL": archive})
        done = archive_events.apply_async(kwargs={"users": [user_id]}, queue=worker.queue).get(
            timeout=60
        )
        assert done == {"users": 1, "events": 60, "unverified": 0}  # all but the newest
        assert writer.archive.event_count(user_id) == 60
        assert every_tx_id(writer, user_id) == before
        assert writer.verify_balance(user_id, full=True).valid
    finally:
        forget_user(writer.redis, user_id)
        close()


def test_checkpoints_lost_after_archiving_are_rebuilt_from_the_archive(
    tiered: Any, clock: Clock, raw: Any, user_id: str
) -> None:
    daily_history(tiered, clock, user_id, 130)
    tiered.archive_events(users=[user_id])
    keys = user_keys(user_id)
    raw.delete(keys.checkpoints, keys.checkpoint_head)  # lost by hand
    found = tiered.verify_balance(user_id)
    assert found.valid and found.full and found.events == 131, found  # from the archive
    assert tiered.verify_balance(user_id).events_read == 0  # and checkpointed again
    raw.hset(keys.account, "bal", 1)
    raw.delete(keys.checkpoints, keys.checkpoint_head)
    assert tiered.rebuild_balance(user_id) == 10**9 - 130
    clock.advance(3 * DAY_S)
    tiered.deduct(user_id, 1, "chat_message")
    assert tiered.archive_events(users=[user_id]).events_archived == 3
    assert tiered.verify_balance(user_id, full=True).valid


def test_the_archive_is_configured_from_the_environment_and_scheduled(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Any
) -> None:
    from credits import Credits
    from credits.tasks.celeryconfig import beat_schedule

    assert beat_schedule["archive-events"]["task"] == "credits.tasks.archive_events"
    monkeypatch.setenv("CREDITS_ARCHIVE_URL", f"sqlite:///{tmp_path}/a.db")
    monkeypatch.setenv("CREDITS_HOT_DAYS", "30")
    with Credits(redis_url) as client:
        assert client.archive is not None and client.archive.kind == "sqlite"
        assert client.options.hot_days == 30
    monkeypatch.setenv("CREDITS_ARCHIVE_URL", "mysql://nope")
    with pytest.raises(InvalidInputError, match="postgresql"):
        Credits(redis_url)
