"""The admin page at ``/admin``: find a user, see their account, history and holds, release a hold.

Why it looks like this:

* Server-rendered HTML (Jinja2, autoescaped) with inline CSS and an inline SVG
  chart: it works with no internet, loads nothing from anywhere, runs no script.
* Sign-in takes an API key with the ``admin`` scope once and keeps a session
  cookie: ``<key id>.<expiry>.<HMAC>``, signed with a secret kept in Redis
  (``credits:http:session-secret``, made once), so every worker process and a
  restart accept it; each request checks the key still exists, so revoking
  the key ends its sessions. The cookie is HttpOnly, SameSite=Strict, Secure
  over HTTPS, and scoped to ``/admin``.
* Every form that changes something (release, sign-out) carries a CSRF token:
  an HMAC of the session, checked in constant time, plus an ``Origin`` check
  when the browser sends one. SameSite=Strict alone already keeps other sites'
  forms from carrying the cookie; the token also covers old browsers.
* The user page shows what the user is configured with, next to what they
  hold: lots, allowances (the period granted last and what it granted), spend
  limits (used of amount in the current window), alerts (whether the balance is
  below each now) and auto top-up (on or off, the open request, failed
  payments), so "why was this refused?" and "why did top-up stop?" are
  answered on one page. They are read only here; changes go through the API
  or the CLI, which check and log them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from credits import limits
from credits.aio import AsyncCredits
from credits.errors import CreditsError, ReservationClosedError, ReservationNotFoundError
from credits.http import keys
from credits.http.chart import Point, balance_chart
from credits.http.routes import transaction_page
from credits.keys import PREFIX, parse_reservation_id
from credits.protocol import Command, Steps
from credits.transport import drive_async

SESSION_COOKIE: Final = "credits_admin"
SECRET_KEY: Final = f"{PREFIX}:http:session-secret"
SECRET_BYTES: Final = 32
ADMIN_PATH: Final = "/admin"
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin: the browser sends Origin on our own form posts (no-referrer makes it "null").
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

router = APIRouter(prefix=ADMIN_PATH, include_in_schema=False)
templates = Environment(
    loader=PackageLoader("credits.http", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


class LoginRequired(Exception):
    """No valid admin session: the page answers with a redirect to the sign-in form."""


class CsrfRefused(Exception):
    """A form post without a valid CSRF token or from another origin."""


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    cookie: str
    csrf: str


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(when=_when, json=_json, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _secret_steps() -> Steps[str]:
    yield Command(("SET", SECRET_KEY, secrets.token_hex(SECRET_BYTES), "NX"))
    value = yield Command(("GET", SECRET_KEY))
    return str(value)


async def _secret(request: Request) -> bytes:
    state = request.app.state
    cached: bytes | None = getattr(state, "session_secret", None)
    if cached is None:
        cached = (await drive_async(_secret_steps(), state.execute)).encode()
        state.session_secret = cached
    return cached


def _sign(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def _csrf_of(secret: bytes, cookie: str) -> str:
    return _sign(secret, "csrf." + cookie)


async def session_of(request: Request) -> Session:
    """The signed-in admin, or :class:`LoginRequired`; the key must still exist and be admin."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    key_id, _, rest = cookie.partition(".")
    expires, _, signature = rest.partition(".")
    if not key_id or not expires.isdigit() or int(expires) < time.time():
        raise LoginRequired
    secret = await _secret(request)
    if not hmac.compare_digest(_sign(secret, f"{key_id}.{expires}"), signature):
        raise LoginRequired
    if len(key_id) != 2 * keys.KEY_ID_BYTES:
        raise LoginRequired
    key = await drive_async(keys.get_key(key_id), request.app.state.execute)
    if key is None or not key.allows("admin"):
        raise LoginRequired
    return Session(key_id=key_id, cookie=cookie, csrf=_csrf_of(secret, cookie))


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form (the only kind these pages send); one value per field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body, max_num_fields=8).items()}


def _check_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise CsrfRefused


async def _checked_form(request: Request, session: Session) -> dict[str, str]:
    _check_origin(request)
    form = await _form(request)
    if not hmac.compare_digest(form.get("csrf_token", ""), session.csrf):
        raise CsrfRefused
    return form


def _user_url(user_id: str) -> str:
    return f"{ADMIN_PATH}/users/{quote(user_id, safe='')}"


def _ledger(request: Request) -> AsyncCredits:
    ledger: AsyncCredits = request.app.state.ledger
    return ledger


# --------------------------------------------------------------------------- sign-in


