"""Every error the HTTP API answers, as ``{"error": <code>, "message": ..., ...fields}``.

Why one table: an app in TypeScript branches on the status and the ``error``
code, never on prose, so each credits error maps to exactly one pair, and the
error's own data travels as fields (402 carries ``required`` and
``available``, as the seed's apps expect). The mapping is pinned in the README:

=======  ==========================  ==============================================
status   error                       from
=======  ==========================  ==============================================
401      ``unauthorized``            no, malformed or unknown API key
403      ``forbidden``               the key's scope is too low
402      ``insufficient_credits``    InsufficientCreditsError (required, available)
404      ``not_found``               ReservationNotFoundError, LotNotFoundError, TopupNotFoundError,
                                     no such plan entry (PlanNotFound), no route
405      ``method_not_allowed``      a method the path has no route for; ``Allow`` lists every one
409      ``lot_closed``              LotClosedError (a finished lot has nothing left to void)
409      ``idempotency_conflict``    IdempotencyConflictError (idempotency_key)
409      ``reservation_closed``      ReservationClosedError (reservation_id, status, operation)
409      ``account_needs_rebuild``   BalanceVerificationError (``credits verify --fix``)
413      ``payload_too_large``       a body over HTTP_BODY_BYTES_MAX
422      ``invalid_input``           InvalidInputError, PricingConfigError, a bad request
429      ``limit_exceeded``          LimitExceededError (limit, amount, used, requested)
503      ``store_unavailable``       StoreUnavailableError, with Retry-After: outcome unknown
503      ``store_refused``           StoreRefusedError: nothing applied, not worth retrying
=======  ==========================  ==============================================
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from credits.errors import (
    BalanceVerificationError,
    CreditsError,
    IdempotencyConflictError,
    InsufficientCreditsError,
    InvalidInputError,
    LimitExceededError,
    LotClosedError,
    LotNotFoundError,
    PricingConfigError,
    ReservationClosedError,
    ReservationNotFoundError,
    StoreRefusedError,
    StoreUnavailableError,
    TopupNotFoundError,
)

logger = logging.getLogger(__name__)

RETRY_AFTER_S: Final = 1
VALIDATION_ERRORS_SHOWN_MAX: Final = 5
HTTP_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class ErrorBody(BaseModel):
    """Every error: a stable code, words for people, and the error's own fields."""

    model_config = ConfigDict(extra="allow")

    error: str = Field(description="a stable code to branch on")
    message: str


class InsufficientCreditsBody(ErrorBody):
    required: int
    available: int


class LimitExceededBody(ErrorBody):
    limit: str
    amount: int
    used: int
    requested: int


class PlanNotFound(Exception):
    """A plan entry (an allowance, limit, alert or auto top-up) that is not set: 404.

    Not a credits error: the ledger answers ``False`` for removing what is not
    there (nothing to undo), and a read of an unset auto top-up is ``None``. Over
    HTTP, addressing a resource that does not exist is a 404, with the user and
    the name it looked for as fields.
    """

    def __init__(self, kind: str, user_id: str, name: str | None = None) -> None:
        super().__init__(kind, user_id, name)
        self.kind = kind
        self.user_id = user_id
        self.name = name

    def __str__(self) -> str:
        named = f" {self.name!r}" if self.name is not None else ""
        return f"no {self.kind}{named} is set for user {self.user_id!r}"


class ApiProblem(Exception):
    """An HTTP-level refusal (auth, size, routing) answered in the same shape as ledger errors."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


def error_response(
    http_status: int,
    error: str,
    message: str,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> JSONResponse:
    """The error shape; ``fields`` are the error's own data (``status`` may be one)."""
    return JSONResponse(
        status_code=http_status,
        content={"error": error, "message": message, **fields},
        headers=headers,
    )


