"""Helpers for the archive tests: a ledger with an archive, and a long history written fast.

``tiered_ledger`` is a client (blocking or asyncio, single Redis or Cluster) whose
archive is the test's own (SQLite file or PostgreSQL schema) and whose clock the
test moves, so "200 days of history" is 200 calls with the clock moved a day
each, and the archiver's hot window is measured against that clock.
"""

from __future__ import annotations

from typing import Any

from ledger_fixtures import Clock

from credits import BulkItem
from credits.keys import user_keys

DAY_S = 24 * 60 * 60


def daily_history(ledger: Any, clock: Clock, user_id: str, days: int, per_day: int = 1) -> None:
    """An initialize, then ``per_day`` deducts a day for ``days`` days (the clock moves)."""
    ledger.initialize_user(user_id, 10**9)
    for _ in range(days):
        clock.advance(DAY_S)
        if per_day == 1:
            ledger.deduct(user_id, 1, "chat_message", {"day": 1})
        else:
            results = ledger.deduct_many([BulkItem(user_id, 1, "chat_message")] * per_day)
            assert not [r for r in results if isinstance(r, Exception)]


def hot_events(store: Any, user_id: str) -> int:
    return int(store.xlen(user_keys(user_id).log))


def archive_mark(store: Any, user_id: str) -> str | None:
    mark = store.get(user_keys(user_id).archived)
    return None if mark is None else str(mark)


def every_tx_id(ledger: Any, user_id: str) -> list[str]:
    """Every tx id across both tiers, oldest first, paging with ``after``."""
    seen: list[str] = []
    cursor = "0-0"
    while True:
        page = ledger.get_transactions(user_id, limit=37, after=cursor)
        if not page:
            return seen
        seen += [tx.tx_id for tx in reversed(page)]
        cursor = page[0].tx_id


def unused_archive(kind: str) -> str:
    """An archive of ``kind`` that does not answer: a PostgreSQL port nothing listens on,
    a file SQLite cannot create."""
    if kind == "sqlite":
        return "sqlite:////proc/credits-no-such-dir/archive.db"
    import pg_rig

    return f"postgresql://credits@127.0.0.1:{pg_rig._free_port()}/postgres"


def is_trim(call: Any) -> bool:
    """The call is the archiver's trim script (by SHA, or by source after a NOSCRIPT)."""
    from credits.scripts import script

    trim = script("archive_trim")
    args = getattr(call, "args", ())
    if not args or args[0] not in ("EVALSHA", "EVAL"):
        return False
    return trim.sha in args or trim.source in args


def forget_user(raw: Any, user_id: str) -> None:
    """Remove a user the test archived from the shared Redis: its history now lives in
    the test's own archive, which goes away with the test, so a later test that reads
    every user (export, a full reconcile) must not meet it."""
    keys = user_keys(user_id)
    for key in (
        keys.account, keys.log, keys.holds, keys.open, keys.closed, keys.lots, keys.lots_done,
        keys.checkpoints, keys.checkpoint_head, keys.archived,
    ):  # fmt: skip
        raw.delete(key)
    raw.srem(keys.users, keys.escaped)
    raw.zrem(keys.lot_due, keys.escaped)
    raw.zrem(keys.renew_due, keys.escaped)
