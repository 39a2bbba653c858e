"""The allowance renewal sweep, with 0 and with 1,000,000 users not due beside the due ones.

The contract: the sweep's cost grows with the users whose period has begun, not
with every user who has an allowance. Two key spaces on the same server
(databases n and n + 1) hold the same due users, each on a daily allowance; the
second also holds a million users on a yearly allowance, none due within the
run. Every user is set up by the ledger's own script, pipelined, with the clock
passed in. Each round moves the injected clock one day on, so every daily user
is due again, and times ``renew_allowances`` on each key space, in alternating
order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis

from bench.context import Context, Measure
from bench.pipelined import run_pipelined
from bench.result import Outcome, Target
from bench.seed import user_ids
from bench.timing import alternate, seconds
from credits import Credits
from credits.plans import allowances
from credits.protocol import Now, Steps

DAY_MS = 24 * 60 * 60 * 1000
DUE_AMOUNT = 100
NOT_DUE_AMOUNT = 1000


def _allowances(users: list[str], now_ms: int, every: str, amount: int) -> Iterator[Steps[object]]:
    for user in users:
        yield allowances.set_allowance(
            Now(now_ms), user, every, amount, every=every, anchor=None, rollover_max=0,
            priority=allowances.ALLOWANCE_PRIORITY_DEFAULT, scope=None, effective="next_period",
        )  # fmt: skip


def _seed(client: redis.Redis, users: list[str], now_ms: int, every: str, amount: int) -> None:
    run_pipelined(client, _allowances(users, now_ms, every, amount))


def run(ctx: Context) -> Outcome:
    sizes = ctx.sizes
    due = user_ids(ctx.target.tag, "renew-due", sizes.renew_due)
    idle = user_ids(ctx.target.tag, "renew-idle", sizes.renew_not_due)
    start_ms = ctx.now_ms()
    with (
        contextlib.closing(ctx.target.client(0)) as empty,
        contextlib.closing(ctx.target.client(1)) as loaded,
    ):
        _seed(empty, due, start_ms, "day", DUE_AMOUNT)
        _seed(loaded, due, start_ms, "day", DUE_AMOUNT)
        _seed(loaded, idle, start_ms, "year", NOT_DUE_AMOUNT)
        for offset in (0, 1):  # load the scripts and connect: nothing is due yet
            with Credits(ctx.target.db_url(offset), clock=lambda: start_ms / 1000) as ledger:
                ledger.renew_allowances()
        days = {0: 0, 1: 0}

        def sweep(offset: int) -> float:
            days[offset] += 1
            sweep_ms = start_ms + days[offset] * DAY_MS
            with Credits(ctx.target.db_url(offset), clock=lambda: sweep_ms / 1000) as ledger:
                applied: list[int] = []
                took = seconds(lambda: applied.append(ledger.renew_allowances()))
            if applied[0] < len(due):
                raise RuntimeError(f"the sweep applied {applied}, expected >= {len(due)}")
            return took

        paired = alternate(sizes.sweep_rounds, lambda: sweep(1), lambda: sweep(0), warmup=False)
    notes = [
        f"{paired.rounds} round(s); each sweep renews {len(due):,} users on a daily allowance; "
        f"{len(idle):,} users on a yearly allowance, none due, in the loaded key space",
        "project = seconds with the users not due, baseline = seconds without",
    ]
    if sizes.quick:
        notes.append(
            f"quick mode: {len(due):,} due and {len(idle):,} not due instead of "
            "10,000 and 1,000,000"
        )
    return Outcome(
        project=paired.project, baseline=paired.baseline, ratio=paired.ratio, unit="s", notes=notes
    )


MEASURE = Measure(
    key="renew_sweep",
    title="renewal sweep of 10,000 due users, 1,000,000 vs 0 not due",
    baseline="the same sweep with 0 users not due",
    target=Target(ratio_max=1.5, strict=True),
    run=run,
)
