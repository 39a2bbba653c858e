"""``get_transactions(limit=50)`` of a user with 1,000,000 events against one with 100.

A history page must cost the same for a user of ten years as for a user of
ten minutes (the contract: O(log N + M)). Both users exist side by side in the same
Redis and the two reads alternate. While the big user's log grows, the read
latency and the memory per event are recorded at 100, 1k, 10k, ... events for
the plot (``bench/history.png``); memory there is MEMORY USAGE of the user's
keys, exact at every size (the memory row uses the INFO delta, as the targets
asks, over script-written events). The big log is cloned from a real deduct
event (see :mod:`bench.seed`).
"""

from __future__ import annotations

import contextlib
import statistics
import time

from bench.context import Context, Measure, Point
from bench.result import Outcome, Target
from bench.seed import synthetic_log
from bench.timing import alternate
from credits import Credits
from credits.keys import user_keys

PAGE = 50
LATENCY_SAMPLES = 101  # reads per checkpoint for the plot; the median is kept
SERIES_LATENCY = "get_transactions latency (µs)"
SERIES_MEMORY = "bytes per event (MEMORY USAGE)"


def _seconds_per_read(ledger: Credits, user: str, reads: int) -> float:
    start = time.perf_counter()
    for _ in range(reads):
        ledger.get_transactions(user, limit=PAGE)
    return (time.perf_counter() - start) / reads


def _median_read(ledger: Credits, user: str) -> float:
    samples = []
    for _ in range(LATENCY_SAMPLES):
        start = time.perf_counter()
        ledger.get_transactions(user, limit=PAGE)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def run(ctx: Context) -> Outcome:
    sizes = ctx.sizes
    small, big = ctx.user("history-small"), ctx.user("history-big")
    checkpoints = tuple(
        n for n in (100, 1000, 10_000, 100_000, 1_000_000) if n <= sizes.history_events
    )
    latency = ctx.series.setdefault(SERIES_LATENCY, [])
    memory = ctx.series.setdefault(SERIES_MEMORY, [])
    with Credits(ctx.target.url) as ledger, contextlib.closing(ctx.target.client()) as client:
        start_ms = ctx.now_ms()
        synthetic_log(client, small, sizes.history_small_events, start_ms)

        keys = user_keys(big)

        def checkpoint(events: int) -> None:
            # MEMORY USAGE (all samples) is exact for these keys; INFO used_memory
            # moves in allocator-sized steps that swamp a log of 100 events.
            size = sum(
                int(client.memory_usage(k, samples=0) or 0) for k in (keys.log, keys.account)
            )
            memory.append(Point(events, size / events))
            latency.append(Point(events, _median_read(ledger, big) * 1e6))

        built = time.perf_counter()
        synthetic_log(client, big, sizes.history_events, start_ms, checkpoint, checkpoints)
        built_s = time.perf_counter() - built
        reads = sizes.history_calls
        paired = alternate(
            sizes.rounds,
            lambda: _seconds_per_read(ledger, big, reads) * 1e6,
            lambda: _seconds_per_read(ledger, small, reads) * 1e6,
        )
    notes = [
        f"{paired.rounds} rounds of {reads} reads per side; figures are µs per call",
        f"big log: {sizes.history_events:,} events built in {built_s:.1f} s "
        f"(cloned from a real deduct event); small log: {sizes.history_small_events} events",
    ]
    if sizes.quick:
        notes.append(f"quick mode: {sizes.history_events:,} events instead of 1,000,000")
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="µs",
        notes=notes,
    )


MEASURE = Measure(
    key="history",
    title="`get_transactions(limit=50)` at 1,000,000 events",
    baseline="the same call at 100 events",
    target=Target(ratio_max=1.5),
    run=run,
)
