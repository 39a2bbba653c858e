"""A dead endpoint with a backlog of 10,000 events vs another endpoint's delivery latency.

Two endpoints on one worker (prefork, two processes): a live one (a receiver
that answers at once) and a dead one (a receiver that reads every request and
never answers: each attempt times out, ``CREDITS_WEBHOOK_TIMEOUT_S=2``). The
dead one is retried as hard as a schedule allows (a pause of 1 s after every
down run, so one worker process spends most of its time waiting on it) and
keeps its backlog: the schedule's window is a day, so nothing is parked.
A probe is one event written for a fresh user; its latency is from the write
to its arrival at the live receiver (both on this machine's clock). The
project is the median latency of the probes while the dead endpoint is there
with its backlog; the baseline is the median of the same probes with no dead
endpoint, measured before it is added and after it is removed (A, B, A).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import TYPE_CHECKING

import redis

from bench.context import Context, Measure
from bench.result import Outcome, Skipped, Target
from bench.seed import user_ids

if TYPE_CHECKING:
    from bench.webhook_rig import ReceiverProcess
    from credits import Credits

BACKLOG_USERS = 100
PROBE_TIMEOUT_S = 60.0
BACKLOG_TIMEOUT_S = 300.0
# A 1 s pause after each of the first 31 down runs, then a day: hard retries, no parking.
AGGRESSIVE_RETRY_S = ",".join(["1"] * 31 + ["86400"])
DEAD_TIMEOUT_S = "2"


def run(ctx: Context) -> Outcome | Skipped:
    try:
        import httpx  # noqa: F401
        import standardwebhooks  # noqa: F401

        import credits.tasks  # noqa: F401
    except ImportError as exc:
        return Skipped(f"not available: the webhooks or worker extra is missing ({exc})")
    from bench import webhook_rig
    from credits import Credits

    env = {
        "CREDITS_WEBHOOK_RETRY_S": AGGRESSIVE_RETRY_S,
        "CREDITS_WEBHOOK_TIMEOUT_S": DEAD_TIMEOUT_S,
    }
    with (
        webhook_rig.receiver("hang") as dead_sink,
        webhook_rig.receiver() as live_sink,
        Credits(ctx.target.url) as client,
        contextlib.closing(ctx.target.client()) as raw,
        webhook_rig.worker(ctx.target.url, ctx.target.tag, concurrency=2, env=env) as queue,
        webhook_rig.Beat(ctx.target.url, queue),
    ):
        live = webhook_rig.add_endpoint(client, live_sink.url)
        dead_ids: list[str] = []
        try:
            return _measure(ctx, client, raw, live_sink, dead_sink.url, dead_ids)
        finally:
            for endpoint_id in [live.id, *dead_ids]:
                client.remove_webhook(endpoint_id)


def _probes(ctx: Context, raw: redis.Redis, live: ReceiverProcess, group: str) -> list[float]:
    from bench import webhook_rig

    latencies: list[float] = []
    for user in user_ids(ctx.target.tag, group, ctx.sizes.webhook_probes):
        webhook_rig.expired_events(raw, [user], 1, ctx.now_ms())
        written = time.time()
        (event_id,) = webhook_rig.event_ids_of(raw, user)
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while (arrived := webhook_rig.arrival_of(live, event_id)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"probe {event_id} never reached the live endpoint")
            time.sleep(webhook_rig.POLL_S)
        latencies.append(max(arrived - written, 0.0))
    return latencies


def _measure(
    ctx: Context,
    client: Credits,
    raw: redis.Redis,
    live: ReceiverProcess,
    dead_url: str,
    dead_ids: list[str],
) -> Outcome:
    from bench import webhook_rig
    from credits.keys import webhook_pause_key

    before = _probes(ctx, raw, live, "iso-a")
    dead = webhook_rig.add_endpoint(client, dead_url)
    dead_ids.append(dead.id)
    backlog = ctx.sizes.webhook_dead_backlog
    users = user_ids(ctx.target.tag, "iso-backlog", BACKLOG_USERS)
    already = live.count()
    webhook_rig.expired_events(raw, users, backlog // BACKLOG_USERS, ctx.now_ms())
    # The live endpoint gets the backlog too: let it finish, so the probes wait on nothing of it.
    webhook_rig.wait_count(live, already + backlog, BACKLOG_TIMEOUT_S)
    webhook_rig._wait(lambda: bool(raw.get(webhook_pause_key(dead.id))), "the dead endpoint down")
    during = _probes(ctx, raw, live, "iso-b")
    still_paused = bool(raw.get(webhook_pause_key(dead.id)))
    client.remove_webhook(dead.id)
    dead_ids.clear()
    after = _probes(ctx, raw, live, "iso-c")
    project = statistics.median(during)
    baseline = statistics.median(before + after)
    notes = [
        f"{len(during)} probes with the dead endpoint and its {backlog} queued events; "
        f"{len(before) + len(after)} without (before and after)",
        f"worst probe: {max(during):.3f} s with, {max(before + after):.3f} s without; "
        f"beat every {webhook_rig.TICK_S} s; dead attempts time out after {DEAD_TIMEOUT_S} s",
        "dead endpoint still down at the end: " + ("yes" if still_paused else "no"),
    ]
    if ctx.sizes.quick:
        notes.append(f"quick mode: a backlog of {backlog}")
    return Outcome(
        project=project, baseline=baseline, ratio=project / baseline if baseline else None,
        unit="s", notes=notes,
    )  # fmt: skip


MEASURE = Measure(
    key="webhook_isolation",
    title="live endpoint's delivery latency beside a dead one with 10,000 queued",
    baseline="the same probes with no dead endpoint (before and after)",
    target=Target(ratio_max=1.5),
    run=run,
)
