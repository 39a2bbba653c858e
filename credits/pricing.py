"""Prices of actions in credits, always rounded up to whole credits.

Fixed actions (a chat message) cost the same each time; metered actions (a
video per second, a training job per GPU-hour) cost ``rate * value``.
Rounding up means a provider never does work the user was not charged for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from credits.errors import PricingConfigError
from credits.limits import AMOUNT_MAX

FIXED_PRICING: Mapping[str, int] = {
    "chat_message": 10,
    "canvas_generation_simple": 50,
    "canvas_generation_complex": 75,
}


@dataclass(frozen=True, slots=True)
class PricingRule:
    """A metered price: ``rate`` credits per ``unit``, or a custom ``calculate(value)``."""

    rate: float | int
    unit: str
    calculate: Callable[[float], float | int] | None = None


PRICING_CONFIG: Mapping[str, PricingRule] = {
    "video_generation": PricingRule(rate=10, unit="second"),
    "training_job": PricingRule(rate=1000, unit="gpu_hour"),
}

CustomRule = PricingRule | Mapping[str, object]


def _as_rule(action: str, rule: CustomRule) -> PricingRule:
    if isinstance(rule, PricingRule):
        return rule
    if not isinstance(rule, Mapping) or "rate" not in rule or "unit" not in rule:
        raise PricingConfigError(f"custom rule for {action!r} needs 'rate' and 'unit'")
    rate, unit, calculate = rule["rate"], rule["unit"], rule.get("calculate")
    if (
        isinstance(rate, bool)
        or not isinstance(rate, int | float)
        or not math.isfinite(rate)
        or rate < 0
    ):
        raise PricingConfigError(f"rate of {action!r} must be a finite number >= 0, got {rate!r}")
    if not isinstance(unit, str):
        raise PricingConfigError(f"unit of {action!r} must be a str")
    if calculate is not None and not callable(calculate):
        raise PricingConfigError(f"calculate of {action!r} must be callable")
    return PricingRule(rate=rate, unit=unit, calculate=calculate)


def _exact(number: float | int) -> Fraction:
    # Fraction(str(x)) treats 0.1 as one tenth, so 3 * 0.1 rounds up to 1, not 2.
    try:
        return Fraction(Decimal(str(number)))
    except (InvalidOperation, ValueError) as exc:
        raise PricingConfigError(f"cannot price {number!r}") from exc


class PricingEngine:
    """Turns an action and a measured value into credits.

    ``custom`` adds or overrides rules: an ``int`` is a fixed price, a
    :class:`PricingRule` (or a mapping with ``rate``, ``unit`` and an optional
    ``calculate``) a metered one.
    """

    def __init__(self, custom: Mapping[str, int | CustomRule] | None = None) -> None:
        self._fixed: dict[str, int] = dict(FIXED_PRICING)
        self._metered: dict[str, PricingRule] = dict(PRICING_CONFIG)
        for action, rule in (custom or {}).items():
            if isinstance(rule, bool):
                raise PricingConfigError(f"price of {action!r} must be an int or a rule, not bool")
            if isinstance(rule, int):
                if not 0 <= rule <= AMOUNT_MAX:
                    raise PricingConfigError(f"fixed price of {action!r} out of range: {rule}")
                self._fixed[action] = rule
                self._metered.pop(action, None)
            else:
                self._metered[action] = _as_rule(action, rule)
                self._fixed.pop(action, None)

    def is_metered(self, action: str) -> bool:
        return action in self._metered

    def unit(self, action: str) -> str | None:
        rule = self._metered.get(action)
        return rule.unit if rule else None

    def calculate_cost(self, action: str, value: float | int = 1) -> int:
        """Credits for ``value`` units of ``action``, rounded up.

        Raises :class:`PricingConfigError` for an unknown action, or a value that
        is negative, not finite or not a number.
        """
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PricingConfigError(f"value must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or value < 0:
            raise PricingConfigError(f"value must be finite and >= 0, got {value!r}")
        if action in self._fixed:
            return self._fixed[action]
        rule = self._metered.get(action)
        if rule is None:
            raise PricingConfigError(f"no price for action {action!r}")
        raw = rule.calculate(value) if rule.calculate else _exact(rule.rate) * _exact(value)
        if isinstance(raw, bool) or not isinstance(raw, int | float | Fraction):
            raise PricingConfigError(f"calculate of {action!r} returned {raw!r}, not a number")
        if (isinstance(raw, float) and not math.isfinite(raw)) or raw < 0:
            raise PricingConfigError(f"calculate of {action!r} returned {raw!r}")
        cost = math.ceil(raw)
        if cost > AMOUNT_MAX:
            raise PricingConfigError(f"cost of {action!r} ({cost}) is over {AMOUNT_MAX}")
        return cost


def load_pricing(spec: str | None) -> PricingEngine:
    """The app's pricing from ``CREDITS_PRICING``: ``"package.module:NAME"``.

    ``NAME`` is a :class:`PricingEngine`, or a mapping of custom rules (as
    ``PricingEngine(custom=...)`` takes). ``None`` is the default engine. This is
    how a worker's ``settle_reservation(usage=...)`` prices with the same rules
    as the app that enqueued it.
    """
    if spec is None:
        return PricingEngine()
    import importlib

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PricingConfigError(f"CREDITS_PRICING must be 'module:NAME', got {spec!r}")
    try:
        value = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise PricingConfigError(f"cannot load CREDITS_PRICING {spec!r}: {exc}") from exc
    if isinstance(value, PricingEngine):
        return value
    if isinstance(value, Mapping):
        return PricingEngine(value)
    raise PricingConfigError(
        f"CREDITS_PRICING {spec!r} is a {type(value).__name__}, not a PricingEngine or a mapping"
    )
