"""A ``reserve`` + ``settle`` pair against one ``deduct``.

Metered jobs pay with two calls (hold, then charge the actual cost) where a
chat message pays with one. The target (at least 0.5 times) says the pair may cost at most
about two deducts: the hold record, its indexes and the second event are the
only extra work. Both sides use one blocking client and their own user.
"""

from __future__ import annotations

from bench import baseline
from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.timing import alternate, rate
from credits import Credits

HOLD_TTL_S = 3600
RESERVED = 10
ACTUAL = 7


def run(ctx: Context) -> Outcome:
    ops = ctx.sizes.pair_ops
    metered, plain = ctx.user("pair-metered"), ctx.user("pair-plain")
    with Credits(ctx.target.url) as ledger:
        ledger.initialize_user(metered, baseline.GRANT)
        ledger.initialize_user(plain, baseline.GRANT)

        def pairs() -> None:
            for _ in range(ops):
                hold = ledger.reserve(metered, RESERVED, "video_generation", ttl=HOLD_TTL_S)
                ledger.settle(hold.id, ACTUAL)

        def deducts() -> None:
            for _ in range(ops):
                ledger.deduct(plain, RESERVED, "chat_message")

        paired = alternate(ctx.sizes.rounds, lambda: rate(ops, pairs), lambda: rate(ops, deducts))
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[f"{paired.rounds} rounds of {ops} pairs vs {ops} deducts; project = pairs/s"],
    )


MEASURE = Measure(
    key="reserve_settle",
    title="`reserve` + `settle` pair",
    baseline="one `deduct`",
    target=Target(ratio_min=0.5),
    run=run,
)
