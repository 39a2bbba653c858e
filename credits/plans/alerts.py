"""Balance alerts, as steps: set, remove, list.

An alert is edge-triggered inside the scripts (``alert_crossing`` in
``lua/include/plans.lua``): ``balance.below`` when an event takes the balance
from at least the threshold to below it, ``balance.recovered`` when a later one
brings it back, each once per crossing whatever the concurrency (a script runs
alone). An alert set while the balance is already below it fires at once.
"""

from __future__ import annotations

from credits.models import Alert
from credits.plans.config import PlansState, check_plan_name, configure, number, read_plans
from credits.protocol import Now, Steps
from credits.validation import check_amount


def _alert(state: PlansState, name: str) -> Alert:
    below = state.entries("ab")
    return Alert(
        name=name,
        user_id=state.user_id,
        below=number(state.plans.get("at", {}).get(name), 1) or 1,
        triggered=name in below,
    )


def alerts_of(state: PlansState) -> list[Alert]:
    return [_alert(state, name) for name in sorted(state.entries("at"))]


def set_alert(now: Now, user_id: str, name: str, *, below: int) -> Steps[Alert]:
    checked_name = check_plan_name(name, "alert")
    terms = {"b": str(check_amount(below, "below"))}
    state = yield from configure(now, user_id, "alert_set", checked_name, terms)
    return _alert(state, checked_name)


def remove_alert(now: Now, user_id: str, name: str) -> Steps[bool]:
    checked_name = check_plan_name(name, "alert")
    state = yield from configure(now, user_id, "alert_remove", checked_name)
    return state.existed


def list_alerts(now: Now, user_id: str) -> Steps[list[Alert]]:
    state = yield from read_plans(now, user_id)
    return alerts_of(state)
