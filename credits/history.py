"""Reading a user's log: pages of transactions with cursors, and the balance at any time.

Everything here is a plain stream read (``XREVRANGE`` / ``XRANGE``), never a
script, so a read of any size never holds Redis for more than its own page.
"""

from __future__ import annotations

import re
from typing import Any, Final

from credits import checkpoints, limits, log_format
from credits.archive import reads as archive_reads
from credits.archive.reads import after_mark
from credits.errors import InvalidInputError
from credits.keys import LEGACY_LOT_ID, UserKeys, lot_id, reservation_id, user_keys
from credits.lots.replay import LogReplay
from credits.models import AccountAt, Transaction
from credits.protocol import Batch, Command, Steps, batch_values
from credits.validation import check_limit, check_time_ms, check_user_id, decode_metadata

# A tx id is a stream id, "<ms>-<seq>", in canonical form (no leading zeros).
_TX_ID: Final = re.compile(r"^(0|[1-9][0-9]{0,15})-(0|[1-9][0-9]{0,19})$")
SEQUENCE_MAX: Final = 2**64 - 1


def check_tx_id(value: object, name: str) -> tuple[int, int] | None:
    """A tx id cursor as (ms, seq), or None; anything but the canonical form is refused."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a tx_id str, got {type(value).__name__}")
    match = _TX_ID.match(value)
    if match is None:
        raise InvalidInputError(
            f"{name} must be a tx_id like '1700000000000-0', got {value[:64]!r}"
        )
    ms, seq = int(match[1]), int(match[2])
    if ms > limits.AMOUNT_MAX or seq > SEQUENCE_MAX:
        raise InvalidInputError(f"{name} {value!r} is out of range")
    return ms, seq


def event_lot_deltas(fields: dict[str, str]) -> dict[str, int]:
    """{lot id within the user: balance delta} of an event; before lots, the legacy lot's."""
    encoded = fields.get(log_format.LOTS)
    if encoded is None:
        delta = int(fields[log_format.BALANCE_DELTA])
        return {LEGACY_LOT_ID: delta} if delta else {}
    return log_format.parse_lot_deltas(encoded)


def parse_transaction(user: UserKeys, entry_id: str, fields: dict[str, str]) -> Transaction:
    hold_id = fields.get(log_format.HOLD, "")
    kind = fields[log_format.TYPE]
    extra = fields.get(log_format.EXTRA, "") if kind == "settle" else ""
    shortfall, _, late = extra.partition(":")
    return Transaction(
        tx_id=entry_id,
        user_id=user.user_id,
        type=kind,
        amount=int(fields[log_format.AMOUNT]),
        balance_delta=int(fields[log_format.BALANCE_DELTA]),
        held_delta=int(fields[log_format.HELD_DELTA]),
        balance_after=int(fields[log_format.BALANCE_AFTER]),
        action=fields[log_format.ACTION],
        metadata=decode_metadata(fields.get(log_format.METADATA, "")),
        timestamp=int(entry_id.partition("-")[0]),
        reservation_id=reservation_id(user, hold_id) if hold_id else None,
        shortfall=int(shortfall) if shortfall else 0,
        late=late == "late",
        lots={lot_id(user, lot): delta for lot, delta in event_lot_deltas(fields).items()},
        forfeited=int(fields.get(log_format.FORFEITED, 0)),
    )


def get_transactions(
    user_id: str,
    limit: int,
    start_time: int | None,
    end_time: int | None,
    before: str | None = None,
    after: str | None = None,
) -> Steps[list[Transaction]]:
    """A page of the user's events, newest first.

    ``start_time`` / ``end_time`` are Unix ms, inclusive; ``before`` / ``after``
    are tx ids, exclusive. Without ``after`` the page is the ``limit`` newest
    events that match; with ``after`` it is the ``limit`` oldest events after
    that cursor (still listed newest first), so polling with
    ``after=<newest tx_id seen>`` and paging back with ``before=<oldest tx_id of
    the page>`` both reach every event, however many share a millisecond.
    """
    user = user_keys(check_user_id(user_id))
    count = check_limit(limit, limits.TRANSACTIONS_LIMIT_MAX)
    start = check_time_ms(start_time, "start_time")
    end = check_time_ms(end_time, "end_time")
    before_id = check_tx_id(before, "before")
    after_id = check_tx_id(after, "after")
    if start is not None and end is not None and start > end:
        raise InvalidInputError(f"start_time {start} is after end_time {end}")
    if before_id == (0, 0):
        return []  # nothing is older than the first possible id (Redis refuses "(0-0")
    high = "+" if end is None else str(end)
    if before_id is not None and (end is None or before_id <= (end, SEQUENCE_MAX)):
        high = f"({before}"
    low = "-" if start is None else str(start)
    if after_id is not None and (start is None or after_id >= (start, 0)):
        low = f"({after}"
    if after_id is not None:
        hot_read = Command(("XRANGE", user.log, low, high, "COUNT", count))
    else:
        hot_read = Command(("XREVRANGE", user.log, high, low, "COUNT", count))
    # The archive mark is read after the hot page: whatever the page missed because a
    # trim ran meanwhile is at or before the mark, so the archive has it.
    hot, mark = batch_values((yield Batch((hot_read, Command(("GET", user.archived))))))
    entries = list(hot)
    if mark:
        entries = yield from _with_archived(
            user, entries, str(mark), count, start, end, before or "", after, after_id is not None
        )
    elif after_id is not None:
        entries.reverse()
    return [parse_transaction(user, entry_id, fields) for entry_id, fields in entries]


