"""History at scale: incremental reconcile, ``balance_at`` at any size, the archive tier.

Four rows, each measured side by side in one run:

* ``reconcile_incremental``: a reconcile of ``reconcile_users`` users with
  ``reconcile_events`` events each (the first one replays every log and writes
  the checkpoints), then 1 % more events spread over every user, then the
  second reconcile, which must cost what was written since: at most 0.1 of the first.
* ``balance_at``: ``balance_at`` of a user with 1,000,000 events (100,000 in
  quick mode) against one with 100, at random instants, alternating.
* ``archive``: users with 200 days of history archived to SQLite with the
  90-day hot window: Redis bytes per user before and after (bounded by the
  window), bytes per event hot and archived, and the archive's throughput.
* ``archive_pg``: the same archive run into PostgreSQL (``CREDITS_BENCH_PG_DSN``
  or a throwaway server from the system's binaries).
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.context import Context, Measure
from bench.pg_server import ENV_DSN, postgres_dsn
from bench.result import Outcome, Skipped, Target
from bench.seed import append_copies, synthetic_log
from bench.timing import alternate
from credits import Credits
from credits.keys import user_keys
from credits.limits import HOT_DAYS_DEFAULT

DAY_MS = 24 * 60 * 60 * 1000
HISTORY_DAYS = 200
BALANCE_AT_CALLS = 300


def run_reconcile(ctx: Context) -> Outcome:
    sizes = ctx.sizes
    users = [ctx.user(f"reconcile-{i}") for i in range(sizes.reconcile_users)]
    with Credits(ctx.target.url) as ledger, contextlib.closing(ctx.target.client()) as client:
        start_ms = ctx.now_ms()
        built = time.perf_counter()
        ends = [synthetic_log(client, u, sizes.reconcile_events, start_ms).last_ms for u in users]
        built_s = time.perf_counter() - built
        first_s, first = _timed(lambda: ledger.reconcile())
        more = max(1, sizes.reconcile_events // 100)
        for user, end in zip(users, ends, strict=True):
            append_copies(client, user, more, end + 1000)
        second_s, second = _timed(lambda: ledger.reconcile())
    assert first.invalid == 0 and second.invalid == 0, (first, second)
    notes = [
        f"{len(users):,} users x {sizes.reconcile_events:,} events (built in {built_s:.1f} s), "
        f"then {more} more each (1 %)",
        f"first reconcile: {first_s:.2f} s, {first.events_read:,} events replayed; "
        f"second: {second_s:.2f} s, {second.events_read:,} events replayed",
        f"figures are seconds; {first.checked:,} users checked each time",
    ]
    if sizes.quick:
        notes.append("quick mode: fewer users and events than the target's 10,000 x 1,000")
    return Outcome(
        project=second_s, baseline=first_s, ratio=second_s / first_s, unit="s", notes=notes
    )


def _timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def run_balance_at(ctx: Context) -> Outcome:
    sizes = ctx.sizes
    small, big = ctx.user("balance-at-small"), ctx.user("balance-at-big")
    rng = random.Random(7)
    with Credits(ctx.target.url) as ledger, contextlib.closing(ctx.target.client()) as client:
        start_ms = ctx.now_ms()
        small_log = synthetic_log(client, small, sizes.history_small_events, start_ms)
        big_log = synthetic_log(client, big, sizes.history_events, start_ms)

        def per_call(user: str, last_ms: int) -> float:
            instants = [rng.randint(start_ms, last_ms) for _ in range(BALANCE_AT_CALLS)]
            began = time.perf_counter()
            for at in instants:
                ledger.balance_at(user, at)
            return (time.perf_counter() - began) / BALANCE_AT_CALLS * 1e6

        paired = alternate(
            sizes.rounds,
            lambda: per_call(big, big_log.last_ms),
            lambda: per_call(small, small_log.last_ms),
        )
    notes = [
        f"{paired.rounds} rounds of {BALANCE_AT_CALLS} calls per side at random instants; "
        "figures are µs per call",
        f"big log: {sizes.history_events:,} events; small log: {sizes.history_small_events}",
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


def _user_bytes(client: redis.Redis, user: str) -> int:
    keys = user_keys(user)
    parts = (keys.log, keys.account, keys.checkpoints, keys.checkpoint_head, keys.archived)
    return sum(int(client.memory_usage(k, samples=0) or 0) for k in parts)


def _archive_run(ctx: Context, archive_url: str, group: str) -> dict[str, Any]:
    """Users with 200 days of history, archived with the 90-day window: the figures."""
    sizes = ctx.sizes
    users = [ctx.user(f"{group}-{i}") for i in range(sizes.archive_users)]
    spacing = HISTORY_DAYS * DAY_MS // sizes.archive_events
    start_ms = ctx.now_ms() - HISTORY_DAYS * DAY_MS
    with contextlib.closing(ctx.target.client()) as client:
        for user in users:
            synthetic_log(client, user, 2, start_ms)
            append_copies(client, user, sizes.archive_events - 2, start_ms + spacing, spacing)
        before = sum(_user_bytes(client, u) for u in users)
        hot_before = sum(int(client.xlen(user_keys(u).log)) for u in users)
        with Credits(ctx.target.url, archive_url=archive_url) as ledger:
            for user in users:
                ledger.verify_balance(user)  # the checkpoints reconcile would have written
            began = time.perf_counter()
            report = ledger.archive_events(users=users)
            seconds = time.perf_counter() - began
            assert ledger.archive is not None
            archived = ledger.archive.event_count()
            assert all(ledger.verify_balance(u, full=True).valid for u in users[:3])
        after = sum(_user_bytes(client, u) for u in users)
        hot_after = sum(int(client.xlen(user_keys(u).log)) for u in users)
    return {
        "users": len(users),
        "events": report.events_archived,
        "archived_rows": archived,
        "seconds": seconds,
        "before": before,
        "after": after,
        "hot_before": hot_before,
        "hot_after": hot_after,
    }


def _sqlite_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def run_archive(ctx: Context) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="credits-bench-archive-") as tmp:
        path = Path(tmp) / "archive.db"
        figures = _archive_run(ctx, f"sqlite:///{path}", "archive-sqlite")
        archive_bytes = _sqlite_bytes(path)
    return _archive_outcome(ctx, figures, archive_bytes, "SQLite (WAL, synchronous=FULL)")


def run_archive_pg(ctx: Context) -> Outcome | Skipped:
    try:
        import psycopg
    except ImportError:
        return Skipped("skipped: psycopg is not installed (pip install -e '.[bench]')")
    with postgres_dsn(ctx.pg_dsn) as dsn:
        if dsn is None:
            return Skipped(f"skipped: no {ENV_DSN} and no PostgreSQL binaries to start one")
        schema = f"bench_{ctx.target.tag.replace('-', '_').lower()}"[:60]
        figures = _archive_run(ctx, f"{dsn}?schema={schema}", "archive-pg")
        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (schema,),
            ).fetchone()
            archive_bytes = int(row[0]) if row else 0
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return _archive_outcome(ctx, figures, archive_bytes, "PostgreSQL (tables and indexes)")


def _archive_outcome(
    ctx: Context, figures: dict[str, Any], archive_bytes: int, backend: str
) -> Outcome:
    rate = figures["events"] / figures["seconds"] if figures["seconds"] else 0.0
    per_user_before = figures["before"] / figures["users"]
    per_user_after = figures["after"] / figures["users"]
    hot_window = HOT_DAYS_DEFAULT / HISTORY_DAYS
    notes = [
        f"{figures['users']} users x {ctx.sizes.archive_events:,} events over {HISTORY_DAYS} "
        f"days; {figures['events']:,} archived in {figures['seconds']:.2f} s: {rate:,.0f} events/s",
        f"Redis per user: {per_user_before:,.0f} B before, {per_user_after:,.0f} B after "
        f"({per_user_after / per_user_before:.2f}x; the {HOT_DAYS_DEFAULT}-day window is "
        f"{hot_window:.2f} of the history): {figures['hot_after']:,} of "
        f"{figures['hot_before']:,} events stay hot",
        f"B/event hot (Redis, all of a user's keys): {figures['after'] / figures['hot_after']:.0f}"
        f"; archived ({backend}): {archive_bytes / max(1, figures['archived_rows']):.0f}",
    ]
    if ctx.sizes.quick:
        notes.append("quick mode: fewer users and events")
    return Outcome(project=rate, baseline=None, ratio=None, unit="events/s", notes=notes)


RECONCILE = Measure(
    key="reconcile_incremental",
    title="reconcile after 1 % new events vs the first reconcile (10,000 users x 1,000 events)",
    baseline="the first reconcile",
    target=Target(ratio_max=0.1),
    run=run_reconcile,
)
BALANCE_AT = Measure(
    key="balance_at",
    title="`balance_at` at 1,000,000 events",
    baseline="the same call at 100 events",
    target=Target(ratio_max=1.5),
    run=run_balance_at,
)
ARCHIVE = Measure(
    key="archive",
    title="archive throughput to SQLite; Redis bytes per user after archiving",
    baseline="—",
    target=Target(),
    run=run_archive,
)
ARCHIVE_PG = Measure(
    key="archive_pg",
    title="archive throughput to PostgreSQL",
    baseline="—",
    target=Target(),
    run=run_archive_pg,
)
