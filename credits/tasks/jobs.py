"""The tasks: settle and release (from apps' webhooks); the sweeps and reconcile (from beat).

Retries: only :class:`~credits.errors.StoreUnavailableError` (Redis could not be
reached, or failed mid-call) is retried, with Celery's own exponential backoff
and full jitter. Retrying is safe because each call is keyed by its
reservation id: a settle that did land before the connection broke returns the
first settlement when it runs again. Business errors (unknown or closed hold,
bad input, no price) are raised at once and end the task as a typed failure
that the caller gets back from the result backend.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from credits.errors import (
    InvalidInputError,
    PricingConfigError,
    RefusedError,
    StoreUnavailableError,
)
from credits.tasks.app import app
from credits.tasks.runtime import ledger
from credits.tasks.settings import WorkerSettings

logger = logging.getLogger(__name__)

# Errors that say "this request is wrong", not "try later": never retried, and
# logged by the worker without a traceback (Celery's `throws`). Every one of
# them means nothing was applied (CreditsError.outcome_known).
BUSINESS_ERRORS: Final[tuple[type[Exception], ...]] = (
    RefusedError,
    InvalidInputError,
    PricingConfigError,
)

_settings = WorkerSettings()
# Backoff delays are 1, 2, 4 ... seconds, capped, each drawn at random below the
# cap (full jitter). The cap is half the broker's visibility timeout
# (credits.tasks.settings): a retry waits on its worker unacknowledged, and one
# that waited longer would be handed to a second worker as well.
RETRY_BACKOFF_MAX_S: Final = _settings.retry_backoff_max_s
# About ten minutes of store outage on average (twenty at most) before a settle
# gives up; then the hold still expires and the money comes back.
MONEY_RETRIES_MAX: Final = 40
# Upkeep runs again at the next beat tick anyway; a few quick retries suffice.
UPKEEP_RETRIES_MAX: Final = 3

_RETRY: Final[dict[str, Any]] = {
    "autoretry_for": (StoreUnavailableError,),
    "retry_backoff": True,
    "retry_backoff_max": RETRY_BACKOFF_MAX_S,
    "retry_jitter": True,
    "throws": BUSINESS_ERRORS,
}

# Settle and release move money: acknowledge only once done, and put the task
# back if the worker process dies under it. Time limits (seconds) are derived
# from the visibility timeout; a settle takes milliseconds.
MONEY_TASK: Final[dict[str, Any]] = {
    **_RETRY,
    "durable": True,  # kept in the outbox until done (credits.tasks.outbox)
    "max_retries": MONEY_RETRIES_MAX,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "soft_time_limit": _settings.money_soft_time_limit_s,
    "time_limit": _settings.money_time_limit_s,
}

# The sweep and the reconcile are periodic: acknowledged on receipt, so a long
# reconcile is never redelivered half-way; a run lost with its worker is done
# by the next tick. Time limits in seconds.
SWEEP_TASK: Final[dict[str, Any]] = {
    **_RETRY,
    "max_retries": UPKEEP_RETRIES_MAX,
    "acks_late": False,
    "soft_time_limit": 5 * 60,
    "time_limit": 6 * 60,
}
RECONCILE_TASK: Final[dict[str, Any]] = {
    **_RETRY,
    "max_retries": UPKEEP_RETRIES_MAX,
    "acks_late": False,
    "soft_time_limit": 50 * 60,
    "time_limit": 55 * 60,
}

# Archiving is periodic too, and safe to stop anywhere (copy, then trim, per batch):
# acknowledged on receipt, and a run cut short is finished by the next one.
ARCHIVE_TASK: Final[dict[str, Any]] = {
    **_RETRY,
    "max_retries": UPKEEP_RETRIES_MAX,
    "acks_late": False,
    "soft_time_limit": 50 * 60,
    "time_limit": 55 * 60,
}

RECONCILE_LOG_EVERY_USERS: Final = 10_000


def _price_usage(reservation_id: str, usage: float) -> tuple[int, dict[str, Any]]:
    """Credits for ``usage`` units of the hold's own action, and a note for the log.

    Priced by the app's configured pricing (``CREDITS_PRICING``), the same rules
    the app itself uses. The engine refuses a usage that is not a finite number
    >= 0 (``PricingConfigError``).
    """
    client = ledger()
    pricing = client.options.pricing
    action = client.get_reservation(reservation_id).action
    cost = pricing.calculate_cost(action, usage)
    return cost, {"usage": usage, "usage_unit": pricing.unit(action)}


@app.task(name="credits.tasks.settle_reservation", **MONEY_TASK)
def settle_reservation(
    reservation_id: str,
    actual_amount: int | None = None,
    usage: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Charge a held job its actual cost, once; what a completion webhook enqueues.

    Pass exactly one of ``actual_amount`` (credits) or ``usage`` (units of the
    hold's action: seconds of video, GPU hours of training), priced by the
    :class:`~credits.pricing.PricingEngine`. Safe to deliver any number of
    times: every delivery returns the first settlement.

    Returns the :class:`~credits.models.Settlement` as a JSON dict. Raises
    ``ReservationNotFoundError``, ``ReservationClosedError`` (a released
    hold), ``InvalidInputError`` or ``PricingConfigError``, unretried; a hold
    that expired first is settled late (``late=True``).
    """
    if usage is not None and actual_amount is None:
        amount, note = _price_usage(reservation_id, usage)
    elif actual_amount is not None and usage is None:
        amount, note = actual_amount, {}
    else:
        raise InvalidInputError("pass exactly one of actual_amount or usage")
    merged = {**note, **metadata} if metadata else (note or None)
    settlement = ledger().settle(reservation_id, amount, merged)
    logger.info(
        "settled %s: charged %d, released %d, shortfall %d",
        reservation_id,
        settlement.charged,
        settlement.released,
        settlement.shortfall,
    )
    return settlement.model_dump(mode="json")


