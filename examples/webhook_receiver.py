"""A FastAPI app that starts metered jobs and settles them from the provider's webhooks.

* ``POST /jobs/video`` reserves the estimated cost of a video before the job is
  sent to the provider; a balance that cannot cover it answers HTTP 402 with
  ``required`` and ``available`` (the seed's ``InsufficientCreditsError`` handling).
* ``POST /webhooks/provider`` receives the provider's completion webhook, signed
  the Standard Webhooks way (https://www.standardwebhooks.com): headers
  ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64>``,
  space-separated for several), an HMAC-SHA256 of ``"{id}.{timestamp}.{body}"``
  keyed with the base64 secret after ``whsec_``. A bad signature or a timestamp
  outside the tolerance is refused with 401. A ``webhook-id`` seen before is a
  redelivery: it is answered 200 ``already_accepted`` (a 4xx would make the
  provider retry it and, in the end, disable the endpoint). A payload whose
  ``reservation_id`` is not one the ledger issues is refused with 422. A
  ``job.completed`` enqueues ``settle_reservation`` (priced from the reported
  usage), a ``job.failed`` enqueues ``release_reservation``; both answer 202
  with the task id. The worker does the rest, exactly once per hold.
* ``POST /webhooks/credits`` receives **the ledger's own** webhooks (signed with
  the endpoint's secret from ``credits webhooks add``) and closes the auto
  top-up loop: on ``topup.requested`` it charges the user's card (a
  deterministic stand-in, :class:`StandInPayments`, that pays or declines) and
  answers the ledger with ``confirm_topup(topup_id, paid=..., amount=...)``; on
  ``topup.disabled`` (three declines in a row) it would tell the customer. The
  ledger delivers at least once and retries for a day, so this route keeps no
  "seen" list: everything it does is keyed by the ``topup_id``. The card is
  charged with the ``topup_id`` as its idempotency key (as real processors
  take one) and ``confirm_topup`` applies once per id, so a redelivery,
  however late, charges nothing more and grants nothing more.

Run it (needs the ``examples`` extra and a running worker, e.g. ``credits up``)::

    pip install -e ".[examples]"
    export CREDITS_REDIS_URL=redis://127.0.0.1:6379/0
    export CREDITS_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    export CREDITS_EXAMPLE_LEDGER_SECRET=whsec_...   # from `credits webhooks add`
    export CREDITS_EXAMPLE_CARD=ok                   # or decline
    uvicorn --factory examples.webhook_receiver:create_app_from_env
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from credits import Credits, LedgerEvent, PricingEngine
from credits.errors import InsufficientCreditsError, StoreUnavailableError, TopupNotFoundError
from credits.keys import parse_reservation_id
from credits.tasks import release_reservation, settle_reservation

logger = logging.getLogger(__name__)

SECRET_PREFIX: Final = "whsec_"
TOLERANCE_S_DEFAULT: Final = 5 * 60  # Standard Webhooks' recommended window
SEEN_KEY_PREFIX: Final = "credits:webhooks:seen:"
VIDEO_HOLD_TTL_S: Final = 30 * 60  # a video job should report back within this
WEBHOOK_ID_CHARS_MAX: Final = 256


class WebhookSettings(BaseSettings):
    """``CREDITS_WEBHOOK_SECRET`` (``whsec_...``) and ``CREDITS_WEBHOOK_TOLERANCE_S``."""

    model_config = SettingsConfigDict(env_prefix="CREDITS_WEBHOOK_", extra="ignore")

    secret: SecretStr
    tolerance_s: int = Field(default=TOLERANCE_S_DEFAULT, ge=1, le=24 * 60 * 60)


class ExampleSettings(BaseSettings):
    """``CREDITS_EXAMPLE_LEDGER_SECRET`` (the ledger endpoint's ``whsec_...``) and
    ``CREDITS_EXAMPLE_CARD`` (``ok`` or ``decline``: what the stand-in card does)."""

    model_config = SettingsConfigDict(env_prefix="CREDITS_EXAMPLE_", extra="ignore")

    ledger_secret: SecretStr | None = None
    card: Literal["ok", "decline"] = "ok"


class WebhookVerificationError(Exception):
    """The request is not a fresh webhook signed with our secret."""


class ReplayedWebhookError(WebhookVerificationError):
    """A webhook with this ``webhook-id`` was already accepted."""


class StandardWebhookVerifier:
    """Checks Standard Webhooks signatures, the timestamp window and replays.

    ``seen`` remembers accepted ids (``SET NX EX`` in Redis) for twice the
    tolerance: older deliveries fail the timestamp check anyway.
    """

    def __init__(
        self,
        secret: str,
        seen: redis.Redis | redis.RedisCluster,
        *,
        tolerance_s: int = TOLERANCE_S_DEFAULT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        encoded = secret.removeprefix(SECRET_PREFIX)
        try:
            self._key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("the webhook secret must be base64 after 'whsec_'") from exc
        if not self._key:
            raise ValueError("the webhook secret is empty")
        self._seen = seen
        self._tolerance_s = tolerance_s
        self._clock = clock

    def sign(self, webhook_id: str, timestamp: int, body: bytes) -> str:
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()

    def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Returns the webhook id; raises WebhookVerificationError (ReplayedWebhookError)."""
        webhook_id = self.check(headers, body)
        if not self._seen.set(SEEN_KEY_PREFIX + webhook_id, "1", nx=True, ex=2 * self._tolerance_s):
            raise ReplayedWebhookError(f"webhook-id {webhook_id!r} was already accepted")
        return webhook_id

    def check(self, headers: Mapping[str, str], body: bytes) -> str:
        """The signature and the timestamp window only (no replay check); the webhook id.

        For a sender whose every event is safe to handle twice (the ledger's
        top-up events): a "seen" list would only have to outlive its retries.
        """
        webhook_id = headers.get("webhook-id", "")
        stamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not webhook_id or not stamp or not signatures:
            raise WebhookVerificationError("missing webhook-id, -timestamp or -signature")
        if len(webhook_id) > WEBHOOK_ID_CHARS_MAX:
            raise WebhookVerificationError("webhook-id too long")
        try:
            timestamp = int(stamp)
        except ValueError:
            raise WebhookVerificationError("webhook-timestamp is not Unix seconds") from None
        if abs(self._clock() - timestamp) > self._tolerance_s:
            raise WebhookVerificationError("webhook-timestamp outside the tolerance window")
        expected = self.sign(webhook_id, timestamp, body).encode()
        offered = [s.encode() for s in signatures.split() if s.startswith("v1,")]
        if not any(hmac.compare_digest(expected, candidate) for candidate in offered):
            raise WebhookVerificationError("no valid signature")
        return webhook_id

    def forget(self, webhook_id: str) -> None:
        """Un-see an id whose processing failed, so the provider's retry is accepted."""
        self._seen.delete(SEEN_KEY_PREFIX + webhook_id)


@dataclass(frozen=True)
class Charge:
    """One payment attempt, as the stand-in processor keeps it (one per idempotency key)."""

    key: str
    user_id: str
    amount: int
    paid: bool
    refunded: bool = False


class StandInPayments:
    """A deterministic stand-in for a card processor: each user's card pays or declines.

    ``decline`` makes every card decline; ``declined_users`` only those users'.
    A charge is idempotent by its key, as a real processor's idempotency key
    is: the same key charged again returns the first outcome and takes no
    money. Thread-safe (the receiver handles requests on a thread pool).
    """

    def __init__(self, *, decline: bool = False, declined_users: Iterable[str] = ()) -> None:
        self.decline = decline
        self.declined_users = set(declined_users)
        self._charges: dict[str, Charge] = {}
        self._lock = threading.Lock()

    def charge(self, key: str, user_id: str, amount: int) -> Charge:
        with self._lock:
            first = self._charges.get(key)
            if first is None:
                paid = not (self.decline or user_id in self.declined_users)
                first = self._charges[key] = Charge(key, user_id, amount, paid)
            return first

    def refund(self, key: str) -> None:
        with self._lock:
            charged = self._charges.get(key)
            if charged is not None and charged.paid:
                self._charges[key] = replace(charged, refunded=True)

    @property
    def charges(self) -> list[Charge]:
        """Every key's attempt (paid or declined), in the order first made."""
        with self._lock:
            return list(self._charges.values())


def pay_topup(ledger: Credits, payments: StandInPayments, event: LedgerEvent) -> dict[str, Any]:
    """Charge the card for a ``topup.requested`` and tell the ledger; safe to repeat.

    The charge is keyed by the ``topup_id`` and ``confirm_topup`` applies once per
    id (returning the first result to every repeat), so handling the same event
    twice charges once and grants once. A request the ledger no longer has
    open (auto top-up removed meanwhile) is refunded.
    """
    topup_id = str(event.data["topup_id"])
    charge = payments.charge(topup_id, event.user_id, int(event.data["amount"]))
    try:
        done = ledger.confirm_topup(
            topup_id, paid=charge.paid, amount=charge.amount if charge.paid else None
        )
    except TopupNotFoundError:
        payments.refund(topup_id)
        return {"status": "stale", "topup_id": topup_id}
    status = "paid" if done.paid else "declined"
    return {"status": status, "topup_id": topup_id, "balance": done.balance}


class StartVideo(BaseModel):
    user_id: str
    seconds: float = Field(gt=0, le=3600)


class JobEvent(BaseModel):
    """The provider's payload: ``type`` and what the job used."""

    type: str  # "job.completed" or "job.failed"; others are ignored
    reservation_id: str
    usage: float | None = None
    error: str | None = None


def create_app(
    ledger: Credits,
    verifier: StandardWebhookVerifier,
    *,
    queue: str | None = None,
    pricing: PricingEngine | None = None,
    ledger_verifier: StandardWebhookVerifier | None = None,
    payments: StandInPayments | None = None,
) -> FastAPI:
    """The receiver; ``queue`` routes the tasks (None: Celery's default, ``credits``).

    ``ledger_verifier`` (the ledger endpoint's secret) mounts ``/webhooks/credits``,
    which pays top-ups with ``payments`` (a card that pays, by default).
    """
    prices = pricing or PricingEngine()
    routing: dict[str, Any] = {"queue": queue} if queue else {}
    api = FastAPI(title="credits webhook receiver (example)")

    @api.exception_handler(InsufficientCreditsError)
    async def payment_required(request: Request, exc: InsufficientCreditsError) -> JSONResponse:
        return JSONResponse(
            status_code=402,
            content={
                "error": "insufficient_credits",
                "required": exc.required,
                "available": exc.available,
            },
        )

    @api.post("/jobs/video", status_code=201)
    def start_video(job: StartVideo) -> dict[str, Any]:
        estimate = prices.calculate_cost("video_generation", job.seconds)
        hold = ledger.reserve(job.user_id, estimate, "video_generation", ttl=VIDEO_HOLD_TTL_S)
        # ... send the job to the provider with hold.id as its reference ...
        return {"reservation_id": hold.id, "held": hold.amount, "expires_at": hold.expires_at}

    @api.post("/webhooks/provider", status_code=202, response_model=None)
    async def provider_webhook(request: Request) -> dict[str, Any] | JSONResponse:
        body = await request.body()
        try:
            webhook_id = verifier.verify(request.headers, body)
        except ReplayedWebhookError:
            # A redelivery of a webhook already taken: 2xx, or the provider keeps retrying.
            replayed = {"status": "already_accepted", "webhook_id": stamp_id(request)}
            return JSONResponse(status_code=200, content=replayed)
        except WebhookVerificationError as exc:
            raise HTTPException(status_code=401, detail=str(exc)) from None
        try:
            event = JobEvent.model_validate(json.loads(body))
        except ValueError as exc:
            verifier.forget(webhook_id)
            raise HTTPException(status_code=400, detail=f"bad payload: {exc}") from None
        if parse_reservation_id(event.reservation_id) is None:
            verifier.forget(webhook_id)
            return JSONResponse(
                status_code=422,
                content={
                    "error": "invalid_reservation_id",
                    "message": "reservation_id is not an id this ledger issued",
                },
            )
        try:
            if event.type == "job.completed" and event.usage is not None:
                result = settle_reservation.apply_async(
                    (event.reservation_id,),
                    {"usage": event.usage, "metadata": {"webhook_id": webhook_id}},
                    **routing,
                )
            elif event.type == "job.failed":
                result = release_reservation.apply_async(
                    (event.reservation_id, event.error or "job failed"), **routing
                )
            else:
                return {"status": "ignored", "type": event.type}
        except Exception:
            verifier.forget(webhook_id)  # let the provider's retry through
            logger.exception("could not enqueue webhook %s", webhook_id)
            raise HTTPException(status_code=503, detail="try again later") from None
        return {"status": "accepted", "task_id": result.id}

    if ledger_verifier is not None:
        mount_ledger_webhooks(api, ledger, ledger_verifier, payments or StandInPayments())
    return api


def mount_ledger_webhooks(
    api: FastAPI, ledger: Credits, verifier: StandardWebhookVerifier, payments: StandInPayments
) -> None:
    """``POST /webhooks/credits``: the ledger's events, the auto top-up loop among them.

    Answers 2xx for every event it has handled or has no use for (the ledger
    would retry anything else for a day), 401 for a bad signature, 503 when the
    ledger could not be reached (the ledger delivers it again).
    """

    @api.post("/webhooks/credits", response_model=None)
    async def ledger_webhook(request: Request) -> dict[str, Any] | JSONResponse:
        body = await request.body()
        try:
            verifier.check(request.headers, body)
        except WebhookVerificationError as exc:
            raise HTTPException(status_code=401, detail=str(exc)) from None
        try:
            event = LedgerEvent.model_validate_json(body)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=f"bad payload: {exc}") from None
        if event.type == "topup.requested":
            try:
                return await run_in_threadpool(pay_topup, ledger, payments, event)
            except StoreUnavailableError:
                logger.warning("top-up %s: the ledger was unreachable", event.data.get("topup_id"))
                raise HTTPException(status_code=503, detail="try again later") from None
        if event.type == "topup.disabled":
            # ... tell the customer their card keeps failing and top-up is off ...
            logger.info("auto top-up of %s is off: %s", event.user_id, event.data.get("reason"))
            return {"status": "noted", "type": event.type}
        return {"status": "ignored", "type": event.type}


def stamp_id(request: Request) -> str:
    return request.headers.get("webhook-id", "")


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory``: the ledger from ``CREDITS_REDIS_URL``, the secrets from env.

    ``/webhooks/credits`` is mounted when ``CREDITS_EXAMPLE_LEDGER_SECRET`` is set.
    """
    settings = WebhookSettings()  # type: ignore[call-arg]  # secret comes from the environment
    example = ExampleSettings()
    ledger = Credits.from_env()
    verifier = StandardWebhookVerifier(
        settings.secret.get_secret_value(), ledger.redis, tolerance_s=settings.tolerance_s
    )
    ledger_verifier = None
    if example.ledger_secret is not None:
        ledger_verifier = StandardWebhookVerifier(
            example.ledger_secret.get_secret_value(), ledger.redis, tolerance_s=settings.tolerance_s
        )
    payments = StandInPayments(decline=example.card == "decline")
    return create_app(ledger, verifier, ledger_verifier=ledger_verifier, payments=payments)
