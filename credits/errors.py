"""The one error tree of credits.

Every failure a caller can see derives from :class:`CreditsError`, so an app can
catch the whole family in one place. Errors carry data (``required``,
``available``, ``reservation_id``) and not just prose, because webhook handlers
and HTTP layers branch on them. This module imports nothing from ``credits``.
"""

from __future__ import annotations


class CreditsError(Exception):
    """Base of every error raised by credits."""


class InvalidInputError(CreditsError, ValueError):
    """Bad input, refused before anything was written."""


class InsufficientCreditsError(CreditsError):
    """The balance does not cover the amount; nothing was written."""

    def __init__(self, required: int, available: int) -> None:
        # args are the constructor's, so pickle and Celery's JSON result backend
        # (which rebuilds ``type(*args)``) give back the same error with its data.
        super().__init__(required, available)
        self.required = required
        self.available = available

    def __str__(self) -> str:
        return f"insufficient credits: required {self.required}, available {self.available}"


class TransactionError(CreditsError):
    """The store failed or refused the operation; nothing was applied."""


class StoreUnavailableError(TransactionError):
    """Redis could not be reached or failed mid-call.

    A write interrupted this way may or may not have taken effect: repeat it with
    the same idempotency key (or reservation id) to learn which, exactly once.
    Tasks retry on this error and on nothing else.
    """


class BalanceVerificationError(CreditsError):
    """A balance could not be verified against its log."""


class PricingConfigError(CreditsError):
    """An unknown action, or a value the pricing rules cannot price."""


class IdempotencyConflictError(CreditsError):
    """The idempotency key was used before with different parameters; nothing was written."""

    def __init__(self, idempotency_key: str) -> None:
        super().__init__(idempotency_key)
        self.idempotency_key = idempotency_key

    def __str__(self) -> str:
        return (
            f"idempotency key {self.idempotency_key!r} was already used with different parameters"
        )


class ReservationNotFoundError(CreditsError):
    """No reservation has this id (never made, or its record has aged out)."""

    def __init__(self, reservation_id: str) -> None:
        super().__init__(reservation_id)
        self.reservation_id = reservation_id

    def __str__(self) -> str:
        return f"reservation {self.reservation_id!r} not found"


class ReservationClosedError(CreditsError):
    """The reservation is closed in a way that forbids this operation."""

    def __init__(self, reservation_id: str, status: str, operation: str) -> None:
        super().__init__(reservation_id, status, operation)
        self.reservation_id = reservation_id
        self.status = status
        self.operation = operation

    def __str__(self) -> str:
        return f"cannot {self.operation} reservation {self.reservation_id!r}: it is {self.status}"


__all__ = [
    "BalanceVerificationError",
    "CreditsError",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "PricingConfigError",
    "ReservationClosedError",
    "ReservationNotFoundError",
    "StoreUnavailableError",
    "TransactionError",
]
