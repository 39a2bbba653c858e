"""Auto top-up, as steps: set it, confirm a request, read it.

The request is made inside the scripts (``request_topup`` in
``lua/include/plans.lua``): when an event takes the balance from at least
``below`` to under it, one ``topup.requested`` event with a ``topup_id`` is
written, and no second one while that request is open. The app charges the
customer and calls ``confirm_topup``; ``topup_confirm.lua`` applies the first
confirmation of an id and returns its result to every repeat, so a payment
webhook delivered twice grants once.
"""

from __future__ import annotations

from credits import limits, replies
from credits.errors import InvalidInputError
from credits.keys import lot_id, parse_topup_id, topup_id, user_keys
from credits.models import AutoTopup, TopupConfirmation
from credits.plans.calendar import window_of
from credits.plans.config import PlansState, configure, number, read_plans
from credits.protocol import Now, Steps, run_script
from credits.scripts import script
from credits.validation import check_amount, check_encodable, exact_int


def topup_of(state: PlansState) -> AutoTopup | None:
    stored = state.plans.get("tu")
    if not isinstance(stored, dict):
        return None
    keys = user_keys(state.user_id)
    open_id = stored.get("o")
    month_start = number(stored.get("mo"), 0)
    this_month = window_of("month", state.now_ms)[0]
    return AutoTopup(
        user_id=state.user_id,
        below=number(stored.get("b"), 1) or 1,
        amount=number(stored.get("a")),
        target=number(stored.get("t")),
        max_per_month=number(stored.get("m")),
        enabled=stored.get("x") != "1",
        open_topup_id=topup_id(keys, open_id) if isinstance(open_id, str) else None,
        open_amount=number(stored.get("oa")),
        failures=number(stored.get("f"), 0) or 0,
        requested_this_month=(number(stored.get("c"), 0) or 0) if month_start == this_month else 0,
    )


def set_auto_topup(
    now: Now,
    user_id: str,
    *,
    below: int,
    amount: int | None,
    target: int | None,
    max_per_month: int | None,
) -> Steps[AutoTopup]:
    terms = {"b": str(check_amount(below, "below"))}
    if (amount is None) == (target is None):
        raise InvalidInputError("give exactly one of amount (credits to add) or target (to reach)")
    if amount is not None:
        terms["a"] = str(check_amount(amount))
    if target is not None:
        checked_target = check_amount(target, "target")
        if checked_target < int(terms["b"]):
            raise InvalidInputError("target must be at least below (a top-up reaches it)")
        terms["t"] = str(checked_target)
    if max_per_month is not None:
        per_month = exact_int(max_per_month, "max_per_month")
        if not 1 <= per_month <= limits.TOPUP_MONTHLY_MAX:
            raise InvalidInputError(
                f"max_per_month must be in [1, {limits.TOPUP_MONTHLY_MAX}] or None, got {per_month}"
            )
        terms["m"] = str(per_month)
    state = yield from configure(now, user_id, "topup_set", "", terms)
    found = topup_of(state)
    if found is None:
        raise InvalidInputError("auto top-up was not stored")  # unreachable: the script wrote it
    return found


def remove_auto_topup(now: Now, user_id: str) -> Steps[bool]:
    state = yield from configure(now, user_id, "topup_remove", "")
    return state.existed


def get_auto_topup(now: Now, user_id: str) -> Steps[AutoTopup | None]:
    state = yield from read_plans(now, user_id)
    return topup_of(state)


def confirm_topup(
    now: Now, public_id: str, paid: bool, amount: int | None
) -> Steps[TopupConfirmation]:
    if not isinstance(public_id, str):
        raise InvalidInputError(f"topup_id must be a str, got {type(public_id).__name__}")
    if not isinstance(paid, bool):
        raise InvalidInputError(f"paid must be a bool, got {type(paid).__name__}")
    parsed = parse_topup_id(check_encodable("topup_id", public_id))
    if parsed is None:
        raise InvalidInputError(f"malformed top-up id {public_id[:300]!r}")
    charged = None if amount is None else check_amount(amount)
    user_id, local = parsed
    keys, args = user_keys(user_id).script_call(now)
    reply = yield from run_script(
        script("topup_confirm"),
        keys,
        [*args, local, "1" if paid else "0", "" if charged is None else charged],
    )
    context = replies.Context("confirm_topup", public_id, amount=charged or 0)
    _, result = replies.check(reply, context)
    was_paid, credited, tx_id, balance, timestamp, lot = str(result).split(",")
    return TopupConfirmation(
        topup_id=public_id,
        paid=was_paid == "1",
        amount=int(credited),
        balance=int(balance),
        tx_id=tx_id or None,
        lot_id=lot_id(user_keys(user_id), lot) if lot else None,
        timestamp=int(timestamp) if timestamp else None,
    )
