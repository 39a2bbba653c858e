"""Spend limits per calendar window, as steps: set, remove, list.

The checks run inside ``deduct.lua`` and ``reserve.lua`` (``limit_refusal``), so
a call that would pass a limit is refused with the numbers and writes nothing;
a settle is never refused but counts. What a hold gives back stops counting,
in the window that counted it, while that window is current.
"""

from __future__ import annotations

from typing import Any

from credits.errors import InvalidInputError
from credits.lots.terms import check_scope
from credits.models import SpendLimit, Window
from credits.plans.calendar import WINDOWS, window_of
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
from credits.validation import check_amount


def _limit(state: PlansState, name: str, stored: dict[str, Any]) -> SpendLimit:
    every: Window = stored.get("e", "day")
    start, end = window_of(every, state.now_ms)
    # what the stored window used counts only while it is the current one
    used = number(stored.get("u"), 0) if number(stored.get("ws")) == start else 0
    return SpendLimit(
        name=name,
        user_id=state.user_id,
        amount=number(stored.get("a"), 1) or 1,
        every=every,
        scope=scope_of(stored.get("s")),
        used=used or 0,
        window_start=start,
        window_end=end,
    )


def limits_of(state: PlansState) -> list[SpendLimit]:
    entries = state.entries("sl")
    return [_limit(state, name, entries[name]) for name in sorted(entries)]


def set_limit(
    now: Now, user_id: str, name: str, amount: int, *, every: str, scope: list[str] | None
) -> Steps[SpendLimit]:
    checked_name = check_plan_name(name, "limit")
    if every not in WINDOWS:
        raise InvalidInputError(f"every must be one of {WINDOWS}, got {every!r}")
    terms: dict[str, Any] = {"a": str(check_amount(amount)), "e": every}
    scoped = scope_terms(check_scope(scope))
    if scoped is not None:
        terms["s"] = scoped
    state = yield from configure(now, user_id, "limit_set", checked_name, terms)
    return _limit(state, checked_name, state.entries("sl")[checked_name])


def remove_limit(now: Now, user_id: str, name: str) -> Steps[bool]:
    checked_name = check_plan_name(name, "limit")
    state = yield from configure(now, user_id, "limit_remove", checked_name)
    return state.existed


def list_limits(now: Now, user_id: str) -> Steps[list[SpendLimit]]:
    state = yield from read_plans(now, user_id)
    return limits_of(state)
