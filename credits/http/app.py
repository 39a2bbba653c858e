"""The ASGI app: ``create_app()`` for tests and ``credits serve``; ``credits.http:app`` for uvicorn.

What is mounted: the JSON API (:mod:`credits.http.routes`, and the plans'
:mod:`credits.http.plan_routes`) under ``/v1``, the
admin page (:mod:`credits.http.admin`) under ``/admin``, ``GET /healthz``
(open, for load balancers: 200 when Redis answers, 503 otherwise),
``GET /metrics`` (Prometheus; a key with the ``read`` scope) and the OpenAPI
schema at ``/openapi.json`` (docs at ``/docs``).

The ledger client is an :class:`~credits.aio.AsyncCredits` made when the app
starts (its lifespan), from ``url`` or the ``CREDITS_*`` settings, and closed
when it stops; every request shares it (one connection pool per process).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Final

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credits import limits
from credits.aio import AsyncCredits
from credits.errors import CreditsError
from credits.http import admin, errors, plan_routes, routes
from credits.http.auth import KeyCache, require
from credits.http.keys import ApiKey
from credits.http.metrics import LedgerMetrics
from credits.http.schemas import Health
from credits.protocol import Command, Steps
from credits.transport import async_executor, drive_async

API_VERSION: Final = "1.0.0"
PROMETHEUS_CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"


class BodyLimit:
    """Refuses a request body past ``limit`` bytes with 413, before the app reads it whole.

    A declared ``Content-Length`` over the bound is refused at once; a chunked
    body is counted as it arrives.
    """

    def __init__(self, app: ASGIApp, limit: int = limits.HTTP_BODY_BYTES_MAX) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(scope, receive, send)
            return
        seen = 0
        refused = False

        async def counted() -> Message:
            # Past the bound: answer 413 at once, then tell the app the client left.
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await self._too_large(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not refused:
                raise

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors.error_response(
            413, "payload_too_large", f"request bodies are at most {self.limit} bytes"
        )
        await response(scope, receive, send)


def _ping() -> Steps[None]:
    yield Command(("PING",))


def create_app(url: str | None = None, *, cluster: bool | None = None) -> FastAPI:
    """The whole HTTP surface over the ledger at ``url`` (None: ``CREDITS_REDIS_URL``)."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        ledger = AsyncCredits(url, cluster=cluster)
        api.state.ledger = ledger
        api.state.execute = async_executor(ledger.redis)
        try:
            yield
        finally:
            await ledger.aclose()

    api = FastAPI(
        title="credits",
        version=API_VERSION,
        summary="A credits ledger for metered AI apps: balances, holds, an auditable log.",
        description=(
            "Authenticate with `Authorization: Bearer <key>` (`credits keys create`). "
            "Errors are `{error, message, ...fields}`; 402 carries `required` and "
            "`available`. Repeat a write with the same `Idempotency-Key` and it applies once."
        ),
        lifespan=lifespan,
    )
    api.state.key_cache = KeyCache()
    api.state.metrics = LedgerMetrics()
    errors.install(api)
    api.include_router(routes.router)
    api.include_router(plan_routes.router)
    api.include_router(admin.router)

    @api.exception_handler(admin.LoginRequired)
    async def to_login(request: Request, exc: admin.LoginRequired) -> Response:
        return RedirectResponse(f"{admin.ADMIN_PATH}/login", status_code=303)

    @api.exception_handler(admin.CsrfRefused)
    async def csrf_refused(request: Request, exc: admin.CsrfRefused) -> Response:
        return PlainTextResponse(
            "refused: this form did not come from this admin page (CSRF check failed)",
            status_code=403,
            headers=admin.SECURITY_HEADERS,
        )

    @api.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz(request: Request) -> JSONResponse:
        """200 when Redis answers (no key needed), 503 when it does not."""
        try:
            await drive_async(_ping(), request.app.state.execute)
        except CreditsError as exc:
            return JSONResponse(
                status_code=503, content={"status": "unavailable", "store": type(exc).__name__}
            )
        return JSONResponse({"status": "ok", "store": "ok"})

    @api.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={
            200: {"content": {PROMETHEUS_CONTENT_TYPE: {"schema": {"type": "string"}}}},
            **errors.responses(401, 403, 503),
        },
    )
    async def metrics(request: Request, _: Annotated[ApiKey, Depends(require("read"))]) -> Response:
        """Prometheus text: ledger figures and this process's call latency (a read key)."""
        state = request.app.state
        await state.metrics.refresh(state.execute)
        return Response(state.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    api.add_middleware(BodyLimit)
    return api
