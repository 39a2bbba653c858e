"""Sync ``deduct`` from one client against the minimal deduct Lua on bare redis-py.

This is the call in front of every request of the four apps, so its per-call
cost (validation, key building, the script's extra work, the typed result)
is what users feel. Both sides run one blocking client, one user each, on the
same Redis, in alternating rounds.
"""

from __future__ import annotations

import contextlib

from bench import baseline
from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.timing import CpuTally, alternate
from credits import Credits

ACTION = "chat_message"


def run(ctx: Context) -> Outcome:
    ops = ctx.sizes.sync_ops
    user = ctx.user("sync")
    with Credits(ctx.target.url) as ledger, contextlib.closing(ctx.target.client()) as bare:
        ledger.initialize_user(user, baseline.GRANT)
        account = baseline.BaselineAccount.named(ctx.target.tag, "sync")
        baseline.fund(bare, account)
        sha = baseline.load(bare)

        def project() -> None:
            for _ in range(ops):
                ledger.deduct(user, 1, ACTION)

        def minimal() -> None:
            for _ in range(ops):
                baseline.deduct(bare, sha, account, 1, ACTION)

        ours, theirs = CpuTally(bare), CpuTally(bare)
        paired = alternate(
            ctx.sizes.rounds, lambda: ours.rate(ops, project), lambda: theirs.rate(ops, minimal)
        )
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {ops} deducts per side; one connection each",
            f"project: {ours.text()}; baseline: {theirs.text()}",
        ],
    )


MEASURE = Measure(
    key="sync_deduct",
    title="sync `deduct`, one client",
    baseline="minimal check-and-decrement + XADD Lua, bare redis-py",
    target=Target(ratio_min=0.8),
    run=run,
)
