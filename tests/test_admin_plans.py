"""The admin page's plan sections over real HTTP: allowances, limits, alerts, auto top-up.

Server-rendered from the ledger's own reads, escaped, and fetching nothing
from outside; the same sign-in as test_admin.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import escape
from urllib.parse import quote

import httpx
import pytest
from http_rig import Served, make_key, serve

from credits import Credits
from credits.http import keys
from credits.transport import blocking_executor, drive


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[Credits]:
    with Credits(redis_url) as ledger:
        yield ledger


@pytest.fixture(scope="module")
def served(redis_url: str) -> Iterator[Served]:
    with serve(redis_url) as running:
        yield running


@pytest.fixture(scope="module")
def browser(served: Served, client: Credits) -> Iterator[httpx.Client]:
    token = make_key(client, "admin", "admin-plans-test")
    with httpx.Client(base_url=served.base_url, timeout=10) as signed_in:
        assert signed_in.post("/admin/login", data={"key": token}).status_code == 303
        yield signed_in
    key_id = keys.key_id_of(token)
    assert key_id is not None
    drive(keys.revoke_key(key_id), blocking_executor(client.redis))


def section(html: str, table_id: str) -> str:
    match = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert match is not None, f"no table {table_id}"
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", match[1]))


def page_of(browser: httpx.Client, user: str) -> str:
    answer = browser.get(f"/admin/users/{quote(user, safe='')}")
    assert answer.status_code == 200, answer.text
    return answer.text


def test_a_user_without_plans_says_so(browser: httpx.Client, user_id: str) -> None:
    html = page_of(browser, user_id)
    for empty in ("no-allowances", "no-limits", "no-alerts", "no-topup"):
        assert f'id="{empty}"' in html


def test_the_user_page_shows_allowances_limits_alerts_and_top_up(
    browser: httpx.Client, client: Credits, user_id: str
) -> None:
    hostile = "<script>alert(1)</script>"
    client.set_allowance(user_id, "pro", 1500, every="month", rollover_max=200, scope=[hostile])
    client.set_allowance(user_id, "later", 99, every="year", anchor=32_503_680_000_000)  # 3000
    client.set_allowance(user_id, "pro", 2000, every="month", scope=[hostile])  # next period
    client.set_limit(user_id, "daily", 1000, every="day")
    client.deduct(user_id, 250, hostile)
    client.set_alert(user_id, "low", below=5000)
    client.set_alert(user_id, "tiny", below=10)
    client.set_auto_topup(user_id, below=2000, target=3000, max_per_month=4)  # 1,250: asks now
    topup = client.get_auto_topup(user_id)
    assert topup is not None and topup.open_topup_id is not None
    html = page_of(browser, user_id)

    assert "<script>alert(1)</script>" not in html and escape(hostile) in html
    assert not re.search(r"""(src|href)=["']https?://""", html), "nothing is fetched from outside"
    allowances = section(html, "allowances")
    pro = client.list_allowances(user_id)[1]
    assert pro.name == "pro" and pro.period_start is not None and pro.period_end is not None
    assert "pro 1,500 month" in allowances and "1,500 200 40" in allowances
    assert "2000 every month" in allowances  # the change waiting for the next period
    assert "none yet: from 3000-01-01" in allowances
    limits = section(html, "limits")
    assert "daily 250 / 1,000 day:" in limits
    alerts = section(html, "alerts")
    assert "low 5,000 below it" in alerts and "tiny 10 above it" in alerts
    shown = section(html, "topup")
    assert "on 2,000 reach 3,000 1 of at most 4 0" in shown
    assert escape(topup.open_topup_id) in html and "1,750 credits, awaiting confirmation" in shown


def test_auto_top_up_off_after_three_declines(
    browser: httpx.Client, client: Credits, user_id: str
) -> None:
    client.add(user_id, 200, "purchase")
    client.set_auto_topup(user_id, below=100, amount=500)
    for _ in range(3):
        client.deduct(user_id, 150, "chat")
        found = client.get_auto_topup(user_id)
        assert found is not None and found.open_topup_id is not None
        client.confirm_topup(found.open_topup_id, paid=False)
        client.add(user_id, 150, "purchase")
    html = page_of(browser, user_id)
    assert 'id="topup-state">off' in html
    assert "add 500" in section(html, "topup") and " 3 none" in section(html, "topup")
