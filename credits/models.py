"""Frozen pydantic models: what the ledger hands back to callers.

They are frozen because a result describes something that already happened in
the log. Credit fields carry ``ge=0`` so an impossible negative from the store
fails loudly here too (a pair assertion with the checks in Lua).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TxType = Literal[
    "initialize", "deduct", "add", "reserve", "settle", "release", "expire",
    "lot_start", "lot_expire", "lot_void", "allowance", "rollover",
]  # fmt: skip
ReservationStatus = Literal["open", "settled", "released", "expired"]
LotCategory = Literal["paid", "promotional", "refund", "allowance", "rollover"]
LotStatus = Literal["pending", "active", "exhausted", "expired", "voided"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TxResult(_Frozen):
    """The outcome of a write: which log event it made and the balance after it."""

    tx_id: str
    balance: int = Field(ge=0)
    timestamp: int = Field(description="Unix ms of the event")
    lot_id: str | None = Field(default=None, description="the lot this write created, if any")


class Transaction(_Frozen):
    """One immutable event of a user's log."""

    tx_id: str
    user_id: str
    type: TxType
    amount: int = Field(ge=0, description="positive magnitude of the event")
    balance_delta: int
    held_delta: int
    balance_after: int = Field(ge=0)
    action: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: int = Field(description="Unix ms")
    reservation_id: str | None = None
    shortfall: int = Field(default=0, ge=0, description="settle: credits owed but not covered")
    late: bool = Field(default=False, description="settle: arrived after the hold expired")
    lots: dict[str, int] = Field(
        default_factory=dict, description="the balance delta each lot took in this event"
    )
    forfeited: int = Field(
        default=0,
        ge=0,
        description="credits that left the balance because their lot had expired or been voided",
    )


class Account(_Frozen):
    user_id: str
    balance: int = Field(ge=0)
    held: int = Field(ge=0)
    created_at: int | None = Field(description="Unix ms; None for a user never seen")


class BalanceVerification(_Frozen):
    """The cached balance against the sum of the log, at one consistent point.

    ``difference`` is ``cached - calculated``, the seed's sign.
    """

    valid: bool
    cached: int
    calculated: int
    difference: int
    held_cached: int = 0
    held_calculated: int = 0
    events: int = Field(
        default=0, ge=0, description="events in the log up to the verified end, archived included"
    )
    events_read: int = Field(
        default=0, ge=0, description="events this verification read (after its checkpoint)"
    )
    problems: list[str] = Field(
        default_factory=list, description="what differs, in words; empty when valid"
    )
    checkpoint: str | None = Field(
        default=None, description="the verified checkpoint the replay started from; None: the start"
    )
    full: bool = Field(default=False, description="replayed from the log's first event")


class AccountAt(_Frozen):
    """A user's balance and held right after the last event stamped at or before ``at``."""

    user_id: str
    at: int = Field(description="Unix ms asked for")
    balance: int = Field(ge=0)
    held: int = Field(ge=0)
    tx_id: str | None = Field(description="that event; None before the user's first event")
    lots: dict[str, int] | None = Field(
        default=None,
        description="with lots=True: each active lot's remaining credits then (lot id -> credits)",
    )


class Reservation(_Frozen):
    id: str
    user_id: str
    amount: int = Field(ge=1)
    action: str
    status: ReservationStatus
    created_at: int = Field(description="Unix ms")
    expires_at: int = Field(description="Unix ms")
    metadata: dict[str, Any] = Field(default_factory=dict)
    closed_at: int | None = None
    tx_id: str = Field(description="the reserve event in the user's log")
    lots: dict[str, int] = Field(default_factory=dict, description="the credits each lot holds")


class Settlement(_Frozen):
    """How a hold closed: what was charged, what came back, what was owed."""

    tx_id: str
    reservation_id: str
    charged: int = Field(ge=0)
    released: int = Field(ge=0)
    shortfall: int = Field(ge=0)
    balance: int = Field(ge=0)
    late: bool = False
    forfeited: int = Field(
        default=0, ge=0, description="held credits whose lot had expired or been voided: gone"
    )


class Lot(_Frozen):
    """One grant of credits with its own terms, and what is left of it."""

    id: str
    user_id: str
    category: LotCategory
    priority: int = Field(ge=0, le=100)
    amount: int = Field(ge=0, description="granted")
    remaining: int = Field(
        ge=0, description="not yet spent, held, expired or voided (a pending lot's is its amount)"
    )
    held: int = Field(ge=0, description="held by open holds")
    effective_at: int = Field(description="Unix ms")
    expires_at: int | None = Field(description="Unix ms; None: never")
    scope: list[str] | None = Field(description="the actions it alone may pay for; None: all")
    status: LotStatus
    action: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: int = Field(description="Unix ms")


