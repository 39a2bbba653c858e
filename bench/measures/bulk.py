"""The bulk path (``Credits.deduct_many``) against bare pipelined EVALSHA of the minimal Lua.

Monthly grants and imports move thousands of balances at once; one round trip
per item would make them slow for no reason. Both sides send the same number
of deducts, ``bulk_per_call`` per pipeline, spread over the same number of
users, each item atomic on its own. When the client has no bulk API yet the
row says so rather than measuring something else.
"""

from __future__ import annotations

import contextlib
from typing import Any

from bench import baseline
from bench.context import Context, Measure
from bench.result import Outcome, Skipped, Target
from bench.timing import alternate, rate
from credits import Credits, models

ACTION = "import"
USERS = 100


def run(ctx: Context) -> Outcome | Skipped:
    # Looked up by name so the harness runs against a client without a bulk API too.
    item_type: Any = getattr(models, "BulkItem", None)
    if item_type is None or not hasattr(Credits, "deduct_many"):
        return Skipped("not available: Credits.deduct_many / credits.models.BulkItem not found")
    ops, per_call = ctx.sizes.bulk_ops, ctx.sizes.bulk_per_call
    users = [ctx.user(f"bulk-{i}") for i in range(USERS)]
    accounts = [baseline.BaselineAccount.named(ctx.target.tag, f"bulk-{i}") for i in range(USERS)]
    items = [item_type(users[i % USERS], 1, ACTION) for i in range(per_call)]
    batch = [accounts[i % USERS] for i in range(per_call)]
    with Credits(ctx.target.url) as ledger, contextlib.closing(ctx.target.client()) as bare:
        for user in users:
            ledger.initialize_user(user, baseline.GRANT)
        for account in accounts:
            baseline.fund(bare, account)
        sha = baseline.load(bare)

        def project() -> None:
            for _ in range(ops // per_call):
                for result in ledger.deduct_many(items):
                    if isinstance(result, Exception):
                        raise result

        def minimal() -> None:
            for _ in range(ops // per_call):
                baseline.deduct_pipelined(bare, sha, batch, 1, ACTION)

        done = (ops // per_call) * per_call
        paired = alternate(
            ctx.sizes.rounds, lambda: rate(done, project), lambda: rate(done, minimal)
        )
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {done} deducts per side, {per_call} per call / "
            f"pipeline, over {USERS} users"
        ],
    )


MEASURE = Measure(
    key="bulk",
    title="bulk path (`deduct_many`)",
    baseline="bare pipelined EVALSHA of the minimal Lua",
    target=Target(ratio_min=0.5),
    run=run,
)
