"""The JSON API under ``/v1``: one route per ledger operation an app needs.

Each route checks the key's scope (reads: ``read``; writes: ``write``), calls
the ledger once (timed for the metrics) and returns the ledger's own model;
failures are answered by :mod:`credits.http.errors`. ``Idempotency-Key`` is
the ledger's own idempotency key on deduct, add and reserve: it is claimed by
the same script call that applies the write, so a retry of a request whose
answer was lost applies once and gets the first answer. Initialize, settle,
release and extend are idempotent by their user or reservation id and take no key.

Paths take ``{user_id}`` / ``{reservation_id}`` so that ids with a
``/`` still route; the longer routes (``.../transactions``) are declared
first, which leaves ``GET /v1/users/<id ending in /transactions>`` as the one
spelling that means the transactions, not the account.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Header, Query, Request

from credits import limits
from credits.aio import AsyncCredits
from credits.http.auth import require
from credits.http.errors import known_query, responses
from credits.http.keys import ApiKey
from credits.http.metrics import LedgerMetrics
from credits.http.schemas import (
    AddBody,
    ExtendBody,
    InitializeBody,
    MoveBody,
    ReleaseBody,
    ReserveBody,
    SettleBody,
    TransactionPage,
    UserView,
)
from credits.models import Reservation, ReservationStatus, Settlement, TxResult

T = TypeVar("T")

router = APIRouter(prefix="/v1")


def _query(*names: str) -> list[Any]:
    return [Depends(known_query(*names))]


Reader = Annotated[ApiKey, Depends(require("read"))]
Writer = Annotated[ApiKey, Depends(require("write"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=limits.IDEMPOTENCY_KEY_CHARS_MAX,
        description="repeat the request with the same key: it applies once (kept 48 h)",
    ),
]
READ_ERRORS = responses(401, 403, 404, 413, 422, 503)
WRITE_ERRORS = responses(401, 402, 403, 404, 409, 413, 422, 429, 503)


def _ledger(request: Request) -> AsyncCredits:
    ledger: AsyncCredits = request.app.state.ledger
    return ledger


async def _timed(request: Request, operation: str, call: Awaitable[T]) -> T:
    metrics: LedgerMetrics = request.app.state.metrics
    return await metrics.timed(operation, call)


async def transaction_page(
    ledger: AsyncCredits,
    user_id: str,
    *,
    limit: int,
    start_time: int | None = None,
    end_time: int | None = None,
    before: str | None = None,
) -> TransactionPage:
    """A page and whether an older one exists (asking one more when the bound allows)."""
    ask = min(limit + 1, limits.TRANSACTIONS_LIMIT_MAX)
    found = await ledger.get_transactions(
        user_id, limit=ask, start_time=start_time, end_time=end_time, before=before
    )
    page = found[:limit]
    has_more = len(found) > limit or (ask == limit and len(found) == limit)
    return TransactionPage(
        data=page, has_more=has_more, next_before=page[-1].tx_id if has_more and page else None
    )


# --------------------------------------------------------------------------- users


@router.get(
    "/users/{user_id}/transactions",
    dependencies=_query("limit", "start_time", "end_time", "before"),
    response_model=TransactionPage,
    responses=READ_ERRORS,
)
async def get_transactions(
    request: Request,
    user_id: str,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=limits.TRANSACTIONS_LIMIT_MAX)] = (
        limits.TRANSACTIONS_LIMIT_DEFAULT
    ),
    start_time: Annotated[
        int | None, Query(ge=0, le=limits.AMOUNT_MAX, description="Unix ms, inclusive")
    ] = None,
    end_time: Annotated[
        int | None, Query(ge=0, le=limits.AMOUNT_MAX, description="Unix ms, inclusive")
    ] = None,
    before: Annotated[
        str | None,
        Query(
            max_length=40,
            pattern=r"^(0|[1-9][0-9]{0,15})-(0|[1-9][0-9]{0,19})$",
            description="a tx_id: only older transactions (exclusive)",
        ),
    ] = None,
) -> TransactionPage:
    """A page of the user's transactions, newest first."""
    return await _timed(
        request,
        "get_transactions",
        transaction_page(
            _ledger(request),
            user_id,
            limit=limit,
            start_time=start_time,
            end_time=end_time,
            before=before,
        ),
    )


@router.get(
    "/users/{user_id}/reservations",
    dependencies=_query("status", "limit"),
    response_model=list[Reservation],
    responses=READ_ERRORS,
)
async def list_reservations(
    request: Request,
    user_id: str,
    _: Reader,
    status: ReservationStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=limits.RESERVATIONS_LIST_LIMIT_MAX)] = 100,
) -> list[Reservation]:
    """The user's holds: open ones soonest-expiring first, then closed ones."""
    return await _timed(
        request,
        "list_reservations",
        _ledger(request).list_reservations(user_id, status, limit=limit),
    )


