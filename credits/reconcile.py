"""Reconcile: verify every user against the log, and rebuild the ones that differ.

Users are found through the per-bucket registries (a set per bucket, in the
bucket's slot), walked with SSCAN in bounded batches, so the walk works the
same on a Redis Cluster and never asks one node for everything at once.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from credits import limits
from credits.audit import rebuild_balance, verify_balance
from credits.errors import InvalidInputError
from credits.keys import unescape_user_id, users_key
from credits.protocol import Batch, Command, Now, Steps, batch_values
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
) -> Steps[ReconcileReport]:
    """Walk every bucket's registry with SSCAN, verify each user, rebuild on ``fix``.

    The registries are scanned a group of buckets at a time, each group's SSCANs
    in one pipeline, so a store with few users costs a few round trips rather
    than one per bucket; each reply holds about ``batch_size`` users.
    """
    batch = check_limit(batch_size, limits.RECONCILE_BATCH_USERS_MAX, "batch_size")
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
            for bucket, (cursor, members) in zip(cursors, replies, strict=True):
                for escaped in members:
                    yield from tally.check(clock_ms, unescape_user_id(escaped), fix)
                    if progress is not None:
                        progress(tally.checked, max(total, tally.checked))
                if str(cursor) != "0":
                    still_scanning[bucket] = cursor
            cursors = still_scanning
    return ReconcileReport(
        checked=tally.checked,
        invalid=tally.invalid,
        fixed=tally.fixed,
        invalid_users=tally.invalid_users,
        differences=tally.differences,
    )


SCAN_BUCKETS_PER_ROUND = 64


class _Tally:
    """What reconcile found so far."""

    def __init__(self) -> None:
        self.checked = self.invalid = self.fixed = 0
        self.invalid_users: list[str] = []
        self.differences: list[BalanceDifference] = []

    def check(self, clock_ms: Callable[[], Now], user_id: str, fix: bool) -> Steps[None]:
        verification = yield from verify_balance(clock_ms(), user_id)
        self.checked += 1
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
