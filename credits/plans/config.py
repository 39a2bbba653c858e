"""A user's plans as the scripts keep them, read and changed, as steps.

Allowances, spend limits, alerts and auto top-up are entries of one JSON field
of the account hash (``lua/include/plans.lua`` documents it), read with the
balance by every script. ``configure.lua`` changes one entry after the user's
upkeep; ``read_plans.lua`` reads them all. Both answer with the server's now,
so a window or a period is always shown by the clock that decides it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from credits import limits, replies
from credits.errors import InvalidInputError, StoreRefusedError
from credits.keys import user_keys
from credits.protocol import Now, Steps, run_script
from credits.scripts import script
from credits.validation import check_user_id

Operation = Literal[
    "allowance_set", "allowance_remove", "limit_set", "limit_remove",
    "alert_set", "alert_remove", "topup_set", "topup_remove",
]  # fmt: skip
_NAME_PUNCTUATION: Final = frozenset("_-.:")


@dataclass(frozen=True, slots=True)
class PlansState:
    """A user's plans after a read or a change, with the server's time of it."""

    user_id: str
    now_ms: int
    plans: dict[str, Any]
    balance: int
    existed: bool = True  # for a removal: whether the entry was there

    def entries(self, field: str) -> dict[str, dict[str, Any]]:
        found = self.plans.get(field)
        return found if isinstance(found, dict) else {}


def check_plan_name(name: object, what: str) -> str:
    """A name for an allowance, a limit or an alert: short, and safe in logs and URLs."""
    if not isinstance(name, str):
        raise InvalidInputError(f"{what} name must be a str, got {type(name).__name__}")
    if not 1 <= len(name) <= limits.PLAN_NAME_CHARS_MAX:
        raise InvalidInputError(
            f"{what} name must be 1 to {limits.PLAN_NAME_CHARS_MAX} characters, got {len(name)}"
        )
    if not all(ch.isascii() and (ch.isalnum() or ch in _NAME_PUNCTUATION) for ch in name):
        raise InvalidInputError(f"{what} name may use only ASCII letters, digits and _-.: ")
    return name


def scope_terms(scope: tuple[str, ...] | None) -> dict[str, int] | None:
    """A scope as the scripts keep it ({action: 1}), as lots do."""
    return None if scope is None else dict.fromkeys(scope, 1)


def scope_of(stored: object) -> list[str] | None:
    return sorted(stored) if isinstance(stored, dict) else None


def number(stored: object, default: int | None = None) -> int | None:
    """A number the scripts wrote (always a string of digits), or ``default``."""
    if isinstance(stored, str) and stored.lstrip("-").isdigit():
        return int(stored)
    if isinstance(stored, int) and not isinstance(stored, bool):
        return stored
    return default


def _state(user_id: str, reply: Any, context: replies.Context) -> PlansState:
    checked = replies.check(reply, context)
    try:
        raw = checked[2]
        plans = json.loads(raw) if raw else {}
        return PlansState(
            user_id=user_id,
            now_ms=int(checked[1]),
            plans=plans if isinstance(plans, dict) else {},
            balance=int(checked[3]),
            existed=len(checked) < 5 or str(checked[4]) == "1",
        )
    except (ValueError, IndexError, TypeError) as exc:
        raise StoreRefusedError(f"unreadable plans of {user_id!r}: {exc}") from None


def configure(
    now: Now, user_id: str, operation: Operation, name: str, terms: dict[str, Any] | None = None
) -> Steps[PlansState]:
    """Apply one change to the user's plans (after its upkeep); the plans after it."""
    checked_user = check_user_id(user_id)
    keys, args = user_keys(checked_user).script_call(now)
    encoded = "" if terms is None else json.dumps(terms, separators=(",", ":"))
    reply = yield from run_script(script("configure"), keys, [*args, operation, name, encoded])
    return _state(checked_user, reply, replies.Context(operation, checked_user))


def read_plans(now: Now, user_id: str) -> Steps[PlansState]:
    checked_user = check_user_id(user_id)
    keys, args = user_keys(checked_user).script_call(now)
    reply = yield from run_script(script("read_plans"), keys, args)
    return _state(checked_user, reply, replies.Context("read_plans", checked_user))
