"""The admin page over real HTTP: sign-in, escaping, paging, release, and its CSRF defences.

The same page in a real headless browser is ``test_admin_browser.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from urllib.parse import quote

import httpx
import pytest
from http_rig import Served, make_key, serve

from credits import Credits
from credits.http import keys
from credits.http.admin import SESSION_COOKIE
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
def admin_token(client: Credits) -> Iterator[str]:
    token = make_key(client, "admin", "admin-page-test")
    yield token
    key_id = keys.key_id_of(token)
    assert key_id is not None
    drive(keys.revoke_key(key_id), blocking_executor(client.redis))


@contextmanager
def signed_in(served: Served, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, timeout=10) as browser:
        answer = browser.post("/admin/login", data={"key": token})
        assert answer.status_code == 303, answer.text
        yield browser


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page)
    assert match is not None, "the page has no CSRF token"
    return match[1]


def user_page(browser: httpx.Client, user: str) -> httpx.Response:
    return browser.get(f"/admin/users/{quote(user, safe='')}")


def test_pages_need_an_admin_sign_in(served: Served, client: Credits) -> None:
    with httpx.Client(base_url=served.base_url) as anonymous:
        first = anonymous.get("/admin")
        assert first.status_code == 303 and first.headers["location"] == "/admin/login"
        assert anonymous.get("/admin/users/anyone").status_code == 303
        form = anonymous.get("/admin/login")
        assert form.status_code == 200 and 'name="key"' in form.text
        reader = make_key(client, "read", "not-admin")
        refused = anonymous.post("/admin/login", data={"key": reader})
        assert refused.status_code == 403 and "not an admin API key" in refused.text
        assert anonymous.post("/admin/login", data={"key": "garbage"}).status_code == 403
        key_id = keys.key_id_of(reader)
        assert key_id is not None
        drive(keys.revoke_key(key_id), blocking_executor(client.redis))


def test_the_session_cookie_is_strict_and_signed(served: Served, admin_token: str) -> None:
    with httpx.Client(base_url=served.base_url) as browser:
        answer = browser.post("/admin/login", data={"key": admin_token})
        cookie = answer.headers["set-cookie"].lower()
        for flag in ("httponly", "samesite=strict", "path=/admin"):
            assert flag in cookie
        assert admin_token.lower() not in cookie
        assert browser.get("/admin").status_code == 200
        value = browser.cookies[SESSION_COOKIE]
        browser.cookies.set(SESSION_COOKIE, value[:-1] + ("0" if value[-1] != "0" else "1"))
        assert browser.get("/admin").status_code == 303  # a tampered signature signs nobody in


def test_user_page_shows_account_chart_history_and_holds(
    served: Served, admin_token: str, client: Credits, user_id: str
) -> None:
    hostile = f"<script>alert(1)</script>{user_id}"
    client.add(hostile, 500, "purchase", {"note": "<b>bold</b>"})
    client.deduct(hostile, 10, "refund [/]")
    hold = client.reserve(hostile, 120, "video_generation", ttl=600)
    with signed_in(served, admin_token) as browser:
        found = browser.get("/admin", params={"user": hostile})
        assert found.status_code == 303
        page = browser.get(found.headers["location"])
    assert page.status_code == 200
    html = page.text
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "refund [/]" in html
    assert 'id="balance">370<' in html and 'id="held">120<' in html
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in html and 'class="balance"' in html
    assert escape(hold.id) in html and "Release" in html
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert not re.search(r"""(src|href)=["']https?://""", html), "nothing is fetched from outside"


def test_history_pages_with_a_cursor(
    served: Served, admin_token: str, client: Credits, user_id: str
) -> None:
    client.add(user_id, 1000, "purchase")
    for i in range(55):
        client.deduct(user_id, 1, "chat_message", {"i": i})
    with signed_in(served, admin_token) as browser:
        first = user_page(browser, user_id).text
        older = re.search(r'href="([^"]+)" id="older"', first)
        assert older is not None
        second = browser.get(older[1].replace("&amp;", "&")).text
    every = [tx.tx_id for tx in client.get_transactions(user_id, limit=100)]
    shown = [tx for tx in every if tx in first]
    assert shown == every[:50]
    assert [tx for tx in every if tx in second] == every[50:]
    assert 'id="older"' not in second and 'id="newest"' in second


def test_release_needs_the_csrf_token_and_our_origin(
    served: Served, admin_token: str, client: Credits, user_id: str
) -> None:
    client.add(user_id, 100, "purchase")
    hold = client.reserve(user_id, 40, "training_job", ttl=600)
    with signed_in(served, admin_token) as browser:
        token = csrf_of(user_page(browser, user_id).text)
        form = {"reservation_id": hold.id, "user_id": user_id}
        assert browser.post("/admin/reservations/release", data=form).status_code == 403
        forged = {**form, "csrf_token": "0" * 64}
        assert browser.post("/admin/reservations/release", data=forged).status_code == 403
        elsewhere = browser.post(
            "/admin/reservations/release",
            data={**form, "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert elsewhere.status_code == 403
        assert client.get_reservation(hold.id).status == "open"

        done = browser.post("/admin/reservations/release", data={**form, "csrf_token": token})
        assert done.status_code == 303
        after = browser.get(done.headers["location"])
    assert client.get_reservation(hold.id).status == "released"
    assert client.get_account(user_id).balance == 100
    assert "Released" in after.text and 'id="no-holds"' in after.text


def test_revoking_the_key_ends_its_sessions(served: Served, client: Credits, user_id: str) -> None:
    token = make_key(client, "admin", "short-lived")
    with signed_in(served, token) as browser:
        assert user_page(browser, user_id).status_code == 200
        key_id = keys.key_id_of(token)
        assert key_id is not None
        drive(keys.revoke_key(key_id), blocking_executor(client.redis))
        assert user_page(browser, user_id).status_code == 303


def test_another_process_accepts_the_session(
    redis_url: str, served: Served, admin_token: str, user_id: str
) -> None:
    """The signing secret lives in Redis: a second worker process (or a restart) signs alike."""
    with signed_in(served, admin_token) as browser, serve(redis_url) as other:
        cookie = browser.cookies[SESSION_COOKIE]
        with httpx.Client(base_url=other.base_url, cookies={SESSION_COOKIE: cookie}) as again:
            assert user_page(again, user_id).status_code == 200
