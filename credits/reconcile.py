"""Reconcile: verify every user against the log, and rebuild the ones that differ.

Users are found through the per-bucket registries (a set per bucket, in the
bucket's slot), walked with SSCAN in bounded batches, so the walk works the
same on a Redis Cluster and never asks one node for everything at once.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from credits import limits
from credits.core import rebuild_balance, verify_balance
from credits.errors import InvalidInputError
from credits.keys import unescape_user_id, users_key
from credits.steps import Batch, Command, Steps, batch_values
from credits.validation import check_limit

INVALID_USERS_REPORTED_MAX = 100

Progress = Callable[[int, int], None]
"""Called after each user with (users checked so far, users registered in all)."""


class ReconcileReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    checked: int = Field(ge=0)
    invalid: int = Field(ge=0)
    fixed: int = Field(ge=0)
    invalid_users: list[str] = Field(
        default_factory=list, description=f"the first {INVALID_USERS_REPORTED_MAX} that differed"
    )

    def summary(self) -> dict[str, int]:
        return {"checked": self.checked, "invalid": self.invalid, "fixed": self.fixed}


def count_users() -> Steps[int]:
    counts = batch_values(
        (yield Batch(tuple(Command(("SCARD", users_key(b))) for b in range(limits.BUCKET_COUNT))))
    )
    return sum(int(c) for c in counts)


def reconcile(
    clock_ms: Callable[[], int],
    *,
    fix: bool,
    batch_size: int = limits.RECONCILE_BATCH_USERS_DEFAULT,
    progress: Progress | None = None,
) -> Steps[ReconcileReport]:
    batch = check_limit(batch_size, limits.RECONCILE_BATCH_USERS_MAX, "batch_size")
    if progress is not None and not callable(progress):
        raise InvalidInputError("progress must be None or a callable(checked, total)")
    total = (yield from count_users()) if progress is not None else 0
    checked = invalid = fixed = 0
    invalid_users: list[str] = []
    for bucket in range(limits.BUCKET_COUNT):
        cursor = "0"
        while True:
            cursor, members = yield Command(("SSCAN", users_key(bucket), cursor, "COUNT", batch))
            for escaped in members:
                user_id = unescape_user_id(escaped)
                verification = yield from verify_balance(clock_ms(), user_id)
                checked += 1
                if not verification.valid:
                    invalid += 1
                    if len(invalid_users) < INVALID_USERS_REPORTED_MAX:
                        invalid_users.append(user_id)
                    if fix:
                        yield from rebuild_balance(clock_ms(), user_id)
                        fixed += 1
                if progress is not None:
                    progress(checked, max(total, checked))
            if str(cursor) == "0":
                break
    return ReconcileReport(
        checked=checked, invalid=invalid, fixed=fixed, invalid_users=invalid_users
    )
