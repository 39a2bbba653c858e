"""Configuration: URLs, the seed's Upstash variables, tokens as passwords."""

from __future__ import annotations

import pytest
from ledger_fixtures import Clock

from credits import AsyncCredits, Credits
from credits.errors import InvalidInputError
from credits.settings import CreditsSettings, redact_url, resolve_redis_url


def test_upstash_https_maps_to_tls_redis() -> None:
    assert (
        resolve_redis_url("https://eu1-fine-cat-123.upstash.io", "tok/en+")
        == "rediss://default:tok%2Fen%2B@eu1-fine-cat-123.upstash.io:6379"
    )


def test_https_without_token_is_refused() -> None:
    with pytest.raises(InvalidInputError):
        resolve_redis_url("https://x.upstash.io")


def test_token_becomes_the_password() -> None:
    assert resolve_redis_url("redis://h:6380/2", "pw") == "redis://:pw@h:6380/2"
    assert resolve_redis_url("rediss://user@h", "pw") == "rediss://user:pw@h"
    assert resolve_redis_url("redis://:already@h", "pw") == "redis://:already@h"


@pytest.mark.parametrize("url", ["http//nope", "ftp://h", "postgres://h/db", ""])
def test_bad_schemes(url: str) -> None:
    with pytest.raises(InvalidInputError):
        resolve_redis_url(url)


def test_redaction() -> None:
    assert redact_url("rediss://default:secret@h:6379") == "rediss://default:***@h:6379"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_settings_read_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDITS_REDIS_URL", raising=False)
    monkeypatch.setenv("UPSTASH_REDIS_URL", "https://x.upstash.io")
    monkeypatch.setenv("UPSTASH_REDIS_TOKEN", "t0ken-xyz")
    monkeypatch.setenv("CREDITS_DEFAULT_CREDITS", "250")
    settings = CreditsSettings()
    assert settings.redis_url == "https://x.upstash.io"
    assert (
        settings.redis_token is not None and settings.redis_token.get_secret_value() == "t0ken-xyz"
    )
    assert "t0ken-xyz" not in repr(settings)
    assert settings.default_credits == 250


def test_from_env_builds_working_clients(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, user_id: str, clock: Clock
) -> None:
    monkeypatch.setenv("CREDITS_REDIS_URL", redis_url)
    monkeypatch.setenv("CREDITS_DEFAULT_CREDITS", "42")
    with Credits.from_env(clock=clock) as client:
        assert client.initialize_user(user_id).balance == 42
    assert isinstance(AsyncCredits.from_env(clock=clock), AsyncCredits)


def test_no_url_anywhere_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CREDITS_REDIS_URL", "UPSTASH_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InvalidInputError, match="CREDITS_REDIS_URL"):
        Credits()


@pytest.mark.parametrize("value", [-1, 1.5, True, "100"])
def test_bad_default_credits(value: object, redis_url: str) -> None:
    with pytest.raises(InvalidInputError):
        Credits(redis_url, default_credits=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("visibility_timeout_s", "hard_s", "soft_s", "backoff_s"),
    [(60, 30, 20, 30), (10, 5, 10 / 3, 5), (3, 1.5, 1, 1)],
)
def test_worker_numbers_are_derived_from_the_visibility_timeout(
    monkeypatch: pytest.MonkeyPatch,
    visibility_timeout_s: int,
    hard_s: float,
    soft_s: float,
    backoff_s: int,
) -> None:
    """A late-acked task must end, or stop waiting, before the broker hands it out again."""
    from credits.tasks.settings import WorkerSettings

    monkeypatch.setenv("CREDITS_BROKER_VISIBILITY_TIMEOUT_S", str(visibility_timeout_s))
    settings = WorkerSettings()
    assert settings.money_time_limit_s == pytest.approx(hard_s)
    assert settings.money_soft_time_limit_s == pytest.approx(soft_s)
    assert settings.retry_backoff_max_s == backoff_s
    assert settings.money_soft_time_limit_s < settings.money_time_limit_s < visibility_timeout_s
    assert settings.retry_backoff_max_s < visibility_timeout_s


def test_a_visibility_timeout_too_short_to_derive_from_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from credits.tasks.settings import WorkerSettings

    monkeypatch.setenv("CREDITS_BROKER_VISIBILITY_TIMEOUT_S", "1")
    with pytest.raises(ValidationError, match=r"broker_visibility_timeout_s"):
        WorkerSettings()


def test_pricing_names_an_engine_or_rules_or_is_refused() -> None:
    from credits.errors import PricingConfigError
    from credits.pricing import load_pricing

    assert load_pricing(None).calculate_cost("video_generation", 2) == 20
    assert load_pricing("credits.pricing:FIXED_PRICING").calculate_cost("chat_message") == 10
    for bad in ("credits.pricing", "no_such_module:X", "credits.pricing:NOPE", "credits:Credits"):
        with pytest.raises(PricingConfigError):
            load_pricing(bad)
