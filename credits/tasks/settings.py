"""Settings of the Celery side: broker, result backend, schedule, redelivery.

:class:`WorkerSettings` extends :class:`~credits.settings.CreditsSettings`, so
it is still the one place that reads the environment (STYLE habit 11); it only
adds what a worker, beat and Flower need. ``celeryconfig.py`` turns it into
Celery's lowercase settings.

Environment:

* ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND``: default to the ledger's
  own ``CREDITS_REDIS_URL`` (with ``CREDITS_REDIS_TOKEN`` as its password).
* ``CREDITS_SWEEP_INTERVAL_S`` (60) and ``CREDITS_RECONCILE_INTERVAL_S`` (3600):
  how often beat runs the expiry sweep and the reconcile.
* ``CREDITS_BROKER_VISIBILITY_TIMEOUT_S`` (60): how long an unacknowledged task
  stays invisible before Redis hands it to another worker (see ``celeryconfig.py``).
"""

from __future__ import annotations

from typing import Final

from pydantic import AliasChoices, Field

from credits.settings import CreditsSettings, resolve_redis_url

MINUTE_S: Final = 60
HOUR_S: Final = 60 * MINUTE_S
DAY_S: Final = 24 * HOUR_S

SWEEP_INTERVAL_S_DEFAULT: Final = 60.0
RECONCILE_INTERVAL_S_DEFAULT: Final = float(HOUR_S)
# SPEC: a task whose worker was SIGKILLed is delivered again within two minutes.
# Redelivery happens after this timeout plus one restore pass (every few seconds).
VISIBILITY_TIMEOUT_S_DEFAULT: Final = 60
VISIBILITY_TIMEOUT_S_MAX: Final = HOUR_S


class WorkerSettings(CreditsSettings):
    """What the worker, beat and Flower read from the environment."""

    broker_url: str | None = Field(default=None, validation_alias=AliasChoices("CELERY_BROKER_URL"))
    result_backend: str | None = Field(
        default=None, validation_alias=AliasChoices("CELERY_RESULT_BACKEND")
    )
    sweep_interval_s: float = Field(default=SWEEP_INTERVAL_S_DEFAULT, gt=0, le=DAY_S)
    reconcile_interval_s: float = Field(default=RECONCILE_INTERVAL_S_DEFAULT, gt=0, le=7 * DAY_S)
    broker_visibility_timeout_s: int = Field(
        default=VISIBILITY_TIMEOUT_S_DEFAULT, ge=1, le=VISIBILITY_TIMEOUT_S_MAX
    )

    def store_url(self) -> str | None:
        """The ledger's Redis URL (token applied, Upstash mapped), or None if unset."""
        if not self.redis_url:
            return None
        token = self.redis_token.get_secret_value() if self.redis_token else None
        return resolve_redis_url(self.redis_url, token)

    def broker(self) -> str | None:
        """``CELERY_BROKER_URL``, else the ledger's own Redis, else None."""
        return self.broker_url or self.store_url()

    def backend(self) -> str | None:
        """``CELERY_RESULT_BACKEND``, else the ledger's own Redis, else None."""
        return self.result_backend or self.store_url()


__all__ = [
    "RECONCILE_INTERVAL_S_DEFAULT",
    "SWEEP_INTERVAL_S_DEFAULT",
    "VISIBILITY_TIMEOUT_S_DEFAULT",
    "WorkerSettings",
]