@dataclass(frozen=True, slots=True)
class BulkItem:
    """One credit or debit of a bulk call (``add_many`` / ``deduct_many``).

    A plain dataclass, not a model: it is input, and is checked by the same
    validation as a single call, raising :class:`InvalidInputError`.
    """

    user_id: str
    amount: int
    action: str
    metadata: dict[str, Any] | None = None
    idempotency_key: str | None = None


__all__ = [
    "Account",
    "AccountAt",
    "Alert",
    "Allowance",
    "AutoTopup",
    "BalanceVerification",
    "BulkItem",
    "Lot",
    "LotCategory",
    "LotStatus",
    "Reservation",
    "ReservationStatus",
    "Settlement",
    "SpendLimit",
    "TopupConfirmation",
    "Transaction",
    "TxResult",
    "TxType",
]


# ---------------------------------------------------------------- events out


class LedgerEvent(_Frozen):
    """Something that happened to a user's account, for apps (polling or webhooks).

    Written by the same script as the change it reports, so it exists exactly
    when the change does. ``id`` is stable: polling, every webhook delivery and
    every retry carry the same one (receivers dedupe on it).
    """

    id: str = Field(description="evt_<bucket>_<outbox stream id>")
    type: str = Field(description="e.g. reservation.expired, settlement.shortfall")
    created_at: int = Field(description="Unix ms, the ledger's time of the change")
    user_id: str
    data: dict[str, Any] = Field(default_factory=dict)


class EventPage(list[LedgerEvent]):
    """A page of :meth:`~credits.Credits.read_events`: the events, and where to go on.

    A plain list of :class:`LedgerEvent` (oldest first per user) with
    ``cursor``: pass it as ``after=`` to read what comes next. The cursor is
    opaque; it never skips an event (docs/CONTRACT.md, "Events out").
    """

    cursor: str

    def __init__(self, events: list[LedgerEvent], cursor: str) -> None:
        super().__init__(events)
        self.cursor = cursor


class WebhookEndpoint(_Frozen):
    """A URL that receives the ledger's events, signed with its secret.

    ``events`` None receives every type; otherwise the types (or ``prefix.*``)
    listed. ``secret`` (``whsec_...``) is what the receiver verifies the
    Standard Webhooks signature with; it is left out of ``repr()``.
    """

    id: str = Field(description="we_<16 hex>")
    url: str
    events: list[str] | None = None
    secret: str = Field(repr=False)
    created_at: int = Field(description="Unix ms; events written from then on are delivered")


# ---------------------------------------------------------------- plans

Every = Literal["day", "week", "month", "year"]
Window = Literal["hour", "day", "week", "month"]


class Allowance(_Frozen):
    """Credits granted again every period, as one ``allowance`` lot per period.

    ``period_start`` / ``period_end`` are the period granted last (None before the
    first one, when ``anchor`` is still ahead). ``next_change`` is set when a change
    made with ``effective="next_period"`` waits for the period to end.
    """

    name: str
    user_id: str
    amount: int = Field(ge=1)
    every: Every
    anchor: int = Field(ge=0, description="Unix ms the periods count from")
    rollover_max: int = Field(ge=0)
    priority: int = Field(ge=0, le=100)
    scope: list[str] | None = None
    period_start: int | None = None
    period_end: int | None = None
    granted: int = Field(default=0, ge=0, description="credits granted for the current period")
    next_change: dict[str, Any] | None = None


class SpendLimit(_Frozen):
    """At most ``amount`` credits charged or held per calendar window by the actions in scope."""

    name: str
    user_id: str
    amount: int = Field(ge=1)
    every: Window
    scope: list[str] | None = None
    used: int = Field(ge=0, description="counted in the current window")
    window_start: int = Field(description="Unix ms")
    window_end: int = Field(description="Unix ms")


class Alert(_Frozen):
    """A balance threshold: ``balance.below`` once per crossing down, ``balance.recovered`` up."""

    name: str
    user_id: str
    below: int = Field(ge=1)
    triggered: bool = Field(default=False, description="the balance is below it now")


class AutoTopup(_Frozen):
    """Asks the app to charge the user (``topup.requested``) when the balance falls below."""

    user_id: str
    below: int = Field(ge=1)
    amount: int | None = Field(default=None, ge=1)
    target: int | None = Field(default=None, ge=1)
    max_per_month: int | None = Field(default=None, ge=1)
    enabled: bool = True
    open_topup_id: str | None = Field(default=None, description="the request awaiting confirm")
    open_amount: int | None = None
    failures: int = Field(default=0, ge=0, description="failed payments in a row")
    requested_this_month: int = Field(default=0, ge=0)


class TopupConfirmation(_Frozen):
    """What ``confirm_topup`` did (the first confirmation's result, for every repeat)."""

    topup_id: str
    paid: bool
    amount: int = Field(ge=0)
    balance: int = Field(ge=0)
    tx_id: str | None = None
    lot_id: str | None = None
    timestamp: int | None = None
