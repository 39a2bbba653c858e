"""What every measure gets: the Redis target, the sizes of this run, and a place for plot data.

Quick mode (``--quick``) exists for the test and for a sanity check in under a
minute; its sizes are smaller and each row says so in its notes. The full
sizes are the targets' (1,000,000 events, 100,000 expired holds, 1,000,000 open
holds) and fit in ten minutes on a 2-core machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.result import Outcome, Skipped, Target
from bench.target import RedisTarget


@dataclass(frozen=True, slots=True)
class Sizes:
    quick: bool
    rounds: int  # alternating rounds per throughput row (after one warm-up round)
    sync_ops: int  # deducts per side per round, sync rows
    async_ops: int  # deducts per side per round, async row
    async_concurrency: int
    bulk_ops: int  # deducts per side per round, bulk row
    bulk_per_call: int  # operations per pipeline / bulk call
    pg_ops: int
    pg_concurrency: int
    history_events: int
    history_small_events: int
    history_calls: int  # get_transactions calls per side per round
    reconcile_users: int  # users of the incremental reconcile row
    reconcile_events: int  # events per user there (then 1 % more)
    archive_users: int  # users of the archive rows
    archive_events: int  # events per user there, over 200 days
    memory_events: int
    pair_ops: int
    sweep_expired: int
    sweep_open: int
    sweep_users: int
    sweep_rounds: int
    renew_due: int  # users on a daily allowance, renewed every round
    renew_not_due: int  # users on a yearly allowance beside them, never due in the run
    celery_tasks: int
    celery_rounds: int
    webhook_events: int  # events per side per round, delivery throughput row
    webhook_rounds: int
    webhook_dead_backlog: int  # events queued for the dead endpoint, isolation row
    webhook_probes: int  # probes per phase, isolation row

    @property
    def label(self) -> str:
        return "quick" if self.quick else "full"


FULL = Sizes(
    quick=False,
    rounds=15,
    sync_ops=1000,
    async_ops=6400,
    async_concurrency=64,
    bulk_ops=10_000,
    bulk_per_call=1000,
    pg_ops=1600,
    pg_concurrency=16,
    history_events=1_000_000,
    history_small_events=100,
    history_calls=300,
    reconcile_users=10_000,
    reconcile_events=1000,
    archive_users=100,
    archive_events=2000,
    memory_events=200_000,
    pair_ops=500,
    sweep_expired=100_000,
    sweep_open=1_000_000,
    sweep_users=10_000,
    sweep_rounds=2,
    renew_due=10_000,
    renew_not_due=1_000_000,
    celery_tasks=1000,
    celery_rounds=3,
    webhook_events=5000,
    webhook_rounds=3,
    webhook_dead_backlog=10_000,
    webhook_probes=15,
)

QUICK = Sizes(
    quick=True,
    rounds=5,
    sync_ops=300,
    async_ops=1280,
    async_concurrency=64,
    bulk_ops=3000,
    bulk_per_call=1000,
    pg_ops=320,
    pg_concurrency=16,
    history_events=100_000,
    history_small_events=100,
    history_calls=60,
    reconcile_users=300,
    reconcile_events=100,
    archive_users=20,
    archive_events=400,
    memory_events=20_000,
    pair_ops=200,
    sweep_expired=2000,
    sweep_open=10_000,
    sweep_users=200,
    sweep_rounds=1,
    renew_due=500,
    renew_not_due=10_000,
    celery_tasks=200,
    celery_rounds=1,
    webhook_events=500,
    webhook_rounds=1,
    webhook_dead_backlog=1000,
    webhook_probes=4,
)


@dataclass(frozen=True, slots=True)
class Point:
    events: int
    value: float


@dataclass
class Context:
    target: RedisTarget
    sizes: Sizes
    out_dir: Path
    pg_dsn: str | None
    started_s: float = field(default_factory=time.perf_counter)
    series: dict[str, list[Point]] = field(default_factory=dict)

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def user(self, name: str) -> str:
        """A user id unique to this run (so a shared server is never confused)."""
        return f"{self.target.tag}-{name}"


@dataclass(frozen=True, slots=True)
class Measure:
    """One row of the table: how to run it, and what it is held to."""

    key: str
    title: str
    baseline: str
    target: Target
    run: Callable[[Context], Outcome | Skipped]
