"""What ``wait_replicas=1`` costs: sync ``deduct`` waiting for a replica vs not waiting.

A write acknowledged only once a replica has it pays, per call, the primary's
``WAIT`` in the same pipeline and the replica's acknowledgement of the offset.
Both sides run here on a primary and a replica this measure starts itself, on
loopback (the harness's own target server has no replica), with the same
client code and one connection each, in alternating rounds; the baseline is
the same deduct with ``wait_replicas=0``. Across a real network the WAIT adds
one primary-to-replica round trip to every write (arithmetic, not measured:
this machine has loopback only).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.context import Context, Measure
from bench.result import Outcome, Target
from bench.timing import alternate, rate
from credits import Credits
from credits.redis_server import HOST, RedisServer
from credits.waiting import wait_until

ACTION = "chat_message"
GRANT = 10**12
SYNC_TIMEOUT_S = 30.0


@contextlib.contextmanager
def primary_with_replica() -> Iterator[RedisServer]:
    """A throwaway primary and its replica, the replica in sync when this yields."""
    with tempfile.TemporaryDirectory(prefix="credits-bench-replica-") as directory:
        base = Path(directory)
        with RedisServer(base / "primary") as primary:
            follow = ["--replicaof", HOST, str(primary.port)]
            with RedisServer(base / "replica", extra_args=follow), primary.client() as probe:

                def in_sync() -> bool:
                    info = probe.info("replication")
                    replica = info.get("slave0")
                    return isinstance(replica, dict) and replica.get("state") == "online"

                wait_until(in_sync, timeout_s=SYNC_TIMEOUT_S, what="the replica to sync")
                yield primary


def run(ctx: Context) -> Outcome:
    ops = ctx.sizes.sync_ops
    waited_user, plain_user = ctx.user("replicated"), ctx.user("unreplicated")
    with (
        primary_with_replica() as primary,
        Credits(primary.url, wait_replicas=1) as waited,
        Credits(primary.url) as plain,
    ):
        waited.initialize_user(waited_user, GRANT)
        plain.initialize_user(plain_user, GRANT)

        def deducts(client: Credits, user: str) -> None:
            for _ in range(ops):
                client.deduct(user, 1, ACTION)

        paired = alternate(
            ctx.sizes.rounds,
            lambda: rate(ops, lambda: deducts(waited, waited_user)),
            lambda: rate(ops, lambda: deducts(plain, plain_user)),
        )
    return Outcome(
        project=paired.project,
        baseline=paired.baseline,
        ratio=paired.ratio,
        unit="ops/s",
        notes=[
            f"{paired.rounds} rounds of {ops} deducts per side; one connection each",
            "a primary and one replica started for this row, loopback, no persistence",
            "project: wait_replicas=1 (EVALSHA + WAIT in one pipeline); baseline: wait_replicas=0",
        ],
    )


MEASURE = Measure(
    key="replicated_deduct",
    title="`deduct` with `wait_replicas=1`",
    baseline="the same `deduct` with `wait_replicas=0`",
    target=Target(ratio_min=0.5),
    run=run,
)
