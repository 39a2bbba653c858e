"""The sweep: close every expired hold, for users who never come back.

Each bucket has a due-index (a sorted set of ``<escaped user>:<hold id>`` by
expiry, in the bucket's slot). A round of the sweep asks every bucket still in
play, in one pipeline, for its members due by the *server's* clock
(``due.lua``, at most ``batch_size`` each), then closes them with one
``sweep.lua`` call per bucket, all in a second pipeline. One call closes at
most :data:`~credits.limits.SWEEP_HOLDS_PER_CALL_MAX` holds, so no call holds
Redis for more than a couple of milliseconds whatever the backlog; buckets
that had a full batch go round again. Its cost is the fixed bucket count plus
the expired holds: open holds that are not due and users with nothing due are
never touched.
"""

from __future__ import annotations

from credits import limits, replies
from credits.keys import bucket_keys, context_args, due_key, due_member_parts, user_keys
from credits.protocol import Arg, Now, Steps, batch_values, run_scripts
from credits.scripts import script
from credits.validation import check_limit

SWEEP_ROUNDS_MAX = 1_000_000


def _bucket_call(bucket: int, members: list[str], now: Now) -> tuple[list[str], list[Arg]] | None:
    """sweep.lua's keys and arguments for the due members read from one bucket."""
    order: dict[str, int] = {}
    keys: list[str] = bucket_keys(bucket)
    escaped: list[Arg] = []
    pairs: list[Arg] = []
    for member in members:
        parts = due_member_parts(member)
        if parts is None:
            continue
        user_id, hold_id = parts
        user = user_keys(user_id)
        if user.bucket != bucket:
            continue
        if user_id not in order:
            order[user_id] = len(order) + 1
            keys += user.own_keys()
            escaped.append(user.escaped)
        pairs += [order[user_id], hold_id]
    if not order:
        return None
    return keys, [*context_args(now), len(order), *escaped, *pairs]


def expire_reservations(
    now: Now,
    batch_size: int = limits.SWEEP_BATCH_HOLDS_DEFAULT,
    max_rounds: int = SWEEP_ROUNDS_MAX,
) -> Steps[int]:
    """Close holds due by now (the server's clock, or an explicit one); how many expired."""
    batch = check_limit(batch_size, limits.SWEEP_HOLDS_PER_CALL_MAX, "batch_size")
    rounds = check_limit(max_rounds, SWEEP_ROUNDS_MAX, "max_rounds")
    pending = list(range(limits.BUCKET_COUNT))
    expired = 0
    context = replies.Context("sweep")
    for _ in range(rounds):
        due = yield from run_scripts(
            script("due"), [([due_key(b)], [*context_args(now), batch]) for b in pending]
        )
        calls: list[tuple[list[str], list[Arg]]] = []
        still_full: list[int] = []
        for bucket, reply in zip(pending, batch_values(due), strict=True):
            members = list(replies.check(reply, context)[1:])
            call = _bucket_call(bucket, members, now) if members else None
            if call is not None:
                calls.append(call)
            if len(members) == batch:
                still_full.append(bucket)
        if calls:
            # One pipeline for the round: the server closes holds of one bucket
            # while the client is still sending the next bucket's call.
            for reply in batch_values((yield from run_scripts(script("sweep"), calls))):
                expired += int(replies.check(reply, context)[1])
        if not still_full:
            break
        pending = still_full
    return expired
