"""Pricing: fixed and metered prices, custom rules, rounding up, bad values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from credits import FIXED_PRICING, PRICING_CONFIG, PricingEngine
from credits.errors import CreditsError, PricingConfigError
from credits.pricing import PricingRule


def test_fixed_prices() -> None:
    assert dict(FIXED_PRICING) == {
        "chat_message": 10,
        "canvas_generation_simple": 50,
        "canvas_generation_complex": 75,
    }
    engine = PricingEngine()
    assert engine.calculate_cost("chat_message", 1) == 10
    assert engine.calculate_cost("canvas_generation_complex") == 75


def test_metered_prices_round_up() -> None:
    engine = PricingEngine()
    assert PRICING_CONFIG["video_generation"].rate == 10
    assert PRICING_CONFIG["training_job"].unit == "gpu_hour"
    assert engine.calculate_cost("video_generation", 30) == 300
    assert engine.calculate_cost("video_generation", 30.01) == 301
    assert engine.calculate_cost("training_job", 2) == 2000
    assert engine.calculate_cost("training_job", 0.0001) == 1
    assert engine.calculate_cost("training_job", 0) == 0
    # 0.1 GPU-hour is 100 credits exactly, not 100.00000000000001 rounded up to 101
    assert engine.calculate_cost("training_job", 0.1) == 100


def test_custom_rules() -> None:
    engine = PricingEngine(
        {
            "custom_action": {"rate": 15, "unit": "item", "calculate": lambda v: math.ceil(v * 15)},
            "per_token": PricingRule(rate=0.002, unit="token"),
            "chat_message": 12,
        }
    )
    assert engine.calculate_cost("custom_action", 10) == 150
    assert engine.calculate_cost("per_token", 1500) == 3
    assert engine.calculate_cost("chat_message") == 12
    assert engine.unit("per_token") == "token"
    assert engine.is_metered("per_token") and not engine.is_metered("chat_message")


@pytest.mark.parametrize("value", [-1, -0.5, float("nan"), float("inf"), "3", None, True], ids=repr)
def test_bad_values(value: Any) -> None:
    with pytest.raises(PricingConfigError):
        PricingEngine().calculate_cost("video_generation", value)


def test_unknown_action() -> None:
    with pytest.raises(PricingConfigError) as caught:
        PricingEngine().calculate_cost("teleport", 1)
    assert isinstance(caught.value, CreditsError)


@pytest.mark.parametrize(
    "rule",
    [
        {"rate": 1},
        {"unit": "x"},
        {"rate": -1, "unit": "x"},
        {"rate": float("nan"), "unit": "x"},
        {"rate": 1, "unit": "x", "calculate": 3},
        True,
        -5,
    ],
    ids=repr,
)
def test_bad_custom_rules(rule: Any) -> None:
    with pytest.raises(PricingConfigError):
        PricingEngine({"thing": rule})


def test_custom_calculate_returning_garbage() -> None:
    engine = PricingEngine({"bad": {"rate": 1, "unit": "x", "calculate": lambda v: float("inf")}})
    with pytest.raises(PricingConfigError):
        engine.calculate_cost("bad", 1)
    huge = PricingEngine({"huge": {"rate": 1, "unit": "x", "calculate": lambda v: 2**60}})
    with pytest.raises(PricingConfigError):
        huge.calculate_cost("huge", 1)
