"""The lot and allowance sweeps: start and expire lots, and renew allowances, of users
who never come back.

Each bucket keeps two indexes of its users: by the time their next lot
transition is due (a lot taking effect, expiring, or due its expiring notice),
and by the time their next allowance period begins. A round asks
every bucket still in play for its users due by the server's clock
(``due.lua``), then applies their transitions with ``lot_sweep.lua``, at most
:data:`~credits.limits.LOT_UPKEEP_PER_CALL_MAX` in one call. Its cost is the
fixed bucket count plus the transitions due; users with nothing due are never
touched. Lazily, every call of a user applies its own due transitions first,
so a lot is exact on every call; the sweep is for balances nobody reads.
Both sweeps run the same script, which applies each user's due upkeep in the
order the lazy path does (allowances first, so a period's unused credits roll
over before its lot expires), whichever index found the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from credits import limits, replies
from credits.keys import (
    bucket_keys,
    context_args,
    lot_due_key,
    renew_due_key,
    unescape_user_id,
    user_keys,
)
from credits.protocol import Arg, Now, Steps, batch_values, run_scripts
from credits.scripts import script

USERS_PER_CALL_MAX: Final = 8
ROUNDS_MAX: Final = 100_000


def _bucket_call(bucket: int, members: list[str], now: Now) -> tuple[list[str], list[Arg]]:
    keys = bucket_keys(bucket)
    escaped: list[Arg] = []
    for member in members:
        user = user_keys(unescape_user_id(member))
        if user.bucket == bucket:
            keys += user.own_keys()
            escaped.append(user.escaped)
    return keys, [*context_args(now), len(escaped), *escaped]


def expire_lots(now: Now, max_rounds: int = ROUNDS_MAX) -> Steps[int]:
    """Apply every due lot start and expiry; returns how many transitions it applied."""
    return (yield from _sweep(now, lot_due_key, "expire_lots", max_rounds))


def renew_allowances(now: Now, max_rounds: int = ROUNDS_MAX) -> Steps[int]:
    """Grant every allowance period that has begun; returns how many renewals and lot
    transitions it applied."""
    return (yield from _sweep(now, renew_due_key, "renew_allowances", max_rounds))


def _sweep(
    now: Now, index_key: Callable[[int], str], operation: str, max_rounds: int
) -> Steps[int]:
    pending = list(range(limits.BUCKET_COUNT))
    applied = 0
    context = replies.Context(operation)
    for _ in range(max_rounds):
        due = yield from run_scripts(
            script("due"),
            [([index_key(b)], [*context_args(now), USERS_PER_CALL_MAX]) for b in pending],
        )
        calls: list[tuple[list[str], list[Arg]]] = []
        still_due: list[int] = []
        for bucket, reply in zip(pending, batch_values(due), strict=True):
            members = list(replies.check(reply, context)[1:])
            if members:
                calls.append(_bucket_call(bucket, members, now))
                still_due.append(bucket)
        if not calls:
            break
        for reply in batch_values((yield from run_scripts(script("lot_sweep"), calls))):
            applied += int(replies.check(reply, context)[1])
        pending = still_due
    return applied
