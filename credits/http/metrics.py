"""Prometheus metrics of the ledger, served at ``GET /metrics`` beside Flower's worker metrics.

What is exported and where it comes from:

* ``credits_holds_open``: open holds of the whole ledger (:func:`credits.stats.open_holds`);
* ``credits_sweep_lag_seconds``: how long the oldest expired hold has waited
  for the sweep, by the server's clock (alert when it grows past the sweep interval);
* ``credits_ledger_credits_total{type,category,action}``: credits moved, from
  the per-bucket stats hashes the scripts keep (:func:`credits.stats.credit_sums`),
  ``type`` being what happened to them (granted, charged, expired, voided, shortfall);
  ``credits_granted_credits_total``, ``credits_charged_credits_total`` (and the
  other families of :data:`FAMILY_OF_TYPE`) are the same sums by meaning;
  ``credits_shortfall_credits_total`` is the overage no balance covered;
* ``credits_ledger_call_seconds{operation}``: latency of this process's ledger
  calls as its clients see them (script time plus the round trip).

Ledger-wide figures walk 1,024 bucket keys, so one reading is reused for
:data:`~credits.limits.METRICS_SNAPSHOT_TTL_S`: any number of scrapers costs
Redis at most one walk per interval. Series are capped at
:data:`~credits.limits.METRICS_SERIES_MAX`; the smallest beyond it are summed
under ``action="_other"``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from credits import limits
from credits.protocol import Call
from credits.stats import SumKey, credit_sums, open_holds, sweep_lag_ms
from credits.transport import drive_async

T = TypeVar("T")
Execute = Callable[[Call], Awaitable[Any]]

# What each transaction type means for the named families. The lots work adds
# its own types here (its expiry -> "expired", its void -> "voided").
# The scripts count every credit under what happened to it (lua/include/log.lua,
# note_stat): granted into a lot, charged from one, expired or voided with one.
FAMILY_OF_TYPE: Final[dict[str, str]] = {
    "granted": "granted",
    "charged": "charged",
    "expired": "expired",
    "voided": "voided",
}
SHORTFALL_TYPE: Final = "shortfall"
OTHER_ACTION: Final = "_other"
LATENCY_BUCKETS_S: Final = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


@dataclass
class Snapshot:
    """One reading of the ledger-wide figures."""

    holds_open: int = 0
    sweep_lag_ms: int = 0
    sums: dict[SumKey, int] = field(default_factory=dict)
    read_at: float = 0.0


def capped(sums: dict[SumKey, int], series_max: int) -> dict[SumKey, int]:
    """At most ``series_max`` series: the largest kept, the rest summed per (type, category)."""
    if len(sums) <= series_max:
        return sums
    ranked = sorted(sums.items(), key=lambda item: item[1], reverse=True)
    kept = dict(ranked[: series_max - 1])
    for key, amount in ranked[series_max - 1 :]:
        other = SumKey(key.type, key.category, OTHER_ACTION)
        kept[other] = kept.get(other, 0) + amount
    return kept


class LedgerMetrics(Collector):
    """The metrics of one HTTP app: its own registry, so apps (and tests) never collide."""

    def __init__(
        self,
        snapshot_ttl_s: float = limits.METRICS_SNAPSHOT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "credits_ledger_call_seconds",
            "Latency of this process's ledger calls (script time plus round trip)",
            ["operation"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._snapshot = Snapshot()
        self._ttl_s = snapshot_ttl_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self.registry.register(self)

    async def timed(self, operation: str, call: Awaitable[T]) -> T:
        """Await ``call`` and record how long it took (errors included)."""
        started = time.perf_counter()
        try:
            return await call
        finally:
            self.latency.labels(operation).observe(time.perf_counter() - started)

    async def refresh(self, execute: Execute) -> Snapshot:
        """The current reading, read again only when older than the snapshot TTL."""
        async with self._lock:
            now = self._clock()
            if self._snapshot.read_at and now - self._snapshot.read_at < self._ttl_s:
                return self._snapshot
            self._snapshot = Snapshot(
                holds_open=await drive_async(open_holds(), execute),
                sweep_lag_ms=await drive_async(sweep_lag_ms(), execute),
                sums=capped(await drive_async(credit_sums(), execute), limits.METRICS_SERIES_MAX),
                read_at=now,
            )
            return self._snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        yield GaugeMetricFamily(
            "credits_holds_open", "Open holds of the whole ledger", value=snap.holds_open
        )
        yield GaugeMetricFamily(
            "credits_sweep_lag_seconds",
            "How long the oldest expired hold has waited for the sweep (server clock)",
            value=snap.sweep_lag_ms / 1000,
        )
        moved = CounterMetricFamily(
            "credits_ledger_credits",
            "Credits moved, by transaction type, category and action",
            labels=["type", "category", "action"],
        )
        by_family: dict[str, dict[tuple[str, str], int]] = {}
        shortfall = 0
        for key, amount in sorted(snap.sums.items()):
            moved.add_metric([key.type, key.category, key.action], amount)
            if key.type == SHORTFALL_TYPE:
                shortfall += amount
            family = FAMILY_OF_TYPE.get(key.type)
            if family is not None:
                series = by_family.setdefault(family, {})
                series[(key.category, key.action)] = (
                    series.get((key.category, key.action), 0) + amount
                )
        families = []
        for family, series in sorted(by_family.items()):
            metric = CounterMetricFamily(
                f"credits_{family}_credits",
                f"Credits {family}, by category and action",
                labels=["category", "action"],
            )
            for (category, action), amount in series.items():
                metric.add_metric([category, action], amount)
            families.append(metric)
        yield moved
        yield from families
        yield CounterMetricFamily(
            "credits_shortfall_credits",
            "Overage of settles that no balance covered",
            value=shortfall,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
