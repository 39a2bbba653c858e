"""The archiver: copy old events to the archive, then trim them from Redis, in bounded batches.

Why copy-then-trim, in this order, per batch of at most
:data:`~credits.limits.ARCHIVE_BATCH_EVENTS`:

1. verify the user incrementally, asking for a *mark* checkpoint at the last
   event older than the hot window (``CREDITS_HOT_DAYS``); a user whose cache
   disagrees with its log is left alone (and reported): nothing is archived
   behind a checkpoint that was not verified;
2. copy the batch (and the stored checkpoints it passes) to the archive in one
   transaction, ``ON CONFLICT DO NOTHING``, and read back in that transaction
   how many of the batch the archive holds;
3. only when that is all of them, trim them from the log with
   ``archive_trim.lua``, which moves the user's archive mark in the same atomic
   step and refuses if the log no longer holds exactly that batch.

A crash between 2 and 3 leaves the batch in both tiers: reads take it from Redis
(the mark did not move), and the next run copies it again (a no-op) and trims it,
so nothing is lost and nothing counted twice. An archive that is down fails step
2 (:class:`~credits.errors.ArchiveUnavailableError`) and nothing is trimmed; the
hot ledger never waits for the archive. A bucket being resharded fails step 3
with :class:`~credits.errors.StoreUnavailableError` (``TRYAGAIN``/``ASK``) and the
next run picks up where this one stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from credits import checkpoints, limits, replies
from credits.audit import mark_checkpoint, verify_balance
from credits.errors import InvalidInputError, StoreRefusedError
from credits.keys import UserKeys, context_args, unescape_user_id, user_keys, users_key
from credits.protocol import ArchiveCall, Batch, Command, Now, Steps, batch_values, run_script
from credits.scripts import script
from credits.validation import check_limit, check_user_id

DAY_MS = 24 * 60 * 60 * 1000
# A user is archived once its oldest hot event is this much older than the window, so
# each user is archived at most about once a day (one mark checkpoint a day), not at
# every run.
ARCHIVE_SLACK_MS = DAY_MS
SCAN_BUCKETS_PER_ROUND = 64
UNVERIFIED_REPORTED_MAX = 100


class ArchiveReport(BaseModel):
    """What one archive run did."""

    model_config = ConfigDict(frozen=True)

    users_checked: int = Field(ge=0)
    users_archived: int = Field(ge=0)
    events_archived: int = Field(ge=0, description="events copied and trimmed from Redis")
    cutoff_ms: int = Field(description="events older than this were due (the hot window)")
    unverified: list[str] = Field(
        default_factory=list,
        description=f"the first {UNVERIFIED_REPORTED_MAX} users left alone: cache and log differ",
    )

    def summary(self) -> dict[str, int]:
        return {
            "users": self.users_archived,
            "events": self.events_archived,
            "unverified": len(self.unverified),
        }


@dataclass
class _Tally:
    checked: int = 0
    archived_users: int = 0
    events: int = 0
    unverified: list[str] = field(default_factory=list)


def server_ms(now: Now) -> Steps[int]:
    """The time that decides: the client's explicit clock, else the Redis server's."""
    if now.ms is not None:
        return now.ms
    seconds, micros = yield Command(("TIME",))
    return int(seconds) * 1000 + int(micros) // 1000


def archive_events(
    now: Now,
    *,
    hot_days: int,
    batch_events: int = limits.ARCHIVE_BATCH_EVENTS,
    users: list[str] | None = None,
) -> Steps[ArchiveReport]:
    """Archive every user's events older than ``hot_days`` (or only ``users``')."""
    if users is not None:
        if not isinstance(users, list | tuple):
            raise InvalidInputError(f"users must be a list of user ids, got {type(users).__name__}")
        users = [check_user_id(u) for u in users]
    batch = check_limit(batch_events, limits.ARCHIVE_BATCH_EVENTS_MAX, "batch_events")
    days = check_limit(hot_days, limits.HOT_DAYS_MAX, "hot_days")
    yield ArchiveCall("ping")  # an archive that is down is found before any work
    at = yield from server_ms(now)
    cutoff = at - days * DAY_MS
    tally = _Tally()
    groups: list[range | None] = [None] if users is not None else _bucket_groups()
    for group in groups:
        found = list(users or ()) if group is None else (yield from _scan(group))
        for first in range(0, len(found), limits.ARCHIVE_SCAN_USERS):
            chosen = found[first : first + limits.ARCHIVE_SCAN_USERS]
            due = yield from _due(chosen, cutoff - ARCHIVE_SLACK_MS)
            tally.checked += len(chosen)
            for user_id in due:
                yield from _archive_user(now, user_keys(user_id), cutoff, batch, tally)
    return ArchiveReport(
        users_checked=tally.checked,
        users_archived=tally.archived_users,
        events_archived=tally.events,
        cutoff_ms=cutoff,
        unverified=tally.unverified,
    )


def _bucket_groups() -> list[range | None]:
    """The buckets, a group at a time: each group's registries are SSCANned in one pipeline."""
    return [
        range(first, min(first + SCAN_BUCKETS_PER_ROUND, limits.BUCKET_COUNT))
        for first in range(0, limits.BUCKET_COUNT, SCAN_BUCKETS_PER_ROUND)
    ]


