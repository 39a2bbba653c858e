"""One hot user, many concurrent deducts: the ledger against a PostgreSQL ledger.

The peer most teams would pick is a SQL table with a row lock: ``SELECT ...
FOR UPDATE`` on the account, insert the ledger row, update the balance, commit.
Every writer of one user queues on that row lock, which is exactly the case of
a user whose four apps charge at once. Both sides run ``pg_concurrency``
asyncio workers on the same single user. PostgreSQL comes only from
``CREDITS_BENCH_PG_DSN``; without it (or if it is unreachable) the row is
skipped with that message. The tables are created under this run's tag and
dropped at the end.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

try:
    import psycopg
    from psycopg import sql
except ImportError:  # the bench extra is not installed: the row says so
    psycopg = None  # type: ignore[assignment]

from bench import baseline
from bench.context import Context, Measure
from bench.result import Outcome, Skipped, Target
from bench.timing import alternate_async
from credits import AsyncCredits

ENV_DSN = "CREDITS_BENCH_PG_DSN"
ACTION = "chat_message"
CONNECT_TIMEOUT_S = 5


def run(ctx: Context) -> Outcome | Skipped:
    dsn = ctx.pg_dsn if ctx.pg_dsn is not None else os.environ.get(ENV_DSN)
    if not dsn:
        return Skipped(f"skipped: {ENV_DSN} is not set (no PostgreSQL to compare with)")
    if psycopg is None:
        return Skipped("skipped: psycopg is not installed (pip install -e '.[bench]')")
    try:
        return asyncio.run(_run(ctx, dsn))
    except psycopg.OperationalError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Skipped(f"skipped: PostgreSQL at {ENV_DSN} unreachable: {first_line}")


@dataclass(frozen=True, slots=True)
class Queries:
    """The PostgreSQL ledger's statements, on tables named after this run."""

    create_accounts: sql.Composed
    create_ledger: sql.Composed
    create_index: sql.Composed
    fund: sql.Composed
    lock: sql.Composed
    insert: sql.Composed
    update: sql.Composed
    drop: sql.Composed

    @classmethod
    def for_tag(cls, tag: str) -> Queries:
        stem = tag.replace("-", "_")
        accounts = sql.Identifier(f"{stem}_accounts")
        ledger = sql.Identifier(f"{stem}_ledger")
        return cls(
            create_accounts=sql.SQL(
                "CREATE TABLE {} (user_id text PRIMARY KEY, "
                "balance bigint NOT NULL CHECK (balance >= 0))"
            ).format(accounts),
            create_ledger=sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, user_id text NOT NULL, "
                "amount bigint NOT NULL, action text NOT NULL, balance_after bigint NOT NULL, "
                "created_at timestamptz NOT NULL DEFAULT now())"
            ).format(ledger),
            create_index=sql.SQL("CREATE INDEX ON {} (user_id, id)").format(ledger),
            fund=sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(accounts),
            lock=sql.SQL("SELECT balance FROM {} WHERE user_id = %s FOR UPDATE").format(accounts),
            insert=sql.SQL(
                "INSERT INTO {} (user_id, amount, action, balance_after) VALUES (%s, %s, %s, %s)"
            ).format(ledger),
            update=sql.SQL("UPDATE {} SET balance = balance - %s WHERE user_id = %s").format(
                accounts
            ),
            drop=sql.SQL("DROP TABLE IF EXISTS {}, {}").format(accounts, ledger),
        )


async def _pg_deducts(conn: psycopg.AsyncConnection[Any], q: Queries, user: str, n: int) -> None:
    """``n`` deducts of 1, each one transaction holding the account's row lock."""
    for _ in range(n):
        async with conn.transaction():
            row = await (await conn.execute(q.lock, (user,))).fetchone()
            if row is None or row[0] < 1:
                raise RuntimeError("the PostgreSQL ledger ran dry")
            await conn.execute(q.insert, (user, 1, ACTION, row[0] - 1))
            await conn.execute(q.update, (1, user))


async def _run(ctx: Context, dsn: str) -> Outcome:
    workers = ctx.sizes.pg_concurrency
    per_worker = ctx.sizes.pg_ops // workers
    ops = per_worker * workers
    q = Queries.for_tag(ctx.target.tag)
    user = ctx.user("hot")
    admin = await psycopg.AsyncConnection.connect(
        dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
    )
    conns: list[psycopg.AsyncConnection[Any]] = []
    credits = AsyncCredits(ctx.target.url)
    try:
        for statement in (q.create_accounts, q.create_ledger, q.create_index):
            await admin.execute(statement)
        await admin.execute(q.fund, (user, baseline.GRANT))
        setting = await (await admin.execute("SHOW synchronous_commit")).fetchone()
        for _ in range(workers):
            conns.append(
                await psycopg.AsyncConnection.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S)
            )
        await credits.initialize_user(user, baseline.GRANT)

        async def redis_worker() -> None:
            for _ in range(per_worker):
                await credits.deduct(user, 1, ACTION)

        async def project() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(redis_worker() for _ in range(workers)))
            return ops / (time.perf_counter() - start)

        async def postgres() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(_pg_deducts(conn, q, user, per_worker) for conn in conns))
            return ops / (time.perf_counter() - start)

        paired = await alternate_async(ctx.sizes.rounds, project, postgres)
    finally:
        for conn in conns:
            await conn.close()
        await admin.execute(q.drop)
        await admin.close()
        await credits.aclose()
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {ops} deducts per side on ONE user, {workers} "
            f"concurrent workers (asyncio; psycopg {workers} connections)",
            f"PostgreSQL synchronous_commit={setting[0] if setting else '?'}; the bench "
            "Redis runs without persistence (AOF everysec would add a write per event "
            "loop, not an fsync per deduct)",
        ],
    )


MEASURE = Measure(
    key="hot_user_pg",
    title="hot-user `deduct`, 16 concurrent",
    baseline="PostgreSQL: SELECT … FOR UPDATE + INSERT + UPDATE, one transaction",
    target=Target(ratio_min=5.0),
    run=run,
)
