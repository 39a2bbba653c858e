"""``AsyncCredits.deduct`` with 64 requests in flight against the same baseline on redis.asyncio.

An async web app serves many requests at once; here 64 coroutines each deduct
from their own user through one client (and its connection pool), against 64
coroutines calling the minimal script through one redis.asyncio client.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio

from bench import baseline
from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.timing import alternate_async
from credits import AsyncCredits

ACTION = "chat_message"


def run(ctx: Context) -> Outcome:
    return asyncio.run(_run(ctx))


async def _run(ctx: Context) -> Outcome:
    workers = ctx.sizes.async_concurrency
    per_worker = ctx.sizes.async_ops // workers
    ops = per_worker * workers
    users = [ctx.user(f"async-{i}") for i in range(workers)]
    accounts = [
        baseline.BaselineAccount.named(ctx.target.tag, f"async-{i}") for i in range(workers)
    ]
    ledger = AsyncCredits(ctx.target.url)
    bare = redis.asyncio.Redis.from_url(ctx.target.url, decode_responses=True)
    sync_bare = ctx.target.client()
    try:
        for user in users:
            await ledger.initialize_user(user, baseline.GRANT)
        for account in accounts:
            baseline.fund(sync_bare, account)
        sha = baseline.load(sync_bare)

        async def project_worker(user: str) -> None:
            for _ in range(per_worker):
                await ledger.deduct(user, 1, ACTION)

        async def baseline_worker(account: baseline.BaselineAccount) -> None:
            for _ in range(per_worker):
                await baseline.deduct_async(bare, sha, account, 1, ACTION)

        async def project() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(project_worker(u) for u in users))
            return ops / (time.perf_counter() - start)

        async def minimal() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(baseline_worker(a) for a in accounts))
            return ops / (time.perf_counter() - start)

        paired = await alternate_async(ctx.sizes.rounds, project, minimal)
    finally:
        await ledger.aclose()
        await bare.aclose()
        sync_bare.close()
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {ops} deducts per side, {workers} coroutines, "
            "one user per coroutine, one client (pool) per side"
        ],
    )


MEASURE = Measure(
    key="async_deduct",
    title="async `deduct`, 64 concurrent",
    baseline="the same minimal Lua on redis.asyncio, 64 concurrent",
    target=Target(ratio_min=0.8),
    run=run,
)
