"""Webhook delivery throughput of one worker process, against bare signed POSTs.

One Celery worker process (prefork, concurrency 1) delivers N events (holds
expired by the ledger, spread over 100 users and so over many lanes) to a
receiver in a process of its own that answers 204 at once. A batch starts when
the beat thread starts ticking (the events are all written by then) and ends
when the receiver has seen every event. The baseline is the same number of
POSTs of event-sized JSON, signed with the same ``standardwebhooks`` signer,
from this process with the same concurrency (``CREDITS_WEBHOOK_CONCURRENCY``,
8) to the same receiver: the HTTP and signing floor. The ratio is what the
ledger's reads, delivery state, the dispatcher and Celery cost on top.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import TYPE_CHECKING

import redis

from bench.context import Context, Measure
from bench.result import Outcome, Skipped, Target
from bench.seed import user_ids
from bench.timing import alternate

if TYPE_CHECKING:
    from bench.webhook_rig import ReceiverProcess

USERS = 100
CONCURRENCY = 8  # the default CREDITS_WEBHOOK_CONCURRENCY
BATCH_TIMEOUT_S = 300.0
SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY_PAD = "x" * 160  # about the size of a reservation.expired event's JSON


def run(ctx: Context) -> Outcome | Skipped:
    try:
        import httpx  # noqa: F401
        import standardwebhooks  # noqa: F401

        import credits.tasks  # noqa: F401
    except ImportError as exc:
        return Skipped(f"not available: the webhooks or worker extra is missing ({exc})")
    from bench import webhook_rig
    from credits import Credits

    with (
        webhook_rig.receiver() as sink,
        Credits(ctx.target.url) as client,
        contextlib.closing(ctx.target.client()) as raw,
        webhook_rig.worker(ctx.target.url, ctx.target.tag, concurrency=1, env={}) as queue,
    ):
        endpoint = webhook_rig.add_endpoint(client, sink.url)
        try:
            return _measure(ctx, sink, raw, queue)
        finally:
            client.remove_webhook(endpoint.id)


def _measure(ctx: Context, sink: ReceiverProcess, raw: redis.Redis, queue: str) -> Outcome:
    from bench import webhook_rig

    events = ctx.sizes.webhook_events
    batches = itertools.count()
    seen = [0]

    def project() -> float:
        users = user_ids(ctx.target.tag, f"wh{next(batches)}", USERS)
        written = webhook_rig.expired_events(raw, users, events // USERS, ctx.now_ms())
        started = time.perf_counter()
        with webhook_rig.Beat(ctx.target.url, queue):
            webhook_rig.wait_count(sink, seen[0] + written, BATCH_TIMEOUT_S)
        took = time.perf_counter() - started
        seen[0] += written
        return written / took

    def baseline() -> float:
        batch = next(batches)
        started = time.perf_counter()
        asyncio.run(_bare_posts(sink.url, batch, events))
        took = time.perf_counter() - started
        seen[0] += events
        webhook_rig.wait_count(sink, seen[0], BATCH_TIMEOUT_S)
        return events / took

    paired = alternate(ctx.sizes.webhook_rounds, project, baseline)
    notes = [
        f"{paired.rounds} round(s) of {events} events per side over {USERS} users; "
        "project: one worker process (prefork, concurrency 1), beat every "
        f"{webhook_rig.TICK_S} s; baseline: signed POSTs from the bench process",
        f"both: {CONCURRENCY} requests in flight, a receiver process answering 204",
    ]
    if ctx.sizes.quick:
        notes.append(f"quick mode: {events} events per batch")
    return Outcome(
        project=paired.project, baseline=paired.baseline, ratio=paired.ratio,
        unit="events/s", notes=notes,
    )  # fmt: skip


async def _bare_posts(url: str, batch: int, count: int) -> None:
    import httpx

    from credits.webhooks.sender import signed_headers

    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=10.0) as http:

        async def post(i: int) -> None:
            webhook_id = f"evt_base_{batch}_{i}"
            body = f'{{"id":"{webhook_id}","type":"reservation.expired","data":"{BODY_PAD}"}}'
            headers = {"content-type": "application/json",
                       **signed_headers(SECRET, webhook_id, body, time.time())}  # fmt: skip
            async with gate:
                answer = await http.post(url, content=body.encode(), headers=headers)
            answer.raise_for_status()

        await asyncio.gather(*(post(i) for i in range(count)))


MEASURE = Measure(
    key="webhook_delivery",
    title="webhook delivery throughput, one worker process",
    baseline="bare signed POSTs, same concurrency and receiver",
    target=Target(ratio_min=0.5),
    run=run,
)