def _scan(buckets: range) -> Steps[list[str]]:
    cursors: dict[int, int | str] = dict.fromkeys(buckets, 0)
    found: list[str] = []
    while cursors:
        answers = batch_values(
            (
                yield Batch(
                    tuple(
                        Command(("SSCAN", users_key(b), c, "COUNT", limits.ARCHIVE_SCAN_USERS))
                        for b, c in cursors.items()
                    )
                )
            )
        )
        still: dict[int, int | str] = {}
        for bucket, (cursor, members) in zip(cursors, answers, strict=True):
            found += [unescape_user_id(m) for m in members]
            if str(cursor) != "0":
                still[bucket] = cursor
        cursors = still
    return found


def _due(user_ids: list[str], before_ms: int) -> Steps[list[str]]:
    """The users whose oldest event in Redis is older than ``before_ms`` (one pipeline)."""
    if not user_ids:
        return []
    oldest = yield Batch(
        tuple(Command(("XRANGE", user_keys(u).log, "-", "+", "COUNT", 1)) for u in user_ids)
    )
    due = []
    for user_id, entries in zip(user_ids, batch_values(oldest), strict=True):
        if entries and checkpoints.id_ms(entries[0][0]) < before_ms:
            due.append(user_id)
    return due


def _archive_user(now: Now, user: UserKeys, cutoff: int, batch: int, tally: _Tally) -> Steps[None]:
    verification = yield from verify_balance(now, user.user_id, mark_ms=cutoff)
    if not verification.valid:
        if len(tally.unverified) < UNVERIFIED_REPORTED_MAX:
            tally.unverified.append(user.user_id)
        return
    mark, newest = batch_values(
        (
            yield Batch(
                (
                    Command(("GET", user.archived)),
                    Command(("XREVRANGE", user.log, "+", "-", "COUNT", 2)),
                )
            )
        )
    )
    if len(newest) < 2:
        return  # the log keeps its newest event
    # The mark: the state right after the last event before the window, replayed from
    # the last stored checkpoint before it (at most CHECKPOINT_EVERY_EVENTS events).
    base = yield from mark_checkpoint(user, cutoff)
    if base is None:
        return
    # Up to the checkpoint, but never the log's newest event (the log keeps its end).
    target = base.tx_id
    if checkpoints.parse_id(target) >= checkpoints.parse_id(newest[0][0]):
        target = newest[1][0]
    done = mark or ""
    moved = 0
    while not done or checkpoints.parse_id(done) < checkpoints.parse_id(target):
        low = f"({done}" if done else "-"
        entries = yield Command(("XRANGE", user.log, low, target, "COUNT", batch))
        if not entries:
            break
        last = entries[-1][0]
        passed = yield Command(("XRANGE", user.checkpoints, "-", last, "COUNT", batch))
        kept = [checkpoints.from_entry(e) for e in passed]
        rows = [(cp.tx_id, cp.kind, cp.events, cp.encode()) for cp in kept if cp is not None]
        held = yield ArchiveCall("write", (user.user_id, entries, rows))
        if int(held) != len(entries):
            raise StoreRefusedError(
                f"the archive holds {held} of the {len(entries)} events of {user.user_id!r} "
                f"up to {last} it was given: nothing trimmed"
            )
        reply = yield from run_script(
            script("archive_trim"),
            [user.log, user.checkpoints, user.checkpoint_head, user.archived],
            [*context_args(now), last, len(entries)],
        )
        replies.check(reply, replies.Context("archive_trim", user.user_id))
        done = last
        moved += len(entries)
    if moved:
        tally.archived_users += 1
        tally.events += moved
