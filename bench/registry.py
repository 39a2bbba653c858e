"""The rows of the results table (one module each in bench.measures), in the targets' order."""

from __future__ import annotations

from bench.context import Measure
from bench.measures import (
    alert_deduct,
    async_deduct,
    bulk,
    celery_settle,
    history,
    history_tiers,
    hot_user_pg,
    http_deduct,
    memory,
    plan_deduct,
    renew_sweep,
    replicated_deduct,
    reserve_settle,
    server_clock,
    slowlog,
    sweep,
    sync_deduct,
    webhook_delivery,
    webhook_isolation,
)

ALL: tuple[Measure, ...] = (
    sync_deduct.MEASURE,
    server_clock.MEASURE,
    replicated_deduct.MEASURE,
    plan_deduct.MEASURE,
    alert_deduct.MEASURE,
    async_deduct.MEASURE,
    bulk.MEASURE,
    hot_user_pg.MEASURE,
    history.MEASURE,
    history_tiers.BALANCE_AT,
    memory.MEASURE,
    reserve_settle.MEASURE,
    slowlog.MEASURE,
    sweep.MEASURE,
    renew_sweep.MEASURE,
    history_tiers.RECONCILE,
    history_tiers.ARCHIVE,
    history_tiers.ARCHIVE_PG,
    celery_settle.MEASURE,
    webhook_delivery.MEASURE,
    webhook_isolation.MEASURE,
    http_deduct.MEASURE,
)
