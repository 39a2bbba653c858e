"""The two clients are one declaration: same methods, signatures, docstrings, configuration."""

from __future__ import annotations

import inspect

import pytest

import credits
import credits.errors
from credits import AsyncCredits, Credits
from credits.errors import CreditsError, StoreUnavailableError
from credits.operations import Operations

OPERATIONS = sorted(
    name
    for name, member in inspect.getmembers(Operations, inspect.isfunction)
    if not name.startswith("_")
)


def test_every_operation_is_a_method_of_both_clients() -> None:
    assert OPERATIONS  # the introspection found them
    for name in OPERATIONS:
        sync, coro = getattr(Credits, name), getattr(AsyncCredits, name)
        assert not inspect.iscoroutinefunction(sync), name
        assert inspect.iscoroutinefunction(coro), name
        assert inspect.signature(sync) == inspect.signature(coro), name
        assert sync.__doc__ and sync.__doc__ == coro.__doc__, name


def test_the_clients_have_no_public_method_the_other_lacks() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in dir(cls) if not n.startswith("_")}

    lifecycle = {"close"}, {"aclose"}
    assert public(Credits) - lifecycle[0] == public(AsyncCredits) - lifecycle[1]


def test_credits_and_from_env_are_the_same_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITS_REDIS_URL", "redis://127.0.0.1:1/3")
    monkeypatch.setenv("CREDITS_DEFAULT_CREDITS", "25")
    monkeypatch.setenv("CREDITS_SOCKET_TIMEOUT_S", "1.5")
    monkeypatch.setenv("CREDITS_PRICING", "credits.pricing:FIXED_PRICING")
    for cls in (Credits, AsyncCredits):
        plain, from_env = cls(), cls.from_env()
        for client in (plain, from_env):
            assert client.options.url == "redis://127.0.0.1:1/3"
            assert client.options.default_credits == 25
            assert client.options.socket_timeout_s == 1.5
            assert client.options.pricing.calculate_cost("chat_message") == 10
        assert repr(plain) == repr(from_env)


def test_an_argument_wins_over_its_setting_and_an_env_token_stays_with_its_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CREDITS_REDIS_URL", "redis://env-host:6379/0")
    monkeypatch.setenv("CREDITS_REDIS_TOKEN", "env-secret")
    monkeypatch.setenv("CREDITS_DEFAULT_CREDITS", "25")
    from_env = Credits()
    assert from_env.options.url == "redis://:env-secret@env-host:6379/0"
    passed = Credits("redis://other-host:6379/0", default_credits=7)
    assert passed.options.url == "redis://other-host:6379/0"  # the env token is not sent here
    assert passed.options.default_credits == 7
    assert Credits("redis://other-host:6379/0").options.default_credits == 25


def test_every_error_is_importable_from_the_package_and_says_if_it_applied() -> None:
    names = [n for n in credits.errors.__all__]
    for name in names:
        error = getattr(credits.errors, name)
        assert getattr(credits, name) is error, name
        assert issubclass(error, CreditsError)
    unknown = [n for n in names if not getattr(credits.errors, n).outcome_known]
    assert unknown == ["ArchiveUnavailableError", "StoreUnavailableError"]
    assert issubclass(credits.errors.ArchiveUnavailableError, StoreUnavailableError)
    assert issubclass(StoreUnavailableError, credits.errors.TransactionError)