@router.get("/login")
async def login_form(request: Request) -> Response:
    return render("login.html", session=None, problem=None)


@router.post("/login")
async def login(request: Request) -> Response:
    _check_origin(request)
    token = (await _form(request)).get("key", "").strip()
    key = await drive_async(keys.authenticate(token), request.app.state.execute)
    if key is None or not key.allows("admin"):
        problem = "That is not an admin API key." if key else "Unknown API key."
        return render("login.html", status=403, session=None, problem=problem)
    expires = int(time.time()) + limits.ADMIN_SESSION_TTL_S
    secret = await _secret(request)
    cookie = f"{key.id}.{expires}.{_sign(secret, f'{key.id}.{expires}')}"
    response = RedirectResponse(ADMIN_PATH, status_code=303, headers=SECURITY_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=limits.ADMIN_SESSION_TTL_S,
        path=ADMIN_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    await _checked_form(request, await session_of(request))
    response = RedirectResponse(f"{ADMIN_PATH}/login", status_code=303, headers=SECURITY_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path=ADMIN_PATH)
    return response


# --------------------------------------------------------------------------- pages


@router.get("")
@router.get("/")
async def index(request: Request, user: str | None = None) -> Response:
    session = await session_of(request)
    if user:
        return RedirectResponse(_user_url(user), status_code=303)
    return render("search.html", session=session)


async def _chart_points(ledger: AsyncCredits, user_id: str, created_at: int) -> list[Point]:
    """Balance and held at evenly spaced instants from creation to now (exact, bounded)."""
    now = max(int(time.time() * 1000), created_at + 1)
    count = limits.ADMIN_CHART_POINTS
    instants = [created_at + (now - created_at) * i // (count - 1) for i in range(count)]
    readings = await asyncio.gather(*(ledger.balance_at(user_id, at) for at in instants))
    return [Point(at_ms=r.at, balance=r.balance, held=r.held) for r in readings]


@router.get("/users/{user_id:path}")
async def user_page(
    request: Request,
    user_id: str,
    before: str | None = None,
    released: str | None = None,
    failed: str | None = None,
) -> Response:
    session = await session_of(request)
    ledger = _ledger(request)
    try:
        account = await ledger.get_account(user_id)
        page = await transaction_page(
            ledger, user_id, limit=limits.ADMIN_HISTORY_PAGE_EVENTS, before=before
        )
        holds = await ledger.list_reservations(user_id, "open", limit=limits.ADMIN_HOLDS_SHOWN_MAX)
        lots = await ledger.list_lots(user_id)
        allowances, spend_limits, alerts, topup = await asyncio.gather(
            ledger.list_allowances(user_id),
            ledger.list_limits(user_id),
            ledger.list_alerts(user_id),
            ledger.get_auto_topup(user_id),
        )
        points = (
            await _chart_points(ledger, user_id, account.created_at)
            if account.created_at is not None
            else []
        )
    except CreditsError as exc:
        return render(
            "search.html", status=422, session=session, problem=f"{type(exc).__name__}: {exc}"
        )
    problems = {
        "closed": "That hold is already closed.",
        "not_found": "No such hold.",
        "error": "The release failed; nothing changed.",
    }
    return render(
        "user.html",
        session=session,
        account=account,
        page=page,
        holds=holds,
        lots=lots,
        allowances=allowances,
        spend_limits=spend_limits,
        alerts=alerts,
        topup=topup,
        chart=balance_chart(points),
        before=before,
        user_url=_user_url(user_id),
        released=released if released and parse_reservation_id(released) else None,
        problem=problems.get(failed or ""),
    )


@router.post("/reservations/release")
async def release(request: Request) -> Response:
    session = await session_of(request)
    form = await _checked_form(request, session)
    reservation_id = form.get("reservation_id", "")
    parsed = parse_reservation_id(reservation_id) if reservation_id else None
    user_id = parsed.user_id if parsed is not None else form.get("user_id", "")
    back = _user_url(user_id) if user_id else ADMIN_PATH
    try:
        reason = f"released from the admin page (key {session.key_id})"
        await _ledger(request).release(reservation_id, reason)
    except ReservationClosedError:
        return RedirectResponse(f"{back}?failed=closed", status_code=303)
    except ReservationNotFoundError:
        return RedirectResponse(f"{back}?failed=not_found", status_code=303)
    except CreditsError:
        return RedirectResponse(f"{back}?failed=error", status_code=303)
    return RedirectResponse(f"{back}?released={quote(reservation_id, safe='')}", status_code=303)
