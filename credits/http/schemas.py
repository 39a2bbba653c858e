"""Request and response bodies of the JSON API, the source of its OpenAPI schema.

Why the bounds are repeated here: the ledger checks every input anyway (and
answers 422 for what slips past), but a bound in the schema lets a generated
TypeScript client and the fuzzer know it. They come from
:mod:`credits.limits`, so the two cannot disagree. Integers are strict: JSON
``10.5`` or ``"10"`` is not an amount. Results are the ledger's own models
(``TxResult``, ``Reservation``, ``Settlement``, ``Transaction``, and the plans'
``Allowance``, ``SpendLimit``, ``Alert``, ``AutoTopup``, ``TopupConfirmation``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from credits import limits
from credits.models import Lot, Transaction
from credits.plans.allowances import ALLOWANCE_PRIORITY_DEFAULT

Amount = Annotated[int, Field(strict=True, ge=1, le=limits.AMOUNT_MAX, description="credits")]
Action = Annotated[str, Field(min_length=1, max_length=limits.ACTION_CHARS_MAX)]
Metadata = Annotated[
    dict[str, Any] | None,
    Field(description=f"a JSON object, at most {limits.METADATA_BYTES_MAX} bytes encoded"),
]
TtlSeconds = Annotated[
    int,
    Field(
        strict=True,
        ge=limits.HOLD_TTL_MS_MIN // 1000,
        le=limits.HOLD_TTL_MS_MAX // 1000,
        description="whole seconds",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitializeBody(_Body):
    credits: Annotated[
        int | None,
        Field(strict=True, ge=0, le=limits.AMOUNT_MAX, description="default: the server's"),
    ] = None
    metadata: Metadata = None


class MoveBody(_Body):
    """A deduct or an add."""

    amount: Amount
    action: Action
    metadata: Metadata = None


class AddBody(MoveBody):
    """An add: a new lot, with its terms (all optional; see the lot fields of ``Lot``)."""

    expires_at: Annotated[
        int | None, Field(strict=True, ge=0, le=limits.AMOUNT_MAX, description="Unix ms")
    ] = None
    expires_in: Annotated[
        int | None,
        Field(strict=True, ge=1, le=limits.LOT_TERM_MS_MAX // 1000, description="seconds"),
    ] = None
    effective_at: Annotated[
        int | None, Field(strict=True, ge=0, le=limits.AMOUNT_MAX, description="Unix ms")
    ] = None
    priority: Annotated[
        int, Field(strict=True, ge=limits.LOT_PRIORITY_MIN, le=limits.LOT_PRIORITY_MAX)
    ] = limits.LOT_PRIORITY_DEFAULT
    category: Literal["paid", "promotional", "refund"] = "paid"
    scope: Annotated[
        list[Action] | None,
        Field(min_length=1, max_length=limits.LOT_SCOPE_ACTIONS_MAX, description="actions"),
    ] = None


class ReserveBody(_Body):
    amount: Amount
    action: Action
    ttl: TtlSeconds
    metadata: Metadata = None


class SettleBody(_Body):
    actual_amount: Annotated[
        int, Field(strict=True, ge=0, le=limits.AMOUNT_MAX, description="credits; 0 is allowed")
    ]
    metadata: Metadata = None


class ReleaseBody(_Body):
    reason: Annotated[str | None, Field(max_length=limits.REASON_CHARS_MAX)] = None


class ExtendBody(_Body):
    ttl: TtlSeconds


class UserView(BaseModel):
    """A user's account as the API shows it."""

    model_config = ConfigDict(frozen=True)

    user_id: str
    balance: int = Field(ge=0, description="spendable credits")
    held: int = Field(ge=0, description="credits locked by open holds")
    created_at: int | None = Field(description="Unix ms; null for a user never seen")
    lots: list[Lot] = Field(description="active lots in drawdown order, then finished ones")


class TransactionPage(BaseModel):
    """A page of transactions, newest first; ``next_before`` pages back (null: no more)."""

    model_config = ConfigDict(frozen=True)

    data: list[Transaction]
    has_more: bool
    next_before: str | None = Field(description="pass as `before` for the next (older) page")


class Health(BaseModel):
    status: str
    store: str


# --------------------------------------------------------------------------- plans

PlanName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=limits.PLAN_NAME_CHARS_MAX,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="ASCII letters, digits and _-.:",
    ),
]
Scope = Annotated[
    list[Action] | None,
    Field(
        min_length=1,
        max_length=limits.LOT_SCOPE_ACTIONS_MAX,
        description="the actions it applies to; null: all",
    ),
]


class AllowanceBody(_Body):
    """An allowance's terms (``PUT`` sets them whole; see ``Credits.set_allowance``)."""

    amount: Amount
    every: Literal["day", "week", "month", "year"]
    anchor: Annotated[
        int | None,
        Field(
            strict=True,
            ge=0,
            le=limits.ALLOWANCE_ANCHOR_MS_MAX,
            description="Unix ms the periods count from; default: now",
        ),
    ] = None
    rollover_max: Annotated[
        int, Field(strict=True, ge=0, le=limits.AMOUNT_MAX, description="credits carried over")
    ] = 0
    priority: Annotated[
        int, Field(strict=True, ge=limits.LOT_PRIORITY_MIN, le=limits.LOT_PRIORITY_MAX)
    ] = ALLOWANCE_PRIORITY_DEFAULT
    scope: Scope = None
    effective: Literal["next_period", "now"] = "next_period"


class LimitBody(_Body):
    """A spend limit's terms: at most ``amount`` per UTC ``every``."""

    amount: Amount
    every: Literal["hour", "day", "week", "month"]
    scope: Scope = None


class AlertBody(_Body):
    below: Annotated[
        int, Field(strict=True, ge=1, le=limits.AMOUNT_MAX, description="the balance threshold")
    ]


class AutoTopupBody(_Body):
    """Exactly one of ``amount`` (credits to add) or ``target`` (the balance to reach)."""

    below: Annotated[
        int, Field(strict=True, ge=1, le=limits.AMOUNT_MAX, description="the balance threshold")
    ]
    amount: Annotated[
        int | None, Field(strict=True, ge=1, le=limits.AMOUNT_MAX, description="credits to add")
    ] = None
    target: Annotated[
        int | None,
        Field(strict=True, ge=1, le=limits.AMOUNT_MAX, description="the balance to reach"),
    ] = None
    max_per_month: Annotated[
        int | None,
        Field(
            strict=True,
            ge=1,
            le=limits.TOPUP_MONTHLY_MAX,
            description="requests per UTC month; null: no cap",
        ),
    ] = None


class ConfirmTopupBody(_Body):
    """The app's answer to a ``topup.requested`` event."""

    paid: Annotated[bool, Field(strict=True, description="whether the payment went through")]
    amount: Annotated[
        int | None,
        Field(
            strict=True,
            ge=1,
            le=limits.AMOUNT_MAX,
            description="credits to grant; default: the requested amount",
        ),
    ] = None
