"""Reads span both tiers as if nothing moved: every answer after archiving equals the one before.

The same user's history is read before ``archive_events`` and after it, with
cursors (``before`` / ``after``), time ranges that fall in the archive, in Redis
or across the boundary, and ``balance_at`` at instants on both sides; the answers
must be identical, on both archive backends and both clients.
"""

from __future__ import annotations

from typing import Any

import pytest
from archive_rig import DAY_S, archive_mark, daily_history, every_tx_id
from ledger_fixtures import Clock, make_ledger

from credits.limits import HOT_DAYS_DEFAULT


def _pages_back(ledger: Any, user_id: str, limit: int, **window: Any) -> list[str]:
    """Every tx id, newest first, paging back with ``before``."""
    seen: list[str] = []
    before = None
    while True:
        page = ledger.get_transactions(user_id, limit=limit, before=before, **window)
        seen += [tx.tx_id for tx in page]
        if len(page) < limit:
            return seen
        before = page[-1].tx_id


def test_every_read_answers_the_same_after_archiving(
    tiered: Any, clock: Clock, user_id: str
) -> None:
    start_ms = clock.now_ms
    daily_history(tiered, clock, user_id, 130, per_day=3)  # 391 events, 3 per millisecond
    tiered.add(user_id, 500, "purchase", expires_in=200 * DAY_S)  # a second lot
    tiered.verify_balance(user_id)  # the checkpoints a reconcile would have written
    hold = tiered.reserve(user_id, 50, "video_generation", ttl=3600)
    day = DAY_S * 1000
    windows = [
        {},
        {"start_time": start_ms + 10 * day, "end_time": start_ms + 20 * day},  # archived only
        {"start_time": start_ms + 30 * day, "end_time": start_ms + 60 * day},  # across
        {"start_time": start_ms + 100 * day},  # hot only
        {"end_time": start_ms + 35 * day},
    ]
    instants = [start_ms - 1, start_ms, start_ms + 5 * day, start_ms + 40 * day,
                start_ms + 40 * day + 1, start_ms + 120 * day, clock.now_ms]  # fmt: skip
    before = {
        "after": every_tx_id(tiered, user_id),
        "back": [_pages_back(tiered, user_id, 17, **w) for w in windows],
        "pages": [
            [tx.model_dump() for tx in tiered.get_transactions(user_id, limit=50, **w)]
            for w in windows
        ],
        "at": [tiered.balance_at(user_id, t).model_dump() for t in instants],
        "lots": [tiered.balance_at(user_id, t, lots=True).model_dump() for t in instants],
    }
    report = tiered.archive_events(batch_events=64, users=[user_id])
    assert report.events_archived == 3 * (130 - HOT_DAYS_DEFAULT) + 1
    assert archive_mark(tiered.test_backend.raw(decode_responses=True), user_id)
    after = {
        "after": every_tx_id(tiered, user_id),
        "back": [_pages_back(tiered, user_id, 17, **w) for w in windows],
        "pages": [
            [tx.model_dump() for tx in tiered.get_transactions(user_id, limit=50, **w)]
            for w in windows
        ],
        "at": [tiered.balance_at(user_id, t).model_dump() for t in instants],
        "lots": [tiered.balance_at(user_id, t, lots=True).model_dump() for t in instants],
    }
    assert after == before
    assert len(set(after["after"])) == len(after["after"]) == 393
    now = tiered.balance_at(user_id, clock.now_ms, lots=True)
    active = {lot.id: lot.remaining for lot in tiered.list_lots(user_id, status="active")}
    assert now.lots == active and len(active) == 2
    first_day = tiered.balance_at(user_id, start_ms, lots=True)
    assert list(first_day.lots.values()) == [10**9]
    # Cursors handed out before the move still work after it.
    middle = before["after"][100]
    older = tiered.get_transactions(user_id, limit=5, before=middle)
    assert [tx.tx_id for tx in older] == list(reversed(before["after"][95:100]))
    newer = tiered.get_transactions(user_id, limit=5, after=middle)
    assert [tx.tx_id for tx in newer] == list(reversed(before["after"][101:106]))
    assert tiered.settle(hold.id, 20).charged == 20
    assert tiered.verify_balance(user_id, full=True).valid


@pytest.mark.system  # runs the command as subprocesses
def test_export_streams_both_tiers_and_all_users_with_a_progress_bar(
    tmp_path: Any, clock: Clock, unique_user: Any
) -> None:
    import csv
    import io
    import json

    from cli_rig import WIDE, credits_cli
    from worker_rig import clean_env

    from credits.redis_server import RedisServer

    archive = f"sqlite:///{tmp_path}/archive.db"
    users = [unique_user() for _ in range(3)]
    with RedisServer(tmp_path / "redis", persistent=False) as server:
        client, close = make_ledger("sync", server.url, clock=clock, archive_url=archive)
        try:
            for user in users:
                daily_history(client, clock, user, 100)
            client.archive_events()
            assert client.archive.event_count() > 0
            expected = {user: every_tx_id(client, user) for user in users}
        finally:
            close()
        env = clean_env(CREDITS_REDIS_URL=server.url, CREDITS_ARCHIVE_URL=archive, **WIDE)
        one = credits_cli("export", users[0], "--format", "csv", env=env)
        assert one.returncode == 0, one.stderr
        rows = list(csv.DictReader(io.StringIO(one.stdout)))
        assert [row["tx_id"] for row in rows] == expected[users[0]]
        out = tmp_path / "all.jsonl"
        every = credits_cli("export", "--all", "-o", str(out), env=env)
        assert every.returncode == 0, every.stderr
        assert "export" in every.stderr and "3/3" in every.stderr  # the progress bar
        exported: dict[str, list[str]] = {}
        for line in out.read_text().splitlines():
            row = json.loads(line)
            exported.setdefault(row["user_id"], []).append(row["tx_id"])
        assert exported == expected
        # Without the archive, the archived part cannot be read: a typed error, exit 3.
        blind = credits_cli("export", users[0], env=clean_env(CREDITS_REDIS_URL=server.url))
        assert blind.returncode == 3 and "ArchiveUnavailableError" in blind.stderr
