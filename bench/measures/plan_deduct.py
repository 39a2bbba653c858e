"""What a plan costs on the hot path: `deduct` for a user with an allowance and a spend limit.

The project side's user has a monthly allowance (the credits it deducts come
from the allowance lot) and a daily spend limit it never reaches, so every
deduct checks the limit, counts into its window and looks at whether the
allowance is due; the baseline's user has neither, only a plain grant. Same
client code, one connection each, alternating rounds.
"""

from __future__ import annotations

from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.timing import alternate, rate
from credits import Credits

ACTION = "chat_message"
GRANT = 10**12
ALLOWANCE = 10**12  # never runs out within a run
LIMIT = 10**15  # never reached: the row measures the check, not a refusal


def run(ctx: Context) -> Outcome:
    ops = ctx.sizes.sync_ops
    planned, plain = ctx.user("plan-deduct"), ctx.user("plain-deduct")
    with Credits(ctx.target.url) as ledger:
        ledger.set_allowance(planned, "monthly", ALLOWANCE, every="month")
        ledger.set_limit(planned, "daily", LIMIT, every="day")
        ledger.initialize_user(plain, GRANT)

        def deducts(user: str) -> None:
            for _ in range(ops):
                ledger.deduct(user, 1, ACTION)

        paired = alternate(
            ctx.sizes.rounds,
            lambda: rate(ops, lambda: deducts(planned)),
            lambda: rate(ops, lambda: deducts(plain)),
        )
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {ops} deducts per side; one connection",
            "project: a monthly allowance (drawn from) and a daily limit (never reached); "
            "baseline: a plain grant",
        ],
    )


MEASURE = Measure(
    key="plan_deduct",
    title="`deduct` with 1 allowance and 1 spend limit",
    baseline="the same `deduct` for a user with neither",
    target=Target(ratio_min=0.8),
    run=run,
)
