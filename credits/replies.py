"""The one Lua→Python reply protocol: every status word, mapped once.

Every script answers ``{status, value...}``. A success status (``ok``, or
``replay`` / ``again`` for a repeated call that returns the first result) hands
its values to the operation's parser; every refusal status maps here to the
typed error it stands for, with the data the caller needs; any other reply is a
:class:`~credits.errors.StoreRefusedError` (a script this client does not
know, or damaged data), never a crash in parsing.

``tests/test_replies.py`` reads every ``credits/lua/*.lua`` and fails if a
script can answer a status word that is not in :data:`STATUSES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from credits import limits
from credits.errors import (
    BalanceVerificationError,
    CreditsError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    InvalidInputError,
    LimitExceededError,
    LotClosedError,
    LotNotFoundError,
    ReservationClosedError,
    ReservationNotFoundError,
    StoreRefusedError,
    TopupNotFoundError,
)

Reply = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Context:
    """What an error needs that the script does not send back."""

    operation: str
    subject: str = ""  # the user id, or the reservation id for hold operations
    amount: int = 0
    idempotency_key: str | None = None


# A first application, and a repeat that returns the first result.
SUCCESS: Final = frozenset({"ok", "replay", "again"})
# Statuses a multi-step operation answers itself by calling again (never an error):
# "upkeep", the user's upkeep was due (credits.protocol.run_script runs it, then
# calls again).
CONTINUE: Final = frozenset({"upkeep"})


def _insufficient(ctx: Context, reply: Reply) -> CreditsError:
    return InsufficientCreditsError(required=ctx.amount, available=int(reply[1]))


def _conflict(ctx: Context, reply: Reply) -> CreditsError:
    return IdempotencyConflictError(ctx.idempotency_key or "")


def _overflow(ctx: Context, reply: Reply) -> CreditsError:
    return LimitExceededError(
        "balance_total", limits.USER_TOTAL_MAX, used=int(reply[1]), requested=ctx.amount
    )


def _too_many_holds(ctx: Context, reply: Reply) -> CreditsError:
    return LimitExceededError(
        "open_holds", limits.OPEN_HOLDS_PER_USER_MAX, used=int(reply[1]), requested=1
    )


def _too_many_lots(ctx: Context, reply: Reply) -> CreditsError:
    return LimitExceededError(
        "active_lots", limits.LOTS_ACTIVE_PER_USER_MAX, used=int(reply[1]), requested=1
    )


def _invalid(ctx: Context, reply: Reply) -> CreditsError:
    """Input only the server can judge (it needs the server's clock): nothing was written."""
    return InvalidInputError(str(reply[1]))


def _lot_not_found(ctx: Context, reply: Reply) -> CreditsError:
    return LotNotFoundError(ctx.subject)


def _lot_closed(ctx: Context, reply: Reply) -> CreditsError:
    return LotClosedError(ctx.subject, str(reply[1]))


def _not_found(ctx: Context, reply: Reply) -> CreditsError:
    return ReservationNotFoundError(ctx.subject)


def _closed(ctx: Context, reply: Reply) -> CreditsError:
    return ReservationClosedError(ctx.subject, str(reply[1]), ctx.operation)


def _damaged(ctx: Context, reply: Reply) -> CreditsError:
    return BalanceVerificationError(
        f"the account of {ctx.subject!r} is missing while its log exists; nothing was "
        "decided on it: run rebuild_balance (or reconcile --fix) to restore it from the log"
    )


def _impossible(ctx: Context, reply: Reply) -> CreditsError:
    return BalanceVerificationError(
        f"the log of {ctx.subject!r} sums to balance {reply[1]}, held {reply[2]}: "
        "impossible, so nothing was rebuilt"
    )


def _too_many_endpoints(ctx: Context, reply: Reply) -> CreditsError:
    return LimitExceededError(
        "webhook_endpoints", limits.WEBHOOK_ENDPOINTS_MAX, used=int(reply[1]), requested=1
    )


def _limit_exceeded(ctx: Context, reply: Reply) -> CreditsError:
    """A spend limit: its name, its amount and what its window has used."""
    return LimitExceededError(
        str(reply[1]), int(reply[2]), used=int(reply[3]), requested=ctx.amount
    )


_PLAN_BOUNDS: Final = {
    "allowances": limits.ALLOWANCES_PER_USER_MAX,
    "spend_limits": limits.SPEND_LIMITS_PER_USER_MAX,
    "alerts": limits.ALERTS_PER_USER_MAX,
}


def _too_many(ctx: Context, reply: Reply) -> CreditsError:
    """A new plan entry past its per-user bound."""
    kind = str(reply[1])
    return LimitExceededError(kind, _PLAN_BOUNDS.get(kind, 0), used=int(reply[2]), requested=1)


def _unsafe_trim(ctx: Context, reply: Reply) -> CreditsError:
    """The archiver asked to trim what is not safe to trim: nothing left the log."""
    return StoreRefusedError(f"archive trim of {ctx.subject!r} refused: {reply[1]}")


def _topup_not_found(ctx: Context, reply: Reply) -> CreditsError:
    return TopupNotFoundError(ctx.subject)


REFUSALS: Final[dict[str, Callable[[Context, Reply], CreditsError]]] = {
    "insufficient": _insufficient,
    "conflict": _conflict,
    "overflow": _overflow,
    "too_many_holds": _too_many_holds,
    "not_found": _not_found,
    "closed": _closed,
    "impossible": _impossible,
    "damaged": _damaged,
    "too_many_lots": _too_many_lots,
    "invalid": _invalid,
    "lot_not_found": _lot_not_found,
    "lot_closed": _lot_closed,
    "too_many_endpoints": _too_many_endpoints,
    "limit_exceeded": _limit_exceeded,
    "too_many": _too_many,
    "topup_not_found": _topup_not_found,
    "unsafe_trim": _unsafe_trim,
}

STATUSES: Final = SUCCESS | CONTINUE | REFUSALS.keys()


def check(reply: Reply, ctx: Context, *, accept: frozenset[str] = SUCCESS) -> Reply:
    """``reply`` when its status is in ``accept``; else raise the error the status stands for."""
    status = reply[0] if isinstance(reply, list | tuple) and reply else None
    if status in accept:
        return reply
    refusal = REFUSALS.get(status) if isinstance(status, str) else None
    if refusal is not None:
        raise refusal(ctx, reply)
    raise StoreRefusedError(f"unexpected reply from the {ctx.operation} script: {reply!r}")
