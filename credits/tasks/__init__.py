"""Celery app and tasks of credits (configured from ``celeryconfig.py``).

Run a worker with ``celery -A credits.tasks worker``; apps enqueue
``settle_reservation.delay(reservation_id, usage=...)`` from their providers'
completion webhooks. See ``celeryconfig.py`` for delivery guarantees.
"""

from credits.tasks.app import app
from credits.tasks.delivery import deliver_events
from credits.tasks.jobs import (
    archive_events,
    expire_lots,
    expire_reservations,
    reconcile_balances,
    release_reservation,
    renew_allowances,
    settle_reservation,
)

__all__ = [
    "app",
    "archive_events",
    "deliver_events",
    "expire_lots",
    "expire_reservations",
    "reconcile_balances",
    "release_reservation",
    "renew_allowances",
    "settle_reservation",
]
