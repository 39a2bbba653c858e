"""What webhook delivery and the outbox's retention read from the environment.

:class:`WebhookSettings` extends :class:`~credits.settings.CreditsSettings`, so
the environment is still read in one place (the ``CREDITS_`` prefix):

* ``CREDITS_WEBHOOK_RETRY_S``: the retry schedule, comma-separated delays in
  seconds between attempts (default ``5,300,1800,7200,18000,36000,36000``:
  27.6 hours; see :mod:`~credits.webhooks.schedule`);
* ``CREDITS_WEBHOOK_ALLOW_PRIVATE``: ``1`` lets endpoints resolve to loopback,
  private or reserved addresses (development and tests only; see
  :mod:`~credits.webhooks.ssrf`);
* ``CREDITS_WEBHOOK_TIMEOUT_S`` (5): one attempt, connect to answer, at most;
* ``CREDITS_WEBHOOK_CONCURRENCY`` (8): requests one endpoint's run has in flight;
* ``CREDITS_WEBHOOK_INTERVAL_S`` (2): how often beat runs the dispatcher tick;
* ``CREDITS_EVENT_RETENTION_S`` (7 days): how long an event stays readable in
  the outbox (for ``read_events`` pollers) once every endpoint has it.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field, field_validator

from credits import limits
from credits.settings import CreditsSettings
from credits.webhooks.schedule import RETRY_S_DEFAULT, Schedule, parse_schedule

TIMEOUT_S_DEFAULT: Final = 5.0
TIMEOUT_S_MAX: Final = 60.0
CONCURRENCY_DEFAULT: Final = 8
INTERVAL_S_DEFAULT: Final = 2.0
RETENTION_S_DEFAULT: Final = 7 * 24 * 60 * 60.0
RETENTION_S_MAX: Final = 90 * 24 * 60 * 60.0


class WebhookSettings(CreditsSettings):
    """Delivery, SSRF and retention settings (``CREDITS_WEBHOOK_*``, ``CREDITS_EVENT_*``)."""

    webhook_retry_s: str = RETRY_S_DEFAULT
    webhook_allow_private: bool = False
    webhook_timeout_s: float = Field(default=TIMEOUT_S_DEFAULT, gt=0, le=TIMEOUT_S_MAX)
    webhook_concurrency: int = Field(
        default=CONCURRENCY_DEFAULT, ge=1, le=limits.WEBHOOK_CONCURRENCY_MAX
    )
    webhook_interval_s: float = Field(default=INTERVAL_S_DEFAULT, gt=0, le=60 * 60)
    event_retention_s: float = Field(default=RETENTION_S_DEFAULT, ge=0, le=RETENTION_S_MAX)

    @field_validator("webhook_retry_s")
    @classmethod
    def _schedule_parses(cls, value: str) -> str:
        parse_schedule(value)
        return value

    def schedule(self) -> Schedule:
        return Schedule.from_seconds(parse_schedule(self.webhook_retry_s))

    @property
    def retention_ms(self) -> int:
        return round(self.event_retention_s * 1000)

    @property
    def run_time_limit_s(self) -> float:
        """Hard time limit of one endpoint's run: its budget, one attempt, and room."""
        return limits.WEBHOOK_RUN_BUDGET_S + 2 * self.webhook_timeout_s + 10

    @property
    def lock_ttl_ms(self) -> int:
        """An endpoint's run lock outlives the run's hard time limit, so two never overlap."""
        return round((self.run_time_limit_s + 5) * 1000)

    @property
    def queued_ttl_ms(self) -> int:
        """How long a queued run keeps ticks from queueing another (it clears when it starts)."""
        return round(max(10.0, 5 * self.webhook_interval_s) * 1000)
