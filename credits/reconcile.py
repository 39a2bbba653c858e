"""Reconcile: verify every user against the log, and rebuild the ones that differ.

Users are found through the per-bucket registries (a set per bucket, in the
bucket's slot), walked with SSCAN in bounded batches, so the walk works the
same on a Redis Cluster and never asks one node for everything at once.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from credits import limits
from credits.audit import parse_snapshot, rebuild_balance, snapshot_call, verify_snapshot
from credits.errors import InvalidInputError
from credits.keys import unescape_user_id, user_keys, users_key
from credits.models import BalanceVerification
from credits.protocol import Batch, Command, Now, Steps, batch_values, run_scripts
from credits.scripts import script
from credits.validation import check_limit

INVALID_USERS_REPORTED_MAX = 100

Progress = Callable[[int, int], None]
"""Called after each user with (users checked so far, users registered in all)."""


class BalanceDifference(BaseModel):
    """One user whose cached account differed from its log: what an operator must see."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    cached: int
    calculated: int
    held_cached: int
    held_calculated: int
    problems: list[str] = Field(default_factory=list)


class ReconcileReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    checked: int = Field(ge=0)
    invalid: int = Field(ge=0)
    fixed: int = Field(ge=0)
    events_read: int = Field(
        default=0, ge=0, description="log events replayed: what was written since the checkpoints"
    )
    invalid_users: list[str] = Field(
        default_factory=list, description=f"the first {INVALID_USERS_REPORTED_MAX} that differed"
    )
    differences: list[BalanceDifference] = Field(
        default_factory=list,
        description=f"cached -> calculated of the first {INVALID_USERS_REPORTED_MAX} that differed",
    )

    def summary(self) -> dict[str, int]:
        return {"checked": self.checked, "invalid": self.invalid, "fixed": self.fixed}


def count_users() -> Steps[int]:
    counts = batch_values(
        (yield Batch(tuple(Command(("SCARD", users_key(b))) for b in range(limits.BUCKET_COUNT))))
    )
    return sum(int(c) for c in counts)


def reconcile(
    clock_ms: Callable[[], Now],
    *,
    fix: bool,
    batch_size: int = limits.RECONCILE_BATCH_USERS_DEFAULT,
    progress: Progress | None = None,
    full: bool = False,
) -> Steps[ReconcileReport]:
    """Walk every bucket's registry with SSCAN, verify each user, rebuild on ``fix``.

    The registries are scanned a group of buckets at a time, each group's SSCANs
    in one pipeline, so a store with few users costs a few round trips rather
    than one per bucket; each reply holds about ``batch_size`` users.

    Incremental: the users found are snapshotted ``batch_size`` at a time in one
    pipeline, each snapshot bringing the user's last verified checkpoint, so a
    user with nothing new since costs its share of one round trip and no log
    read; one with news costs the events written since. ``full`` replays every
    user's whole log (archived events too) instead.
    """
    batch = check_limit(batch_size, limits.RECONCILE_BATCH_USERS_MAX, "batch_size")
    if not isinstance(full, bool):
        raise InvalidInputError(f"full must be a bool, got {type(full).__name__}")
    if progress is not None and not callable(progress):
        raise InvalidInputError("progress must be None or a callable(checked, total)")
    total = (yield from count_users()) if progress is not None else 0
    tally = _Tally()
    for first in range(0, limits.BUCKET_COUNT, SCAN_BUCKETS_PER_ROUND):
        cursors: dict[int, int | str] = {
            b: 0 for b in range(first, min(first + SCAN_BUCKETS_PER_ROUND, limits.BUCKET_COUNT))
        }
        while cursors:
            replies = batch_values(
                (
                    yield Batch(
                        tuple(
                            Command(("SSCAN", users_key(b), cursor, "COUNT", batch))
                            for b, cursor in cursors.items()
                        )
                    )
                )
            )
            still_scanning: dict[int, int | str] = {}
            found: list[str] = []
            for bucket, (cursor, members) in zip(cursors, replies, strict=True):
                found += [unescape_user_id(escaped) for escaped in members]
                if str(cursor) != "0":
                    still_scanning[bucket] = cursor
            for first_user in range(0, len(found), batch):
                group = found[first_user : first_user + batch]
                yield from tally.check_many(clock_ms, group, fix, full, progress, total)
            cursors = still_scanning
    return ReconcileReport(
        checked=tally.checked,
        invalid=tally.invalid,
        fixed=tally.fixed,
        events_read=tally.events_read,
        invalid_users=tally.invalid_users,
        differences=tally.differences,
    )


SCAN_BUCKETS_PER_ROUND = 64


class _Tally:
    """What reconcile found so far."""

    def __init__(self) -> None:
        self.checked = self.invalid = self.fixed = self.events_read = 0
        self.invalid_users: list[str] = []
        self.differences: list[BalanceDifference] = []

    def check_many(
        self,
        clock_ms: Callable[[], Now],
        user_ids: list[str],
        fix: bool,
        full: bool,
        progress: Progress | None,
        total: int,
    ) -> Steps[None]:
        """Snapshot ``user_ids`` in one pipeline, then verify each from its snapshot."""
        now = clock_ms()
        users = [user_keys(u) for u in user_ids]
        snaps = yield from run_scripts(script("snapshot"), [snapshot_call(u, now) for u in users])
        for user, reply in zip(users, snaps, strict=True):
            if isinstance(reply, BaseException):
                raise reply
            snap = parse_snapshot(user, reply)
            verification = yield from verify_snapshot(
                user, snap, limits.LOG_CHUNK_EVENTS, full=full
            )
            yield from self.record(clock_ms, user.user_id, verification, fix)
            if progress is not None:
                progress(self.checked, max(total, self.checked))

    def record(
        self,
        clock_ms: Callable[[], Now],
        user_id: str,
        verification: BalanceVerification,
        fix: bool,
    ) -> Steps[None]:
        self.checked += 1
        self.events_read += verification.events_read
        if verification.valid:
            return
        self.invalid += 1
        if len(self.invalid_users) < INVALID_USERS_REPORTED_MAX:
            self.invalid_users.append(user_id)
            self.differences.append(
                BalanceDifference(
                    user_id=user_id,
                    cached=verification.cached,
                    calculated=verification.calculated,
                    held_cached=verification.held_cached,
                    held_calculated=verification.held_calculated,
                    problems=verification.problems,
                )
            )
        if fix:
            yield from rebuild_balance(clock_ms(), user_id)
            self.fixed += 1
