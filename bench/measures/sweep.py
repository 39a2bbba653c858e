"""The sweep of 100,000 expired holds, with 0 and with 1,000,000 open holds beside them.

The contract: the sweep's cost grows with the number of expired holds, not with the
number of users or open holds. Two key spaces on the same server (databases n
and n + 1) hold the same users; the second also holds a million open holds
that are not due. Each round reserves the expiring holds in both (by the
reserve script, with the clock passed in) and times ``expire_reservations`` on
each, in alternating order; the clock jumps past the holds' expiry instead of
sleeping.
"""

from __future__ import annotations

import contextlib

from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.seed import grant, reserve_many, user_ids
from bench.timing import alternate, seconds
from credits import Credits

EXPIRING_TTL_S = 1
OPEN_TTL_S = 30 * 24 * 60 * 60  # the longest a hold may live: none of these comes due
ROUND_STEP_MS = 60_000  # each round happens a minute (of the injected clock) after the last


def run(ctx: Context) -> Outcome:
    sizes = ctx.sizes
    users = user_ids(ctx.target.tag, "sweep", sizes.sweep_users)
    per_user_expired = max(1, sizes.sweep_expired // len(users))
    per_user_open = sizes.sweep_open // len(users)
    expired_total = per_user_expired * len(users)
    start_ms = ctx.now_ms()
    with (
        contextlib.closing(ctx.target.client(0)) as empty,
        contextlib.closing(ctx.target.client(1)) as loaded,
    ):
        grant(empty, users, start_ms)
        grant(loaded, users, start_ms)
        open_ids = reserve_many(loaded, users, per_user_open, start_ms, OPEN_TTL_S)
        clocks = {0: start_ms, 1: start_ms}

        def sweep(offset: int) -> float:
            client = (empty, loaded)[offset]
            clocks[offset] += ROUND_STEP_MS
            now_ms = clocks[offset]
            reserve_many(client, users, per_user_expired, now_ms, EXPIRING_TTL_S)
            sweep_ms = now_ms + 2 * EXPIRING_TTL_S * 1000
            with Credits(ctx.target.db_url(offset), clock=lambda: sweep_ms / 1000) as ledger:
                closed: list[int] = []
                took = seconds(lambda: closed.append(ledger.expire_reservations()))
            if closed != [expired_total]:
                raise RuntimeError(f"the sweep closed {closed} holds, expected {expired_total}")
            return took

        paired = alternate(sizes.sweep_rounds, lambda: sweep(1), lambda: sweep(0), warmup=False)
    notes = [
        f"{paired.rounds} round(s); each sweep closes {expired_total:,} holds of "
        f"{len(users):,} users ({per_user_expired} each); {len(open_ids):,} open holds "
        f"({per_user_open} per user) in the loaded key space",
        "project = seconds with the open holds, baseline = seconds without",
    ]
    if sizes.quick:
        notes.append(
            f"quick mode: {expired_total:,} expired and {len(open_ids):,} open holds "
            "instead of 100,000 and 1,000,000"
        )
    return Outcome(
        project=paired.project, baseline=paired.baseline, ratio=paired.ratio, unit="s", notes=notes
    )


MEASURE = Measure(
    key="sweep",
    title="sweep of 100,000 expired holds, 1,000,000 vs 0 open",
    baseline="the same sweep with 0 open holds",
    target=Target(value_max=5, ratio_max=1.5, strict=True),
    run=run,
)
