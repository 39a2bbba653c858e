"""A new lot's terms, checked before anything is sent.

What needs the server's clock (an ``expires_at`` already past, an
``expires_in`` counted from now) is checked by ``add.lua`` against ``TIME``,
and refused there before anything is written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from credits import limits
from credits.errors import InvalidInputError
from credits.models import LotCategory
from credits.validation import check_action, exact_int

# Categories a caller may give; the ledger itself makes allowance and rollover lots.
GRANT_CATEGORIES: Final[tuple[LotCategory, ...]] = ("paid", "promotional", "refund")


@dataclass(frozen=True, slots=True)
class LotTerms:
    category: str
    priority: int
    expires_at_ms: int | None
    expires_in_ms: int | None
    effective_at_ms: int | None
    scope: tuple[str, ...] | None

    def script_args(self) -> list[str | int]:
        """add.lua's lot arguments after the lot id (see its header)."""
        scope = "" if self.scope is None else json.dumps(dict.fromkeys(self.scope, 1))
        return [
            self.category,
            self.priority,
            "" if self.expires_at_ms is None else self.expires_at_ms,
            "" if self.expires_in_ms is None else self.expires_in_ms,
            "" if self.effective_at_ms is None else self.effective_at_ms,
            scope,
        ]

    def fingerprint_parts(self) -> tuple[object, ...]:
        scope = None if self.scope is None else sorted(self.scope)
        return (
            self.category,
            self.priority,
            self.expires_at_ms,
            self.expires_in_ms,
            self.effective_at_ms,
            scope,
        )


def check_instant_ms(value: object, name: str) -> int | None:
    """A moment as Unix ms: an ``int`` of ms, or an aware ``datetime``; None passes."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInputError(f"{name} must be an aware datetime (with a time zone)")
        ms = math.floor(value.timestamp() * 1000)
    else:
        ms = exact_int(value, name)
    if not 0 <= ms <= limits.AMOUNT_MAX:
        raise InvalidInputError(f"{name} must be in [0, {limits.AMOUNT_MAX}] ms, got {ms}")
    return ms


def check_duration_ms(value: object, name: str) -> int | None:
    """A duration as ms: whole seconds (``int``) or a ``timedelta``; must be > 0."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        ms_float = value / timedelta(milliseconds=1)
        if not math.isfinite(ms_float):
            raise InvalidInputError(f"{name} must be finite")
        ms = int(ms_float)
    else:
        seconds = exact_int(value, name)
        if abs(seconds) > limits.LOT_TERM_MS_MAX // 1000:
            raise InvalidInputError(f"{name} must be at most {limits.LOT_TERM_MS_MAX // 1000} s")
        ms = seconds * 1000
    if ms <= 0:
        raise InvalidInputError(f"{name} must be more than zero, got {value!r}")
    if ms > limits.LOT_TERM_MS_MAX:
        raise InvalidInputError(f"{name} must be at most {limits.LOT_TERM_MS_MAX // 1000} s")
    return ms


def check_scope(scope: object) -> tuple[str, ...] | None:
    """None (every action) or 1..LOT_SCOPE_ACTIONS_MAX action names, without repeats."""
    if scope is None:
        return None
    if isinstance(scope, str) or not isinstance(scope, list | tuple | set | frozenset):
        raise InvalidInputError(
            f"scope must be None or a list of action names, got {type(scope).__name__}"
        )
    actions = tuple(check_action(action) for action in scope)
    if not 1 <= len(actions) <= limits.LOT_SCOPE_ACTIONS_MAX:
        raise InvalidInputError(
            f"scope must name 1 to {limits.LOT_SCOPE_ACTIONS_MAX} actions, got {len(actions)}"
        )
    if len(set(actions)) != len(actions):
        raise InvalidInputError("scope names an action twice")
    return tuple(sorted(actions))


def check_priority(priority: object) -> int:
    value = exact_int(priority, "priority")
    if not limits.LOT_PRIORITY_MIN <= value <= limits.LOT_PRIORITY_MAX:
        raise InvalidInputError(
            f"priority must be in [{limits.LOT_PRIORITY_MIN}, {limits.LOT_PRIORITY_MAX}], "
            f"got {value}"
        )
    return value


def check_terms(
    *,
    expires_at: object,
    expires_in: object,
    effective_at: object,
    priority: object,
    category: object,
    scope: object,
) -> LotTerms:
    """The terms of a lot ``add`` creates; raises InvalidInputError, before anything is sent."""
    if category not in GRANT_CATEGORIES:
        raise InvalidInputError(f"category must be one of {GRANT_CATEGORIES}, got {category!r}")
    expires_at_ms = check_instant_ms(expires_at, "expires_at")
    expires_in_ms = check_duration_ms(expires_in, "expires_in")
    if expires_at_ms is not None and expires_in_ms is not None:
        raise InvalidInputError("give expires_at or expires_in, not both")
    effective_at_ms = check_instant_ms(effective_at, "effective_at")
    if (
        expires_at_ms is not None
        and effective_at_ms is not None
        and effective_at_ms >= expires_at_ms
    ):
        raise InvalidInputError("effective_at must be before expires_at")
    return LotTerms(
        category=str(category),
        priority=check_priority(priority),
        expires_at_ms=expires_at_ms,
        expires_in_ms=expires_in_ms,
        effective_at_ms=effective_at_ms,
        scope=check_scope(scope),
    )
