"""Alternating rounds: the one way the harness compares two things.

The machine is shared, so load changes from second to second. Running the
project and its baseline back to back, in alternating order (ABBA...), and
keeping the median of the per-round ratios cancels most of that drift; a
warm-up round is run first and thrown away (connections, script cache, JIT-free
but cache-warm Python).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import redis


@dataclass(frozen=True, slots=True)
class Paired:
    """Medians over rounds of each side's figure, and of their per-round ratio."""

    project: float
    baseline: float
    ratio: float
    rounds: int


def rate(ops: int, run: Callable[[], object]) -> float:
    """Operations per second of ``run``, which performs ``ops`` operations."""
    start = time.perf_counter()
    run()
    return ops / (time.perf_counter() - start)


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def summarize(ours: list[float], theirs: list[float]) -> Paired:
    """Medians of each side and of the per-round ratio project ÷ baseline."""
    return Paired(
        project=statistics.median(ours),
        baseline=statistics.median(theirs),
        ratio=statistics.median(p / b for p, b in zip(ours, theirs, strict=True)),
        rounds=len(ours),
    )


def alternate(
    rounds: int,
    project: Callable[[], float],
    baseline: Callable[[], float],
    *,
    warmup: bool = True,
) -> Paired:
    """Run ``project`` and ``baseline`` in alternating order for ``rounds`` rounds.

    Each callable runs one batch and returns its figure (ops/s, or seconds);
    the ratio is project ÷ baseline per round, so for rates higher is better
    and for durations lower is better.
    """
    if warmup:
        project()
        baseline()
    ours: list[float] = []
    theirs: list[float] = []
    for index in range(rounds):
        if index % 2 == 0:
            ours.append(project())
            theirs.append(baseline())
        else:
            theirs.append(baseline())
            ours.append(project())
    return summarize(ours, theirs)


async def alternate_async(
    rounds: int,
    project: Callable[[], Awaitable[float]],
    baseline: Callable[[], Awaitable[float]],
) -> Paired:
    """:func:`alternate` for coroutines, on the running event loop."""
    await project()
    await baseline()
    ours: list[float] = []
    theirs: list[float] = []
    for index in range(rounds):
        if index % 2 == 0:
            ours.append(await project())
            theirs.append(await baseline())
        else:
            theirs.append(await baseline())
            ours.append(await project())
    return summarize(ours, theirs)


def server_cpu_s(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used (user + system), from INFO cpu."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class CpuTally:
    """CPU per operation on each side of the wire, beside the wall-clock rate.

    Wall-clock ratios move with the machine's load; CPU time per operation
    barely does, so it says where a gap comes from: this process (validation,
    key building, parsing, redis-py) or the server (the script's own work).
    Only meaningful on a server that serves this run alone.
    """

    server: redis.Redis
    client_us: list[float] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)

    def rate(self, ops: int, run: Callable[[], object]) -> float:
        server_before = server_cpu_s(self.server)
        cpu_before = time.process_time()
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
        self.client_us.append((time.process_time() - cpu_before) / ops * 1e6)
        self.server_us.append((server_cpu_s(self.server) - server_before) / ops * 1e6)
        return ops / wall

    def text(self) -> str:
        return (
            f"client CPU {statistics.median(self.client_us):.1f} µs/op, "
            f"server CPU {statistics.median(self.server_us):.1f} µs/op"
        )
