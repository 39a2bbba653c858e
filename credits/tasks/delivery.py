"""The webhook delivery task: ``deliver_events``, run by beat every ``CREDITS_WEBHOOK_INTERVAL_S``.

One task name for both kinds of work, so Flower shows delivery as one row:

* ``deliver_events()`` (from beat) is the dispatcher tick
  (:mod:`credits.webhooks.dispatch`): it queues one run per endpoint with work,
  on the queue it was itself taken from, trims the outbox and counts;
* ``deliver_events(endpoint_id=...)`` is one endpoint's delivery run
  (:mod:`credits.webhooks.delivery`), under that endpoint's lease.

A dead endpoint's run ends within its budget plus one timeout and then pauses
the endpoint, so it holds one worker process for seconds, not the pool; each
endpoint is its own run, so one endpoint's backlog never spends another's
budget. Both acknowledge early and store no result (they run every few
seconds): a run lost with its worker is redone by the next tick, which is what
makes delivery at least once. The time limits are derived from the run's
budget and ``CREDITS_WEBHOOK_TIMEOUT_S``, and the endpoint's lease outlives
them, so two runs of one endpoint never overlap.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from credits.tasks.app import app
from credits.tasks.runtime import ledger
from credits.transport import blocking_executor
from credits.webhooks.registry import check_endpoint_id
from credits.webhooks.settings import WebhookSettings

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: at a worker's usual -l INFO that is one line per
# delivery attempt. Failures are logged here instead, per run.
logging.getLogger("httpx").setLevel(logging.WARNING)

_settings = WebhookSettings()

DELIVERY_TASK: Final[dict[str, Any]] = {
    "bind": True,
    "acks_late": False,
    "ignore_result": True,
    "soft_time_limit": _settings.run_time_limit_s - 5,
    "time_limit": _settings.run_time_limit_s,
}


@app.task(name="credits.tasks.deliver_events", **DELIVERY_TASK)
def deliver_events(self: Any, endpoint_id: str | None = None) -> dict[str, Any]:
    """Deliver the ledger's events to webhook endpoints (beat calls it with no argument).

    With no ``endpoint_id``: the dispatcher tick, which queues a run for every
    endpoint with work, trims delivered events past the retention and updates
    the counters. With one: that endpoint's delivery run. Returns what it did.
    """
    from credits.webhooks import delivery, dispatch

    settings = WebhookSettings()
    execute = blocking_executor(ledger().redis)
    if endpoint_id is None:
        info = getattr(self.request, "delivery_info", None) or {}
        routing: dict[str, Any] = {"expires": settings.queued_ttl_ms / 1000}
        if info.get("routing_key"):
            routing["queue"] = info["routing_key"]

        def enqueue(endpoint: str) -> None:
            deliver_events.apply_async(kwargs={"endpoint_id": endpoint}, **routing)

        report = dispatch.tick(
            execute,
            retention_ms=settings.retention_ms,
            queued_ttl_ms=settings.queued_ttl_ms,
            enqueue=enqueue,
        )
        return report.as_dict()
    config = delivery.DeliveryConfig.from_settings(settings)
    run = delivery.run_locked(execute, check_endpoint_id(endpoint_id), config)
    if run.parked or run.outcome == "down":
        logger.warning("webhook %s: %s (%d parked) %s", endpoint_id, run.outcome, run.parked,
                       run.error)  # fmt: skip
    return run.as_dict()
