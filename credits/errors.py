"""The one error tree of credits.

Every failure a caller can see derives from :class:`CreditsError`, and every
error answers the question a payments caller asks first: *did it happen?*

* ``outcome_known = True``: nothing was applied. Bad input
  (:class:`InvalidInputError`), a refusal of the ledger's rules
  (:class:`RefusedError` and its children), a store that refused the call
  (:class:`StoreRefusedError`). Repeating the same call gets the same answer.
* ``outcome_known = False``: :class:`StoreUnavailableError` alone. Redis could
  not be reached or failed mid-call, so a write may or may not have landed;
  repeat it with the same idempotency key (or reservation id) to learn which,
  exactly once.

Errors carry data (``required``, ``available``, ``reservation_id``) and not
just prose, because webhook handlers and HTTP layers branch on them; their
``args`` are their constructor's, so pickle and Celery's JSON result backend
give back the same error with its data. This module imports nothing from
``credits``.

    CreditsError
    ├── InvalidInputError (also a ValueError)
    ├── RefusedError
    │   ├── InsufficientCreditsError
    │   ├── LimitExceededError
    │   ├── IdempotencyConflictError
    │   ├── ReservationClosedError
    │   ├── ReservationNotFoundError
    │   ├── LotNotFoundError
    │   ├── LotClosedError
    │   └── TopupNotFoundError
    ├── PricingConfigError
    ├── BalanceVerificationError
    └── TransactionError                the store failed
        ├── StoreRefusedError           ... and refused: nothing applied
        └── StoreUnavailableError       ... mid-call: outcome unknown
"""

from __future__ import annotations

from typing import ClassVar


class CreditsError(Exception):
    """Base of every error raised by credits."""

    outcome_known: ClassVar[bool] = True
    """True when nothing was applied; False when a write may have landed (repeat with its key)."""


class InvalidInputError(CreditsError, ValueError):
    """Bad input, refused before anything was written."""


class RefusedError(CreditsError):
    """The ledger's rules refused the operation; nothing was written."""


class InsufficientCreditsError(RefusedError):
    """The spendable balance does not cover the amount; nothing was written.

    ``available`` is what the refused action could spend (with lots, over the
    lots that apply to it).
    """

    def __init__(self, required: int, available: int) -> None:
        super().__init__(required, available)
        self.required = required
        self.available = available

    def __str__(self) -> str:
        return f"insufficient credits: required {self.required}, available {self.available}"


class LimitExceededError(RefusedError):
    """A bound of the ledger or a spend limit would be passed; nothing was written.

    ``limit`` names it (a spend limit's name, or ``open_holds``, ``balance_total``,
    ``active_lots`` for the ledger's own bounds), ``amount`` is its bound,
    ``used`` what counts against it now and ``requested`` what the call asked for.
    """

    def __init__(self, limit: str, amount: int, used: int, requested: int) -> None:
        super().__init__(limit, amount, used, requested)
        self.limit = limit
        self.amount = amount
        self.used = used
        self.requested = requested

    def __str__(self) -> str:
        return (
            f"limit {self.limit!r} exceeded: {self.used} used of {self.amount}, "
            f"{self.requested} requested"
        )


class IdempotencyConflictError(RefusedError):
    """The idempotency key was used before with different parameters; nothing was written."""

    def __init__(self, idempotency_key: str) -> None:
        super().__init__(idempotency_key)
        self.idempotency_key = idempotency_key

    def __str__(self) -> str:
        return (
            f"idempotency key {self.idempotency_key!r} was already used with different parameters"
        )


class ReservationNotFoundError(RefusedError):
    """No reservation has this id (never made, or its record has aged out)."""

    def __init__(self, reservation_id: str) -> None:
        super().__init__(reservation_id)
        self.reservation_id = reservation_id

    def __str__(self) -> str:
        return f"reservation {self.reservation_id!r} not found"


class ReservationClosedError(RefusedError):
    """The reservation is closed in a way that forbids this operation."""

    def __init__(self, reservation_id: str, status: str, operation: str) -> None:
        super().__init__(reservation_id, status, operation)
        self.reservation_id = reservation_id
        self.status = status
        self.operation = operation

    def __str__(self) -> str:
        return f"cannot {self.operation} reservation {self.reservation_id!r}: it is {self.status}"


class LotNotFoundError(RefusedError):
    """No lot has this id (never made, or its record has aged out)."""

    def __init__(self, lot_id: str) -> None:
        super().__init__(lot_id)
        self.lot_id = lot_id

    def __str__(self) -> str:
        return f"lot {self.lot_id!r} not found"


class LotClosedError(RefusedError):
    """The lot is finished (exhausted or expired) and has nothing left to void."""

    def __init__(self, lot_id: str, status: str) -> None:
        super().__init__(lot_id, status)
        self.lot_id = lot_id
        self.status = status

    def __str__(self) -> str:
        return f"lot {self.lot_id!r} is {self.status}: nothing is left to void"


class TopupNotFoundError(RefusedError):
    """No open auto top-up request has this id (never made, closed long ago, or not the
    user's open one); nothing was written."""

    def __init__(self, topup_id: str) -> None:
        super().__init__(topup_id)
        self.topup_id = topup_id

    def __str__(self) -> str:
        return f"top-up request {self.topup_id!r} not found"


class PricingConfigError(CreditsError):
    """An unknown action, or a value the pricing rules cannot price."""


class BalanceVerificationError(CreditsError):
    """A user's log or account cannot be trusted as it is; nothing was changed.

    Raised when a rebuild finds a log that sums to an impossible state, and when
    an operation finds an account whose log exists but whose cached state is
    gone (``rebuild_balance`` restores it).
    """


class TransactionError(CreditsError):
    """The store failed; the child says whether anything was applied.

    Code that catches this catches both children: check
    :attr:`~CreditsError.outcome_known` (or catch :class:`StoreUnavailableError`
    first) before deciding what to do.
    """


class StoreRefusedError(TransactionError):
    """The store answered but refused the call (a script error, a denied command).

    Nothing was applied.
    """


class StoreUnavailableError(TransactionError):
    """Redis could not be reached or failed mid-call: the outcome is unknown.

    A write interrupted this way may or may not have taken effect: repeat it with
    the same idempotency key (or reservation id) to learn which, exactly once.
    Tasks retry on this error and on nothing else.
    """

    outcome_known: ClassVar[bool] = False


class ArchiveUnavailableError(StoreUnavailableError):
    """The archive tier could not be reached, or none is configured, when a call needed it.

    The hot ledger in Redis is unaffected: moves of credits never touch the
    archive. Reads that reach into archived history and the archiver itself
    raise this; repeat them once the archive (``CREDITS_ARCHIVE_URL``) answers.
    Nothing is trimmed from Redis that the archive has not committed.
    """


__all__ = [
    "ArchiveUnavailableError",
    "BalanceVerificationError",
    "CreditsError",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "LimitExceededError",
    "LotClosedError",
    "LotNotFoundError",
    "PricingConfigError",
    "RefusedError",
    "ReservationClosedError",
    "ReservationNotFoundError",
    "StoreRefusedError",
    "StoreUnavailableError",
    "TopupNotFoundError",
    "TransactionError",
]
