"""Reading and voiding lots, as steps (see :mod:`credits.protocol`).

A lot id carries its user's bucket tag and escaped id, as a reservation id
does, so ``get_lot`` and ``void_lot`` need nothing but the id.
"""

from __future__ import annotations

from typing import Final

from credits import limits, replies
from credits.errors import InvalidInputError, LotNotFoundError
from credits.keys import UserKeys, parse_lot_id, user_keys
from credits.lots.records import parse_lot_pairs
from credits.models import Lot, LotStatus, TxResult
from credits.protocol import Now, Steps, run_script
from credits.scripts import script
from credits.validation import (
    check_encodable,
    check_limit,
    check_reason,
    check_user_id,
    encode_metadata,
)

LOT_STATUSES: Final[tuple[LotStatus, ...]] = ("pending", "active", "exhausted", "expired", "voided")
LOTS_READ_PER_CALL_MAX: Final = limits.LOTS_ACTIVE_PER_USER_MAX + limits.PLAN_LOTS_HEADROOM


def _lot_keys(public_id: object) -> tuple[UserKeys, str]:
    if not isinstance(public_id, str):
        raise InvalidInputError(f"lot_id must be a str, got {type(public_id).__name__}")
    parsed = parse_lot_id(check_encodable("lot_id", public_id))
    if parsed is None:
        raise InvalidInputError(f"malformed lot id {public_id[:300]!r}")
    user_id, lot = parsed
    return user_keys(user_id), lot


def get_lot(now: Now, public_id: str) -> Steps[Lot]:
    user, lot = _lot_keys(public_id)
    keys, args = user.script_call(now)
    reply = yield from run_script(script("read_lots"), keys, [*args, "one", lot])
    found = parse_lot_pairs(user, list(replies.check(reply, replies.Context("get_lot", public_id))))
    if not found:
        raise LotNotFoundError(public_id)
    return found[0]


def list_lots(
    now: Now, user_id: str, status: str | None, limit: int = limits.LOTS_LIST_LIMIT_MAX
) -> Steps[list[Lot]]:
    """The user's lots: active ones (pending, active, expired or voided but still held)
    in drawdown order, then finished ones (exhausted, expired, voided) most recent first,
    kept for the finished-lot retention."""
    user = user_keys(check_user_id(user_id))
    if status is not None and status not in LOT_STATUSES:
        raise InvalidInputError(f"status must be one of {LOT_STATUSES} or None, got {status!r}")
    count = check_limit(limit, limits.LOTS_LIST_LIMIT_MAX)
    keys, args = user.script_call(now)
    context = replies.Context("list_lots", user_id)
    found: list[Lot] = []
    for which in ("active", "finished"):
        offset = 0
        while len(found) < count:
            page = LOTS_READ_PER_CALL_MAX
            reply = yield from run_script(script("read_lots"), keys, [*args, which, offset, page])
            lots = parse_lot_pairs(user, list(replies.check(reply, context)))
            found += [lot for lot in lots if status is None or lot.status == status]
            if which == "active" or len(lots) < page:
                break
            offset += page
    return found[:count]


def void_lot(now: Now, public_id: str, reason: str | None) -> Steps[TxResult]:
    """Remove what remains of a lot (a ``lot_void`` event); held credits of it are voided
    when their holds give them back. Voiding a voided lot returns the first result."""
    user, lot = _lot_keys(public_id)
    why = check_reason(reason)
    meta = encode_metadata({"reason": why} if why else None)
    keys, args = user.script_call(now)
    reply = yield from run_script(script("void_lot"), keys, [*args, lot, meta])
    _, encoded = replies.check(reply, replies.Context("void_lot", public_id))
    tx_id, balance, timestamp = str(encoded).split(",")
    return TxResult(tx_id=tx_id, balance=int(balance), timestamp=int(timestamp))
