"""What alerts cost when nothing crosses: `deduct` for a user with three balance alerts.

Alerts are edge-triggered inside the deduct script: every deduct compares the
balance before and after with each threshold and writes an event only on a
crossing. The project side's user has three alerts far below its balance, so
none fires and the row measures the comparisons alone; the baseline's user has
none. Same client code, one connection each, alternating rounds.
"""

from __future__ import annotations

from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.timing import alternate, rate
from credits import Credits

ACTION = "chat_message"
GRANT = 10**12
THRESHOLDS = (100, 1_000, 10_000)  # far below the grant: never crossed in a run


def run(ctx: Context) -> Outcome:
    ops = ctx.sizes.sync_ops
    alerted, plain = ctx.user("alert-deduct"), ctx.user("unalerted-deduct")
    with Credits(ctx.target.url) as ledger:
        ledger.initialize_user(alerted, GRANT)
        ledger.initialize_user(plain, GRANT)
        for below in THRESHOLDS:
            ledger.set_alert(alerted, f"below-{below}", below=below)

        def deducts(user: str) -> None:
            for _ in range(ops):
                ledger.deduct(user, 1, ACTION)

        paired = alternate(
            ctx.sizes.rounds,
            lambda: rate(ops, lambda: deducts(alerted)),
            lambda: rate(ops, lambda: deducts(plain)),
        )
        triggered = [a.name for a in ledger.list_alerts(alerted) if a.triggered]
    if triggered:
        raise RuntimeError(f"alerts fired where none should: {triggered}")
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {ops} deducts per side; one connection",
            f"project: alerts below {', '.join(f'{t:,}' for t in THRESHOLDS)} "
            "(none crossed); baseline: no alerts",
        ],
    )


MEASURE = Measure(
    key="alert_deduct",
    title="`deduct` with 3 alerts crossing none",
    baseline="the same `deduct` for a user with no alerts",
    target=Target(ratio_min=0.9),
    run=run,
)
