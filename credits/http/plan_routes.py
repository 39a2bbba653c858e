"""The JSON API of plans under ``/v1``: allowances, spend limits, alerts, auto top-up.

Each plan entry is a resource of its user, addressed by its name:
``GET /v1/users/{user_id}/allowances`` lists them, ``PUT .../allowances/{name}``
sets one (its whole terms; repeating the same ``PUT`` leaves the same state,
so it needs no ``Idempotency-Key``: no second grant, one open top-up request at
most, though re-setting an alert while the balance is below it sends
``balance.below`` again), ``DELETE .../allowances/{name}`` removes it (204, or
404 when it was not set). Auto top-up is one resource per user
(``GET``/``PUT``/``DELETE .../auto-topup``). ``POST /v1/topups/{topup_id}/confirm``
is the app's answer to a ``topup.requested`` event, applied once per
``topup_id`` by the ledger itself, so a payment webhook delivered twice grants
once and gets the first answer.

Reads need the ``read`` scope, changes ``write``, as for the ledger's routes.
The ledger checks every input again (a name, a scope, a target under the
threshold: 422, nothing written); the bounds are repeated in the schemas so
the OpenAPI document and the TypeScript client know them.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from credits import limits
from credits.http.errors import PlanNotFound, responses
from credits.http.routes import READ_ERRORS, Reader, Writer, _ledger, _query, _timed
from credits.http.schemas import (
    AlertBody,
    AllowanceBody,
    AutoTopupBody,
    ConfirmTopupBody,
    LimitBody,
)
from credits.models import Alert, Allowance, AutoTopup, SpendLimit, TopupConfirmation

router = APIRouter(prefix="/v1", tags=["plans"])

PLAN_WRITE_ERRORS: Final = responses(401, 403, 404, 409, 413, 422, 429, 503)
REMOVE_ANSWERS: Final[dict[int | str, dict[str, Any]]] = {
    204: {"description": "removed"},
    **responses(401, 403, 404, 409, 422, 503),
}

Name = Annotated[
    str,
    Path(
        min_length=1,
        max_length=limits.PLAN_NAME_CHARS_MAX,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="the entry's name: ASCII letters, digits and _-.:",
    ),
]


def _removed(found: bool, kind: str, user_id: str, name: str | None = None) -> Response:
    if not found:
        raise PlanNotFound(kind, user_id, name)
    return Response(status_code=204)


# --------------------------------------------------------------------------- allowances


@router.get(
    "/users/{user_id}/allowances",
    response_model=list[Allowance],
    responses=READ_ERRORS,
    dependencies=_query(),
)
async def list_allowances(request: Request, user_id: str, _: Reader) -> list[Allowance]:
    """The user's allowances by name, each with the period it granted last."""
    return await _timed(request, "list_allowances", _ledger(request).list_allowances(user_id))


@router.put(
    "/users/{user_id}/allowances/{name}",
    response_model=Allowance,
    responses=PLAN_WRITE_ERRORS,
    dependencies=_query(),
)
async def set_allowance(
    request: Request, user_id: str, name: Name, body: AllowanceBody, _: Writer
) -> Allowance:
    """Grant ``amount`` every period; a change applies from the next period unless ``now``."""
    return await _timed(
        request,
        "set_allowance",
        _ledger(request).set_allowance(
            user_id,
            name,
            body.amount,
            every=body.every,
            anchor=body.anchor,
            rollover_max=body.rollover_max,
            priority=body.priority,
            scope=body.scope,
            effective=body.effective,
        ),
    )


@router.delete(
    "/users/{user_id}/allowances/{name}",
    status_code=204,
    response_class=Response,
    responses=REMOVE_ANSWERS,
    dependencies=_query(),
)
async def remove_allowance(request: Request, user_id: str, name: Name, _: Writer) -> Response:
    """Stop an allowance; the lot of its current period is left to expire."""
    found = await _timed(
        request, "remove_allowance", _ledger(request).remove_allowance(user_id, name)
    )
    return _removed(found, "allowance", user_id, name)


# --------------------------------------------------------------------------- spend limits


@router.get(
    "/users/{user_id}/limits",
    response_model=list[SpendLimit],
    responses=READ_ERRORS,
    dependencies=_query(),
)
async def list_limits(request: Request, user_id: str, _: Reader) -> list[SpendLimit]:
    """The user's spend limits by name, with what the current window has used."""
    return await _timed(request, "list_limits", _ledger(request).list_limits(user_id))