@app.task(name="credits.tasks.release_reservation", **MONEY_TASK)
def release_reservation(reservation_id: str, reason: str | None = None) -> dict[str, Any]:
    """Close a hold without charging (the job failed or was cancelled); safe to repeat.

    Returns the :class:`~credits.models.Settlement` (``charged == 0``) as a JSON dict.
    """
    settlement = ledger().release(reservation_id, reason)
    logger.info("released %s: %d back", reservation_id, settlement.released)
    return settlement.model_dump(mode="json")


@app.task(name="credits.tasks.expire_reservations", **SWEEP_TASK)
def expire_reservations() -> dict[str, int]:
    """Close every hold past its expiry, returning its credits; run by beat.

    Returns ``{"expired": n}``.
    """
    expired = ledger().expire_reservations()
    if expired:
        logger.info("expired %d holds", expired)
    return {"expired": expired}


@app.task(name="credits.tasks.expire_lots", **SWEEP_TASK)
def expire_lots() -> dict[str, int]:
    """Start and expire every lot that is due, for users who never come back; run by beat.

    A user's own calls apply their lots' transitions first anyway, so this is
    for balances nobody reads. Returns ``{"expired": n}``: transitions applied.
    """
    applied = ledger().expire_lots()
    if applied:
        logger.info("applied %d lot starts and expiries", applied)
    return {"expired": applied}


@app.task(name="credits.tasks.renew_allowances", **SWEEP_TASK)
def renew_allowances() -> dict[str, int]:
    """Grant every allowance period that has begun, for users who never come back; run by beat.

    A user's own next call grants it too, whichever comes first, once per period.
    Returns ``{"renewed": n}``: renewals and lot transitions applied.
    """
    applied = ledger().renew_allowances()
    if applied:
        logger.info("applied %d allowance renewals and lot transitions", applied)
    return {"renewed": applied}


def _log_progress(checked: int, total: int) -> None:
    if checked % RECONCILE_LOG_EVERY_USERS == 0:
        logger.info("reconcile: %d of %d users checked", checked, total)


@app.task(name="credits.tasks.reconcile_balances", **RECONCILE_TASK)
def reconcile_balances(fix: bool = False, full: bool = False) -> dict[str, int]:
    """Verify every user's cached balance against the log; with ``fix``, rebuild those that differ.

    Incremental: each user from its last verified checkpoint, so an hourly run
    costs what was written since the last one; ``full`` replays every whole log.
    Returns ``{"checked": n, "invalid": n, "fixed": n}``.
    """
    report = ledger().reconcile(fix=bool(fix), progress=_log_progress, full=bool(full))
    if report.invalid:
        logger.warning(
            "reconcile: %d of %d users differed from their log (%d fixed); first: %s",
            report.invalid,
            report.checked,
            report.fixed,
            report.invalid_users[:10],
        )
    return report.summary()


@app.task(name="credits.tasks.archive_events", **ARCHIVE_TASK)
def archive_events(hot_days: int | None = None, users: list[str] | None = None) -> dict[str, int]:
    """Copy events older than ``CREDITS_HOT_DAYS`` to the archive, then trim them from Redis.

    Run by beat. Without ``CREDITS_ARCHIVE_URL`` there is nowhere to archive
    to: the run does nothing (and says so once in the log). An archive that is
    down raises ``ArchiveUnavailableError`` (retried a few times, then the next
    tick): nothing was trimmed, and the hot ledger never waits for it.
    ``users`` limits the run to those users (an operator's "archive them now").
    Returns ``{"users": n, "events": n, "unverified": n}``.
    """
    client = ledger()
    if client.archive is None:
        logger.info("archive_events: no CREDITS_ARCHIVE_URL configured; nothing to do")
        return {"users": 0, "events": 0, "unverified": 0}
    report = client.archive_events(hot_days=hot_days, users=users)
    if report.events_archived:
        logger.info(
            "archived %d events of %d users (older than %d ms)",
            report.events_archived,
            report.users_archived,
            report.cutoff_ms,
        )
    if report.unverified:
        logger.warning(
            "archive: %d users left alone, their cache differs from their log: %s",
            len(report.unverified),
            report.unverified[:10],
        )
    return report.summary()
