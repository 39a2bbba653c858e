"""The Celery app the bench worker runs: the ledger's own app plus a no-op task.

The Celery row compares ``settle_reservation`` with a task that does nothing
but take the same arguments and return a dict of the same shape, on the same
app (so the same broker, result backend, acknowledgement and event settings),
in the same worker. The difference is the ledger's own cost per task.
Run as ``celery -A bench.celery_worker worker`` from the repository root
(``celeryconfig.py`` is read from there); the environment names the Redis.
"""

from __future__ import annotations

from typing import Any

from credits.tasks import app, settle_reservation

__all__ = ["app", "noop", "settle_reservation"]


@app.task(name="bench.noop")
def noop(reservation_id: str, actual_amount: int | None = None) -> dict[str, Any]:
    """Return a Settlement-shaped dict without touching the ledger."""
    return {
        "tx_id": "0-0",
        "reservation_id": reservation_id,
        "charged": actual_amount or 0,
        "released": 0,
        "shortfall": 0,
        "balance": 0,
        "late": False,
    }