@router.put(
    "/users/{user_id}/limits/{name}",
    response_model=SpendLimit,
    responses=PLAN_WRITE_ERRORS,
    dependencies=_query(),
)
async def set_limit(
    request: Request, user_id: str, name: Name, body: LimitBody, _: Writer
) -> SpendLimit:
    """At most ``amount`` charged or held per UTC window; a change keeps what it has used."""
    return await _timed(
        request,
        "set_limit",
        _ledger(request).set_limit(user_id, name, body.amount, every=body.every, scope=body.scope),
    )


@router.delete(
    "/users/{user_id}/limits/{name}",
    status_code=204,
    response_class=Response,
    responses=REMOVE_ANSWERS,
    dependencies=_query(),
)
async def remove_limit(request: Request, user_id: str, name: Name, _: Writer) -> Response:
    """Drop a spend limit."""
    found = await _timed(request, "remove_limit", _ledger(request).remove_limit(user_id, name))
    return _removed(found, "limit", user_id, name)


# --------------------------------------------------------------------------- alerts


@router.get(
    "/users/{user_id}/alerts",
    response_model=list[Alert],
    responses=READ_ERRORS,
    dependencies=_query(),
)
async def list_alerts(request: Request, user_id: str, _: Reader) -> list[Alert]:
    """The user's balance alerts by name, and whether the balance is below each now."""
    return await _timed(request, "list_alerts", _ledger(request).list_alerts(user_id))


@router.put(
    "/users/{user_id}/alerts/{name}",
    response_model=Alert,
    responses=PLAN_WRITE_ERRORS,
    dependencies=_query(),
)
async def set_alert(
    request: Request, user_id: str, name: Name, body: AlertBody, _: Writer
) -> Alert:
    """``balance.below`` once per crossing down, ``balance.recovered`` once back up."""
    return await _timed(
        request, "set_alert", _ledger(request).set_alert(user_id, name, below=body.below)
    )


@router.delete(
    "/users/{user_id}/alerts/{name}",
    status_code=204,
    response_class=Response,
    responses=REMOVE_ANSWERS,
    dependencies=_query(),
)
async def remove_alert(request: Request, user_id: str, name: Name, _: Writer) -> Response:
    """Drop an alert."""
    found = await _timed(request, "remove_alert", _ledger(request).remove_alert(user_id, name))
    return _removed(found, "alert", user_id, name)


# --------------------------------------------------------------------------- auto top-up


@router.get(
    "/users/{user_id}/auto-topup",
    response_model=AutoTopup,
    responses=READ_ERRORS,
    dependencies=_query(),
)
async def get_auto_topup(request: Request, user_id: str, _: Reader) -> AutoTopup:
    """The user's auto top-up and its state (open request, failures); 404 when not set."""
    found = await _timed(request, "get_auto_topup", _ledger(request).get_auto_topup(user_id))
    if found is None:
        raise PlanNotFound("auto top-up", user_id)
    return found


@router.put(
    "/users/{user_id}/auto-topup",
    response_model=AutoTopup,
    responses=PLAN_WRITE_ERRORS,
    dependencies=_query(),
)
async def set_auto_topup(
    request: Request, user_id: str, body: AutoTopupBody, _: Writer
) -> AutoTopup:
    """Ask the app to charge the user (``topup.requested``) when the balance falls below.

    Setting it again switches it back on after failures; a balance already
    below asks at once.
    """
    return await _timed(
        request,
        "set_auto_topup",
        _ledger(request).set_auto_topup(
            user_id,
            below=body.below,
            amount=body.amount,
            target=body.target,
            max_per_month=body.max_per_month,
        ),
    )


@router.delete(
    "/users/{user_id}/auto-topup",
    status_code=204,
    response_class=Response,
    responses=REMOVE_ANSWERS,
    dependencies=_query(),
)
async def remove_auto_topup(request: Request, user_id: str, _: Writer) -> Response:
    """Switch auto top-up off (``topup.disabled``)."""
    found = await _timed(request, "remove_auto_topup", _ledger(request).remove_auto_topup(user_id))
    return _removed(found, "auto top-up", user_id)


@router.post(
    "/topups/{topup_id}/confirm",
    response_model=TopupConfirmation,
    responses=PLAN_WRITE_ERRORS,
    dependencies=_query(),
)
async def confirm_topup(
    request: Request, topup_id: str, body: ConfirmTopupBody, _: Writer
) -> TopupConfirmation:
    """Whether the payment for a ``topup.requested`` went through; applied once per id.

    Paid: a ``paid`` lot of ``amount`` (default: the requested amount). Not paid:
    the request closes; three failures in a row switch auto top-up off. Every
    repeat returns the first confirmation. 404 for an id that is not open.
    """
    return await _timed(
        request,
        "confirm_topup",
        _ledger(request).confirm_topup(topup_id, paid=body.paid, amount=body.amount),
    )
