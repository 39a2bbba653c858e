"""The lot sweep: start and expire lots of users who never come back.

Each bucket keeps an index of its users by the time their next lot transition
is due (a lot taking effect, expiring, or due its expiring notice). A round asks
every bucket still in play for its users due by the server's clock
(``due.lua``), then applies their transitions with ``lot_sweep.lua``, at most
:data:`~credits.limits.LOT_UPKEEP_PER_CALL_MAX` in one call. Its cost is the
fixed bucket count plus the transitions due; users with nothing due are never
touched. Lazily, every call of a user applies its own due transitions first,
so a lot is exact on every call; the sweep is for balances nobody reads.
"""

from __future__ import annotations

from typing import Final

from credits import limits, replies
from credits.keys import bucket_keys, context_args, lot_due_key, unescape_user_id, user_keys
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
    pending = list(range(limits.BUCKET_COUNT))
    applied = 0
    context = replies.Context("expire_lots")
    for _ in range(max_rounds):
        due = yield from run_scripts(
            script("due"),
            [([lot_due_key(b)], [*context_args(now), USERS_PER_CALL_MAX]) for b in pending],
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
