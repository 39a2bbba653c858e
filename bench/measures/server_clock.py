"""What reading the server's clock costs: `deduct` with `TIME` in the script vs an explicit clock.

Every script reads ``TIME`` once when the client has no explicit clock (the
default: the Redis server's clock decides). The baseline is the same client
and script with ``clock=time.time``, which sends the time as an argument
instead; the difference is that one ``redis.call('TIME')`` per script.
"""

from __future__ import annotations

import time

from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.timing import alternate
from credits import Credits

ACTION = "chat_message"
GRANT = 10**12


def run(ctx: Context) -> Outcome:
    ops = ctx.sizes.sync_ops
    server_user, explicit_user = ctx.user("clock-server"), ctx.user("clock-explicit")
    with (
        Credits(ctx.target.url) as server_clock,
        Credits(ctx.target.url, clock=time.time) as explicit_clock,
    ):
        server_clock.initialize_user(server_user, GRANT)
        explicit_clock.initialize_user(explicit_user, GRANT)

        def rate(client: Credits, user: str) -> float:
            started = time.perf_counter()
            for _ in range(ops):
                client.deduct(user, 1, ACTION)
            return ops / (time.perf_counter() - started)

        paired = alternate(
            ctx.sizes.rounds,
            lambda: rate(server_clock, server_user),
            lambda: rate(explicit_clock, explicit_user),
        )
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {ops} deducts per side; one connection each",
            "project: the server's TIME read in the script; baseline: clock=time.time",
        ],
    )


MEASURE = Measure(
    key="server_clock",
    title="`deduct` on the server's clock",
    baseline="the same `deduct` with an explicit client clock",
    target=Target(ratio_min=0.9),
    run=run,
)
