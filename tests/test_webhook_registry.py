"""Webhook endpoints: the SSRF guard, secrets and filters, add / list / remove on every client.

Endpoints live in one hash shared by the whole store, and a running worker
delivers to every one of them, so each test removes what it added (the
``added`` fixture) and the bound is tested on a server of its own.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from credits import Credits, WebhookEndpoint
from credits.errors import InvalidInputError, LimitExceededError
from credits.keys import WEBHOOK_ENDPOINTS_KEY, webhook_keys
from credits.limits import WEBHOOK_ENDPOINTS_MAX, WEBHOOK_URL_CHARS_MAX
from credits.redis_server import RedisServer
from credits.webhooks.ssrf import allowed_addresses, check_url, is_public

PUBLIC_URL = "https://93.184.216.34/hooks/credits?app=1"  # an IP literal: no DNS needed


@pytest.fixture
def added(ledger: Any) -> Iterator[list[str]]:
    """Ids the test added; removed at the end whatever happened."""
    ids: list[str] = []
    yield ids
    for endpoint_id in ids:
        ledger.remove_webhook(endpoint_id)


@pytest.fixture
def private_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CREDITS_WEBHOOK_ALLOW_PRIVATE", "1")


# --------------------------------------------------------------------------- the SSRF guard


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/", "file:///etc/passwd", "gopher://93.184.216.34:6379/_x",
        "redis://93.184.216.34/", "javascript:alert(1)", "//93.184.216.34/", "http://",
        "http://user:pass@93.184.216.34/", "http://user@93.184.216.34/",
        "http://93.184.216.34:0/", "http://93.184.216.34:99999/", "http://93.184.216.34:x/",
        "http://exa mple.com/", "http://example.com/\n", "http://-bad-.com/", "http://a..b/",
        "https://93.184.216.34/" + "x" * WEBHOOK_URL_CHARS_MAX, "", "http://\ud800.com/",
    ],
)  # fmt: skip
def test_urls_refused_before_any_lookup(url: str) -> None:
    with pytest.raises(InvalidInputError):
        check_url(url)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.9.9.9", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1", "::1", "::",
        "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
        "64:ff9b::7f00:1", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ],
)  # fmt: skip
def test_private_loopback_and_hidden_ipv4_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_every_resolved_address_is_checked() -> None:
    """``localhost`` is a name, not a literal: refused by what it resolves to."""
    with pytest.raises(InvalidInputError, match="loopback, private or reserved"):
        allowed_addresses(check_url("http://localhost:8080/hook"), allow_private=False)
    assert allowed_addresses(check_url("http://localhost:8080/hook"), allow_private=True)
    # Numeric forms the resolver turns into 127.0.0.1 are caught the same way.
    for url in ("http://2130706433/", "http://0x7f000001/", "http://127.1/"):
        with pytest.raises(InvalidInputError):
            allowed_addresses(check_url(url), allow_private=False)


def test_an_unresolvable_host_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="cannot resolve"):
        allowed_addresses(check_url("https://no-such-host.invalid/hook"), allow_private=False)


# --------------------------------------------------------------------------- add, list, remove


def test_add_list_and_remove(ledger: Any, added: list[str], store: Any) -> None:
    endpoint = ledger.add_webhook(PUBLIC_URL, events=["settlement.shortfall", "reservation.*"])
    added.append(endpoint.id)
    assert isinstance(endpoint, WebhookEndpoint)
    assert endpoint.url == PUBLIC_URL
    assert endpoint.events == ["reservation.*", "settlement.shortfall"]
    assert endpoint.secret.startswith("whsec_")
    assert len(base64.b64decode(endpoint.secret.removeprefix("whsec_"))) == 32
    assert endpoint.secret not in repr(endpoint)
    assert endpoint in ledger.list_webhooks()
    store.set(webhook_keys(endpoint.id)[0], "x")  # as if it had delivery state
    assert ledger.remove_webhook(endpoint.id) is True
    assert ledger.remove_webhook(endpoint.id) is False
    assert endpoint not in ledger.list_webhooks()
    assert not any(store.exists(key) for key in webhook_keys(endpoint.id))


def test_a_given_secret_is_kept_and_all_events_are_the_default(
    ledger: Any, added: list[str]
) -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(24))).decode()
    endpoint = ledger.add_webhook(PUBLIC_URL, secret=secret)
    added.append(endpoint.id)
    assert endpoint.secret == secret and endpoint.events is None
    assert ledger.list_webhooks()[-1].created_at >= endpoint.created_at


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "http://127.0.0.1:9/hook"},
        {"url": "http://[::1]/hook"},
        {"url": "http://localhost/hook"},
        {"url": PUBLIC_URL, "events": ["reservation.expird"]},
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL, "secret": "whsec_" + base64.b64encode(b"short").decode()},
        {"url": PUBLIC_URL, "secret": "not-a-secret"},
    ],
)
def test_refused_endpoints_write_nothing(ledger: Any, store: Any, kwargs: dict[str, Any]) -> None:
    before = store.hgetall(WEBHOOK_ENDPOINTS_KEY)
    options = dict(kwargs)
    url = options.pop("url")
    with pytest.raises(InvalidInputError):
        ledger.add_webhook(url, **options)
    assert store.hgetall(WEBHOOK_ENDPOINTS_KEY) == before


def test_loopback_is_allowed_only_when_configured(
    ledger: Any, added: list[str], private_ok: None
) -> None:
    endpoint = ledger.add_webhook("http://127.0.0.1:9/hook")
    added.append(endpoint.id)
    assert endpoint.url == "http://127.0.0.1:9/hook"
    with pytest.raises(InvalidInputError):  # the other rules stay
        ledger.add_webhook("ftp://127.0.0.1/")


@pytest.mark.parametrize("bad", ["", "we_123", "we_0123456789ABCDEF", 5, None, "we_" + "0" * 17])
def test_remove_refuses_malformed_ids(ledger: Any, bad: Any) -> None:
    with pytest.raises(InvalidInputError):
        ledger.remove_webhook(bad)


def test_the_number_of_endpoints_is_bounded(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server, Credits(server.url) as client:
        for _ in range(WEBHOOK_ENDPOINTS_MAX):
            client.add_webhook(PUBLIC_URL)
        with pytest.raises(LimitExceededError) as refused:
            client.add_webhook(PUBLIC_URL)
        assert refused.value.limit == "webhook_endpoints"
        assert refused.value.used == WEBHOOK_ENDPOINTS_MAX
        assert len(client.list_webhooks()) == WEBHOOK_ENDPOINTS_MAX