@router.post(
    "/users/{user_id}/initialize",
    response_model=TxResult,
    responses=WRITE_ERRORS,
    dependencies=_query(),
)
async def initialize(
    request: Request,
    user_id: str,
    _: Writer,
    body: Annotated[InitializeBody | None, Body()] = None,
) -> TxResult:
    """Grant a new user their starting credits, once (a second call returns the first result)."""
    given = body or InitializeBody()
    return await _timed(
        request,
        "initialize_user",
        _ledger(request).initialize_user(user_id, given.credits, given.metadata),
    )


@router.post(
    "/users/{user_id}/deduct",
    response_model=TxResult,
    responses=WRITE_ERRORS,
    dependencies=_query(),
)
async def deduct(
    request: Request,
    user_id: str,
    body: MoveBody,
    _: Writer,
    idempotency_key: IdempotencyKey = None,
) -> TxResult:
    """Charge credits now, atomically; 402 with ``required`` and ``available`` when short."""
    return await _timed(
        request,
        "deduct",
        _ledger(request).deduct(
            user_id, body.amount, body.action, body.metadata, idempotency_key=idempotency_key
        ),
    )


@router.post(
    "/users/{user_id}/add", response_model=TxResult, responses=WRITE_ERRORS, dependencies=_query()
)
async def add(
    request: Request,
    user_id: str,
    body: AddBody,
    _: Writer,
    idempotency_key: IdempotencyKey = None,
) -> TxResult:
    """Credit a purchase, grant or refund as a new lot; creates the account if new."""
    return await _timed(
        request,
        "add",
        _ledger(request).add(
            user_id,
            body.amount,
            body.action,
            body.metadata,
            idempotency_key=idempotency_key,
            expires_at=body.expires_at,
            expires_in=body.expires_in,
            effective_at=body.effective_at,
            priority=body.priority,
            category=body.category,
            scope=body.scope,
        ),
    )


@router.post(
    "/users/{user_id}/reserve",
    response_model=Reservation,
    responses=WRITE_ERRORS,
    dependencies=_query(),
)
async def reserve(
    request: Request,
    user_id: str,
    body: ReserveBody,
    _: Writer,
    idempotency_key: IdempotencyKey = None,
) -> Reservation:
    """Hold credits for a metered job until it is settled, released or expires."""
    return await _timed(
        request,
        "reserve",
        _ledger(request).reserve(
            user_id,
            body.amount,
            body.action,
            ttl=body.ttl,
            metadata=body.metadata,
            idempotency_key=idempotency_key,
        ),
    )


@router.get(
    "/users/{user_id}", response_model=UserView, responses=READ_ERRORS, dependencies=_query()
)
async def get_user(request: Request, user_id: str, _: Reader) -> UserView:
    """Balance, held credits and lots (zeros and none for a user never seen)."""
    account = await _timed(request, "get_account", _ledger(request).get_account(user_id))
    lots = await _timed(request, "list_lots", _ledger(request).list_lots(user_id))
    return UserView(
        user_id=account.user_id,
        balance=account.balance,
        held=account.held,
        created_at=account.created_at,
        lots=lots,
    )


# --------------------------------------------------------------------------- reservations


@router.post(
    "/reservations/{reservation_id}/settle",
    response_model=Settlement,
    responses=WRITE_ERRORS,
    dependencies=_query(),
)
async def settle(request: Request, reservation_id: str, body: SettleBody, _: Writer) -> Settlement:
    """Charge a held job's actual cost, once; a repeat returns the first Settlement."""
    return await _timed(
        request,
        "settle",
        _ledger(request).settle(reservation_id, body.actual_amount, body.metadata),
    )


@router.post(
    "/reservations/{reservation_id}/release",
    response_model=Settlement,
    responses=WRITE_ERRORS,
    dependencies=_query(),
)
async def release(
    request: Request,
    reservation_id: str,
    _: Writer,
    body: Annotated[ReleaseBody | None, Body()] = None,
) -> Settlement:
    """Close a hold without charging; all of it returns to the balance."""
    reason = body.reason if body is not None else None
    return await _timed(request, "release", _ledger(request).release(reservation_id, reason))


@router.post(
    "/reservations/{reservation_id}/extend",
    response_model=Reservation,
    responses=WRITE_ERRORS,
    dependencies=_query(),
)
async def extend(request: Request, reservation_id: str, body: ExtendBody, _: Writer) -> Reservation:
    """Push an open hold's expiry to now + ttl (never earlier): a running job's heartbeat."""
    return await _timed(request, "extend", _ledger(request).extend(reservation_id, body.ttl))


@router.get(
    "/reservations/{reservation_id}",
    response_model=Reservation,
    responses=READ_ERRORS,
    dependencies=_query(),
)
async def get_reservation(request: Request, reservation_id: str, _: Reader) -> Reservation:
    """One hold, open or closed within its 30-day retention."""
    return await _timed(
        request, "get_reservation", _ledger(request).get_reservation(reservation_id)
    )
