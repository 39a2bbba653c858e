"""Memory per logged event, from the ``INFO memory`` delta over script-written deducts.

Every charge is kept forever in the user's stream, so bytes per event decide
what a year of traffic costs in RAM. The events here are written by the real
deduct script (pipelined), one a second by the injected clock, so stream ids
compress as a busy user's would; action ``chat_message``, no metadata.
"""

from __future__ import annotations

import contextlib
from typing import Any, cast

from bench.context import Context, Measure
from bench.redis_info import used_memory
from bench.result import Outcome, Target
from bench.seed import grant, real_deducts
from credits.keys import user_keys


def run(ctx: Context) -> Outcome:
    events = ctx.sizes.memory_events
    user = ctx.user("memory")
    with contextlib.closing(ctx.target.client()) as client:
        start_ms = ctx.now_ms()
        grant(client, [user], start_ms)
        before = used_memory(client)
        real_deducts(client, user, events, start_ms + 1000)
        after = used_memory(client)
        log_key = user_keys(user).log
        usage = cast(Any, client.memory_usage(log_key, samples=0))
        stream: dict[str, Any] = client.xinfo_stream(log_key)
    per_event = (after - before) / events
    notes = [
        f"{events:,} deducts by the deduct script; INFO used_memory grew by {after - before:,} B",
        f"cross-check: MEMORY USAGE of the log (SAMPLES 0) = {int(usage) / stream['length']:.1f} "
        f"B/event over {stream['length']:,} entries",
    ]
    if ctx.sizes.quick:
        notes.append(f"quick mode: {events:,} events")
    return Outcome(project=per_event, baseline=None, ratio=None, unit="B", notes=notes)


MEASURE = Measure(
    key="memory",
    title="memory per logged event",
    baseline="—",
    target=Target(value_max=120),
    run=run,
)
