"""credits: a credits ledger for metered AI apps, on Redis.

Fixed-price actions are deducted at once; metered jobs reserve an estimate and
are settled at their actual cost when the provider's webhook arrives. Every
change is an event in a per-user log that the cached balance can be proved
against.
"""

# Clients
from credits.aio import AsyncCredits
from credits.client import Credits

# Errors (also in credits.errors)
from credits.errors import (
    ArchiveUnavailableError,
    BalanceVerificationError,
    CreditsError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    InvalidInputError,
    LimitExceededError,
    LotClosedError,
    LotNotFoundError,
    PricingConfigError,
    RefusedError,
    ReservationClosedError,
    ReservationNotFoundError,
    StoreRefusedError,
    StoreUnavailableError,
    TopupNotFoundError,
    TransactionError,
)

# Models
from credits.models import (
    Account,
    AccountAt,
    Alert,
    Allowance,
    AutoTopup,
    BalanceVerification,
    BulkItem,
    EventPage,
    LedgerEvent,
    Lot,
    Reservation,
    Settlement,
    SpendLimit,
    TopupConfirmation,
    Transaction,
    TxResult,
    WebhookEndpoint,
)

# Pricing
from credits.pricing import FIXED_PRICING, PRICING_CONFIG, PricingEngine, PricingRule

__all__ = [
    "FIXED_PRICING",
    "PRICING_CONFIG",
    "Account",
    "AccountAt",
    "Alert",
    "Allowance",
    "ArchiveUnavailableError",
    "AsyncCredits",
    "AutoTopup",
    "BalanceVerification",
    "BalanceVerificationError",
    "BulkItem",
    "Credits",
    "CreditsError",
    "EventPage",
    "IdempotencyConflictError",
    "InsufficientCreditsError",
    "InvalidInputError",
    "LedgerEvent",
    "LimitExceededError",
    "Lot",
    "LotClosedError",
    "LotNotFoundError",
    "PricingConfigError",
    "PricingEngine",
    "PricingRule",
    "RefusedError",
    "Reservation",
    "ReservationClosedError",
    "ReservationNotFoundError",
    "Settlement",
    "SpendLimit",
    "StoreRefusedError",
    "StoreUnavailableError",
    "TopupConfirmation",
    "TopupNotFoundError",
    "Transaction",
    "TransactionError",
    "TxResult",
    "WebhookEndpoint",
]
