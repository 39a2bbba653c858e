"""Reads that span both tiers, as steps: archived events first, then Redis's.

The archive holds every event up to the user's archive mark (``…:arch`` in Redis,
set by the same script call that trims them from the log), so "archived" and "hot"
never overlap in what a read takes from each: from the archive only events at or
before the mark, from Redis only events after it. A trim racing a read is harmless
because the mark is read *after* the hot page: anything the hot read missed had
been trimmed, so it is in the archive at or before the mark read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from credits import checkpoints
from credits.keys import UserKeys
from credits.protocol import ArchiveCall, Steps

Entry = tuple[str, dict[str, str]]


class Feeder(Protocol):
    def feed(self, entries: list[Any]) -> Steps[None]: ...


def archived_events(user: UserKeys, after: str, upto: str, chunk: int) -> Steps[list[Entry]]:
    """Archived events of the user in (after, upto], oldest first, at most ``chunk``."""
    rows: list[Entry] = yield ArchiveCall("events", (user.user_id, after, upto, chunk))
    return [(str(tx_id), dict(fields)) for tx_id, fields in rows]


def replay_archived(
    user: UserKeys, upto: str, chunk: int, into: Feeder, after: str = ""
) -> Steps[int]:
    """Feed the archived events in (after, upto] (upto: the archive mark) to ``into``."""
    count = 0
    while True:
        rows = yield from archived_events(user, after, upto, chunk)
        yield from into.feed(rows)
        count += len(rows)
        if len(rows) < chunk or not rows or rows[-1][0] == upto:
            return count
        after = rows[-1][0]


def page(
    user: UserKeys,
    *,
    upto: str,
    after: str,
    before: str,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
    newest_first: bool,
) -> Steps[list[Entry]]:
    """One page of archived events at or before ``upto`` (the mark)."""
    rows: list[Entry] = yield ArchiveCall(
        "events", (user.user_id, after, upto, limit, start_ms, end_ms, newest_first, before)
    )
    return [(str(tx_id), dict(fields)) for tx_id, fields in rows]


def last_at_or_before(user: UserKeys, at_ms: int, upto: str) -> Steps[Entry | None]:
    row = yield ArchiveCall("last_at_or_before", (user.user_id, at_ms, upto))
    return None if row is None else (str(row[0]), dict(row[1]))


def held_through(user: UserKeys, tx_id: str) -> Steps[int]:
    return int((yield ArchiveCall("held_through", (user.user_id, tx_id))))


def checkpoint_at_or_before(user: UserKeys, tx_id: str) -> Steps[checkpoints.Checkpoint | None]:
    row = yield ArchiveCall("checkpoint_at_or_before", (user.user_id, tx_id))
    if row is None:
        return None
    cp_id, kind, events, state = row
    return checkpoints.Checkpoint(str(cp_id), str(kind), int(events), dict(state))


def after_mark(mark: str) -> Callable[[str], bool]:
    """A filter keeping the ids after ``mark`` ("" keeps everything)."""
    if not mark:
        return lambda _tx_id: True
    bound = checkpoints.parse_id(mark)
    return lambda tx_id: checkpoints.parse_id(tx_id) > bound
