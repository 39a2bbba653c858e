"""Settings of the Celery side: broker, result backend, schedule, redelivery.

:class:`WorkerSettings` extends :class:`~credits.settings.CreditsSettings`, so
it is still the one place that reads the environment; it only adds what a
worker, beat and Flower need. ``credits.tasks.celeryconfig`` turns it into
Celery's lowercase settings, and :mod:`credits.tasks.jobs` takes the money
tasks' time limits and retry cap from it.

Numbers that must stay in step are derived from one: the broker's visibility
timeout (``CREDITS_BROKER_VISIBILITY_TIMEOUT_S``, 60 s). A late-acknowledged
task still running, or waiting for its retry, when that timeout passes is
handed to a second worker; so a money task's hard time limit and the cap of its
retry backoff are each half of it, and the soft limit a third. Setting the
timeout to 10 s gives limits of 5 s (soft 3.3 s) and a 5 s backoff cap, never a
silent double delivery; below 2 s is refused.

Environment:

* ``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND``: default to the ledger's
  own ``CREDITS_REDIS_URL`` (with ``CREDITS_REDIS_TOKEN`` as its password).
  A ``redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]`` URL is translated
  for kombu's Sentinel transport and Celery's Sentinel result backend
  (:class:`CeleryEndpoint`): ``sentinel://h1:p1/db;sentinel://h2:p2/db`` plus
  the ``master_name`` transport option.
* ``CREDITS_SWEEP_INTERVAL_S`` (60) and ``CREDITS_RECONCILE_INTERVAL_S`` (3600):
  how often beat runs the expiry sweep and the reconcile.
* ``CREDITS_BROKER_VISIBILITY_TIMEOUT_S`` (60, from 2 to 3600).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import AliasChoices, Field

from credits import sentinel
from credits.settings import CreditsSettings

MINUTE_S: Final = 60
HOUR_S: Final = 60 * MINUTE_S
DAY_S: Final = 24 * HOUR_S

SWEEP_INTERVAL_S_DEFAULT: Final = 60.0
RECONCILE_INTERVAL_S_DEFAULT: Final = float(HOUR_S)
# A task whose worker was SIGKILLed is delivered again within two minutes:
# redelivery happens after this timeout plus one restore pass (every few seconds).
VISIBILITY_TIMEOUT_S_DEFAULT: Final = 60
VISIBILITY_TIMEOUT_S_MIN: Final = 2
VISIBILITY_TIMEOUT_S_MAX: Final = HOUR_S
BEAT_SCHEDULE_FILE_NAME: Final = "celerybeat-schedule"


# Seconds: how long the broker's and the backend's connections (sentinels included) wait.
BROKER_SOCKET_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True)
class CeleryEndpoint:
    """A broker or result backend as Celery wants it: its URL and the transport options it needs."""

    url: str | None
    transport_options: dict[str, Any] = field(default_factory=dict)

    @property
    def sentinel(self) -> bool:
        return bool(self.transport_options.get("master_name"))

    def broker_extras(self) -> dict[str, Any]:
        """What Celery needs beyond ``broker_url`` to use this endpoint as its broker.

        For Sentinel: the read and write URLs it connects with (Celery prefers an
        untranslated ``CELERY_BROKER_URL`` from the environment to ``broker_url``,
        never to these), and a reconnect when a channel meets a demoted primary.
        """
        if not self.sentinel:
            return {}
        return {
            "broker_read_url": self.url,
            "broker_write_url": self.url,
            "broker_channel_error_retry": True,
        }

    @classmethod
    def of(cls, url: str | None) -> CeleryEndpoint:
        """``url`` unchanged, or a ``redis+sentinel://`` URL in kombu's spelling and options."""
        if not sentinel.is_sentinel_url(url):
            return cls(url)
        return cls(sentinel.kombu_url(url), sentinel.kombu_options(url, BROKER_SOCKET_TIMEOUT_S))


def celery_connection(conf: Any, broker: str, backend: str) -> dict[str, Any]:
    """Celery settings that point ``conf`` at ``broker`` and ``backend``, Sentinel translated."""
    to_broker, to_backend = CeleryEndpoint.of(broker), CeleryEndpoint.of(backend)
    return {
        "broker_url": to_broker.url,
        "broker_transport_options": {
            **(conf.broker_transport_options or {}),
            **to_broker.transport_options,
        },
        **to_broker.broker_extras(),
        "result_backend": to_backend.url,
        "result_backend_transport_options": {
            **(conf.result_backend_transport_options or {}),
            **to_backend.transport_options,
        },
    }


class WorkerSettings(CreditsSettings):
    """What the worker, beat and Flower read from the environment."""

    broker_url: str | None = Field(default=None, validation_alias=AliasChoices("CELERY_BROKER_URL"))
    result_backend: str | None = Field(
        default=None, validation_alias=AliasChoices("CELERY_RESULT_BACKEND")
    )
    sweep_interval_s: float = Field(default=SWEEP_INTERVAL_S_DEFAULT, gt=0, le=DAY_S)
    reconcile_interval_s: float = Field(default=RECONCILE_INTERVAL_S_DEFAULT, gt=0, le=7 * DAY_S)
    # beat's schedule for archive_events (a no-op without CREDITS_ARCHIVE_URL)
    archive_interval_s: float = Field(default=RECONCILE_INTERVAL_S_DEFAULT, gt=0, le=7 * DAY_S)
    broker_visibility_timeout_s: int = Field(
        default=VISIBILITY_TIMEOUT_S_DEFAULT,
        ge=VISIBILITY_TIMEOUT_S_MIN,
        le=VISIBILITY_TIMEOUT_S_MAX,
    )

    def broker(self) -> str | None:
        """``CELERY_BROKER_URL``, else the ledger's own Redis, else None."""
        return self.broker_url or self.store_url()

    def backend(self) -> str | None:
        """``CELERY_RESULT_BACKEND``, else the ledger's own Redis, else None."""
        return self.result_backend or self.store_url()

    def broker_endpoint(self) -> CeleryEndpoint:
        return CeleryEndpoint.of(self.broker())

    def backend_endpoint(self) -> CeleryEndpoint:
        return CeleryEndpoint.of(self.backend())

    # Derived from the visibility timeout (see the module docstring).

    @property
    def money_time_limit_s(self) -> float:
        """Hard time limit of settle and release: half the visibility timeout."""
        return self.broker_visibility_timeout_s / 2

    @property
    def money_soft_time_limit_s(self) -> float:
        """Soft time limit of settle and release: a third of the visibility timeout."""
        return self.broker_visibility_timeout_s / 3

    @property
    def retry_backoff_max_s(self) -> int:
        """Cap of a retry's wait, which a late-acked task spends unacknowledged (whole s)."""
        return max(1, self.broker_visibility_timeout_s // 2)

    def beat_schedule_path(self) -> Path:
        """Where beat keeps its schedule: the data dir, not the current directory."""
        return self.data_dir / BEAT_SCHEDULE_FILE_NAME


__all__ = [
    "RECONCILE_INTERVAL_S_DEFAULT",
    "SWEEP_INTERVAL_S_DEFAULT",
    "VISIBILITY_TIMEOUT_S_DEFAULT",
    "CeleryEndpoint",
    "WorkerSettings",
    "celery_connection",
]
