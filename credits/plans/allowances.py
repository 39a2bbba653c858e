"""Recurring allowances, as steps: set, remove, list.

The renewal itself is not here: it runs inside the scripts, with the user's
upkeep (``lua/include/allowances.lua``), so a period's grant is written by the
first of the user's own calls and the beat's ``renew_allowances`` to get there,
once. What this module does is check the terms and show the state.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal

from credits import limits
from credits.errors import InvalidInputError
from credits.lots.terms import check_instant_ms, check_priority, check_scope
from credits.models import Allowance, Every
from credits.plans.calendar import PERIODS
from credits.plans.config import (
    PlansState,
    check_plan_name,
    configure,
    number,
    read_plans,
    scope_of,
    scope_terms,
)
from credits.protocol import Now, Steps
from credits.validation import check_amount, exact_int

Effective = Literal["next_period", "now"]
EFFECTIVE: Final[tuple[Effective, ...]] = ("next_period", "now")
ALLOWANCE_PRIORITY_DEFAULT: Final = 40


def _terms(
    amount: object,
    every: object,
    anchor: int | datetime | None,
    rollover_max: object,
    priority: object,
    scope: object,
    effective: object,
) -> dict[str, Any]:
    checked_amount = check_amount(amount)
    if every not in PERIODS:
        raise InvalidInputError(f"every must be one of {PERIODS}, got {every!r}")
    anchor_ms = check_instant_ms(anchor, "anchor")
    if anchor_ms is not None and anchor_ms > limits.ALLOWANCE_ANCHOR_MS_MAX:
        raise InvalidInputError(f"anchor must be at most {limits.ALLOWANCE_ANCHOR_MS_MAX} ms")
    rollover = exact_int(rollover_max, "rollover_max")
    if not 0 <= rollover <= limits.AMOUNT_MAX:
        raise InvalidInputError(f"rollover_max must be in [0, {limits.AMOUNT_MAX}], got {rollover}")
    if effective not in EFFECTIVE:
        raise InvalidInputError(f"effective must be one of {EFFECTIVE}, got {effective!r}")
    terms: dict[str, Any] = {
        "a": str(checked_amount),
        "e": every,
        "r": str(rollover),
        "p": str(check_priority(priority)),
    }
    if anchor_ms is not None:
        terms["n"] = str(anchor_ms)
    scoped = scope_terms(check_scope(scope))
    if scoped is not None:
        terms["s"] = scoped
    if effective == "now":
        terms["now"] = True
    return terms


def _allowance(user_id: str, name: str, stored: dict[str, Any]) -> Allowance:
    pending = stored.get("nx")
    next_change = None
    if isinstance(pending, dict):
        next_change = {
            "amount": number(pending.get("a")),
            "every": pending.get("e"),
            "anchor": number(pending.get("n")),
            "rollover_max": number(pending.get("r")),
            "priority": number(pending.get("p")),
            "scope": scope_of(pending.get("s")),
            "effective_at": number(stored.get("pe")),
        }
    every: Every = stored.get("e", "month")
    return Allowance(
        name=name,
        user_id=user_id,
        amount=number(stored.get("a"), 1) or 1,
        every=every,
        anchor=number(stored.get("n"), 0) or 0,
        rollover_max=number(stored.get("r"), 0) or 0,
        priority=number(stored.get("p"), ALLOWANCE_PRIORITY_DEFAULT) or 0,
        scope=scope_of(stored.get("s")),
        period_start=number(stored.get("ps")),
        period_end=number(stored.get("pe")),
        granted=number(stored.get("g"), 0) or 0,
        next_change=next_change,
    )


def allowances_of(state: PlansState) -> list[Allowance]:
    entries = state.entries("al")
    return [_allowance(state.user_id, name, entries[name]) for name in sorted(entries)]


def set_allowance(
    now: Now,
    user_id: str,
    name: str,
    amount: int,
    *,
    every: str,
    anchor: int | datetime | None,
    rollover_max: int,
    priority: int,
    scope: list[str] | None,
    effective: str,
) -> Steps[Allowance]:
    checked_name = check_plan_name(name, "allowance")
    terms = _terms(amount, every, anchor, rollover_max, priority, scope, effective)
    state = yield from configure(now, user_id, "allowance_set", checked_name, terms)
    return _allowance(state.user_id, checked_name, state.entries("al")[checked_name])


def remove_allowance(now: Now, user_id: str, name: str) -> Steps[bool]:
    checked_name = check_plan_name(name, "allowance")
    state = yield from configure(now, user_id, "allowance_remove", checked_name)
    return state.existed


def list_allowances(now: Now, user_id: str) -> Steps[list[Allowance]]:
    state = yield from read_plans(now, user_id)
    return allowances_of(state)