def _with_archived(
    user: UserKeys,
    hot: list[Any],
    mark: str,
    count: int,
    start: int | None,
    end: int | None,
    before: str,
    after: str | None,
    oldest_first: bool,
) -> Steps[list[Any]]:
    """A page spanning both tiers, newest first: the archive's events at or before the
    mark, Redis's after it (never one event twice, never one missed)."""
    fresh = after_mark(mark)
    kept = [entry for entry in hot if fresh(entry[0])]
    mark_id = _id(mark)
    reaches_archive = (start is None or start <= mark_id[0]) and (
        not before or _id(before) > (0, 0)
    )
    if after is not None and _id(after) >= mark_id:
        reaches_archive = False
    if not oldest_first:
        if len(kept) == count or not reaches_archive:
            return kept
        older = yield from archive_reads.page(
            user, upto=mark, after=after or "", before=before, start_ms=start, end_ms=end,
            limit=count - len(kept), newest_first=True,
        )  # fmt: skip
        return kept + older
    oldest = []
    if reaches_archive:
        oldest = yield from archive_reads.page(
            user, upto=mark, after=after or "", before=before, start_ms=start, end_ms=end,
            limit=count, newest_first=False,
        )  # fmt: skip
    merged = (oldest + kept)[:count]
    merged.reverse()
    return merged


def _id(tx_id: str) -> tuple[int, int]:
    ms, _, seq = tx_id.partition("-")
    return int(ms), int(seq or 0)


def balance_at(user_id: str, at: int, lots: bool = False) -> Steps[AccountAt]:
    """Balance and held right after the last event stamped at or before ``at`` (Unix ms).

    One ``XREVRANGE ... COUNT 1`` (with the archive mark, in one round trip):
    every event records the balance and held after it, so this is O(log N) and
    exact; an instant before the oldest event Redis still holds is one index
    probe of the archive. Events written before the held field existed are
    completed from the last checkpoint before them plus at most
    :data:`~credits.limits.CHECKPOINT_EVERY_EVENTS` events (a bounded read), and
    so are the lots (``lots=True``): the checkpoint's lots, replayed on to the event.
    """
    if not isinstance(lots, bool):
        raise InvalidInputError(f"lots must be a bool, got {type(lots).__name__}")
    user = user_keys(check_user_id(user_id))
    moment = check_time_ms(at, "at")
    if moment is None:
        raise InvalidInputError("at must be a time in Unix ms, not None")
    hot, mark = batch_values(
        (
            yield Batch(
                (
                    Command(("XREVRANGE", user.log, str(moment), "-", "COUNT", 1)),
                    Command(("GET", user.archived)),
                )
            )
        )
    )
    entry = hot[0] if hot else None
    archived = False
    if entry is None and mark:
        entry = yield from archive_reads.last_at_or_before(user, moment, str(mark))
        archived = entry is not None
    if entry is None:
        return AccountAt(user_id=user_id, at=moment, balance=0, held=0, tx_id=None)
    tx_id, fields = entry
    held = fields.get(log_format.HELD_AFTER)
    if held is None:
        held = yield from _held_up_to(user, tx_id, str(mark or ""), archived)
    remaining = (yield from _lots_at(user, tx_id, str(mark or ""))) if lots else None
    return AccountAt(
        user_id=user_id,
        at=moment,
        balance=int(fields[log_format.BALANCE_AFTER]),
        held=int(held),
        tx_id=tx_id,
        lots=remaining,
    )


def _lots_at(
    user: UserKeys, tx_id: str, mark: str, chunk: int = limits.LOG_CHUNK_EVENTS
) -> Steps[dict[str, int]]:
    """Each active lot's remaining right after ``tx_id``: the last checkpoint at or before
    it (Redis's, else the archive's), replayed on to it."""
    at_id = _id(tx_id)
    base = yield from checkpoints.last_at_or_before(user, tx_id)
    if base is None and mark:
        base = yield from archive_reads.checkpoint_at_or_before(user, tx_id)
    replay = base.replay() if base is not None else LogReplay()
    after = base.tx_id if base is not None else ""
    if mark and (not after or _id(after) < _id(mark)):
        upto = tx_id if at_id <= _id(mark) else mark
        while True:
            rows = yield from archive_reads.archived_events(user, after, upto, chunk)
            replay.feed(rows)
            if len(rows) < chunk or not rows:
                break
            after = rows[-1][0]
        after = upto
    if not after or _id(after) < at_id:
        start = f"({after}" if after else "-"
        while True:
            entries = yield Command(("XRANGE", user.log, start, tx_id, "COUNT", chunk))
            replay.feed(entries)
            if len(entries) < chunk or not entries or entries[-1][0] == tx_id:
                break
            start = f"({entries[-1][0]}"
    replay.finish()
    return {
        lot_id(user, lot["i"]): int(lot["r"])
        for lot in replay.lots.values()
        if lot.get("st") in ("active", "pending")
    }


def _held_up_to(
    user: UserKeys, upto: str, mark: str, archived: bool, chunk: int = limits.LOG_CHUNK_EVENTS
) -> Steps[int]:
    """Held right after ``upto``, for an event written before the held field existed."""
    if archived:
        return (yield from archive_reads.held_through(user, upto))
    base = yield from checkpoints.last_at_or_before(user, upto)
    if base is not None:
        held, start = base.held, f"({base.tx_id}"
    elif mark:
        held, start = (yield from archive_reads.held_through(user, mark)), f"({mark}"
    else:
        held, start = 0, "-"
    while True:
        entries = yield Command(("XRANGE", user.log, start, upto, "COUNT", chunk))
        held += sum(int(fields[log_format.HELD_DELTA]) for _, fields in entries)
        if len(entries) < chunk or not entries or entries[-1][0] == upto:
            return held
        start = f"({entries[-1][0]}"