def credits_error_response(exc: CreditsError) -> JSONResponse:
    """The one answer for each credits error (the table in the module docstring)."""
    message = str(exc)
    if isinstance(exc, InsufficientCreditsError):
        return error_response(
            402, "insufficient_credits", message, required=exc.required, available=exc.available
        )
    if isinstance(exc, IdempotencyConflictError):
        return error_response(
            409, "idempotency_conflict", message, idempotency_key=exc.idempotency_key
        )
    if isinstance(exc, ReservationClosedError):
        return error_response(
            409, "reservation_closed", message,
            reservation_id=exc.reservation_id, status=exc.status, operation=exc.operation,
        )  # fmt: skip
    if isinstance(exc, ReservationNotFoundError):
        return error_response(404, "not_found", message, reservation_id=exc.reservation_id)
    if isinstance(exc, LotNotFoundError):
        return error_response(404, "not_found", message, lot_id=exc.lot_id)
    if isinstance(exc, TopupNotFoundError):
        return error_response(404, "not_found", message, topup_id=exc.topup_id)
    if isinstance(exc, LotClosedError):
        return error_response(409, "lot_closed", message, lot_id=exc.lot_id, status=exc.status)
    if isinstance(exc, LimitExceededError):
        return error_response(
            429, "limit_exceeded", message,
            limit=exc.limit, amount=exc.amount, used=exc.used, requested=exc.requested,
        )  # fmt: skip
    if isinstance(exc, InvalidInputError | PricingConfigError):
        return error_response(422, "invalid_input", message)
    if isinstance(exc, BalanceVerificationError):
        return error_response(409, "account_needs_rebuild", message)
    if isinstance(exc, StoreUnavailableError):
        return error_response(
            503,
            "store_unavailable",
            "the store could not be reached: the outcome is unknown; "
            "repeat with the same Idempotency-Key or reservation id",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if isinstance(exc, StoreRefusedError):
        logger.error("the store refused a call: %s", exc)
        return error_response(503, "store_refused", "the store refused the call; nothing applied")
    logger.error("unmapped credits error %s: %s", type(exc).__name__, exc)
    return error_response(500, "internal", "an unexpected ledger error; nothing was applied")


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for problem in exc.errors()[:VALIDATION_ERRORS_SHOWN_MAX]:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body")
        parts.append(f"{where or 'body'}: {problem.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(api: FastAPI) -> None:
    """Answer every failure in the error shape, never with a framework default or a trace."""

    @api.exception_handler(CreditsError)
    async def on_credits_error(request: Request, exc: CreditsError) -> JSONResponse:
        return credits_error_response(exc)

    @api.exception_handler(ApiProblem)
    async def on_problem(request: Request, exc: ApiProblem) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.message, headers=exc.headers)

    @api.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_input", _validation_message(exc))

    @api.exception_handler(PlanNotFound)
    async def on_plan_not_found(request: Request, exc: PlanNotFound) -> JSONResponse:
        fields: dict[str, Any] = {"user_id": exc.user_id}
        if exc.name is not None:
            fields["name"] = exc.name
        return error_response(404, "not_found", str(exc), **fields)

    @api.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not JSON (or not UTF-8): bad input
            return error_response(422, "invalid_input", str(exc.detail))
        codes = {404: "not_found", 405: "method_not_allowed"}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=headers,
        )

    @api.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "an unexpected error")


def allowed_methods(request: Request) -> str:
    """Every method some route of the app takes on this path, for a 405's ``Allow``.

    Starlette answers a 405 with the methods of the first route whose path
    matched; a path served by several routes (``PUT`` and ``DELETE`` of
    ``/v1/users/{user_id}/allowances/{name}``) would then name only one, and a
    client that follows ``Allow`` would never find the other. So each method is
    tried against the whole router (included routers answer for their routes).
    """
    allowed = [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]
    return ", ".join(allowed)


def known_query(*names: str) -> Callable[[Request], Awaitable[None]]:
    """A dependency refusing unknown query parameters with 422.

    A misspelt filter (``startTime`` for ``start_time``, as the TypeScript SDK
    spelled it) must not be silently ignored: the answer would look right and
    be the wrong page.
    """
    allowed = frozenset(names)

    async def check(request: Request) -> None:  # async: a sync one would cost a thread hop
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise ApiProblem(
                422, "invalid_input", f"unknown query parameter {unknown[0]!r} (known: {known})"
            )

    return check


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route: each status with its error body's schema."""
    models: dict[int, type[ErrorBody]] = {402: InsufficientCreditsBody, 429: LimitExceededBody}
    described = {
        401: "no valid API key",
        402: "the balance does not cover the amount",
        403: "the key's scope does not allow this",
        404: "no such reservation, lot, top-up or plan entry (or route)",
        409: "idempotency conflict, closed reservation, or an account to rebuild",
        413: "body too large",
        422: "invalid input; nothing written",
        429: "a ledger limit would be passed",
        503: "store unavailable (outcome unknown; see Retry-After) or refused",
    }
    return {
        status: {"model": models.get(status, ErrorBody), "description": described[status]}
        for status in statuses
    }
