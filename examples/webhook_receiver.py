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

Run it (needs the ``examples`` extra and a running worker, e.g. ``credits up``)::

    pip install -e ".[examples]"
    export CREDITS_REDIS_URL=redis://127.0.0.1:6379/0
    export CREDITS_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    uvicorn --factory examples.webhook_receiver:create_app_from_env
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from credits import Credits, PricingEngine
from credits.errors import InsufficientCreditsError
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
        seen: redis.Redis,
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
        if not self._seen.set(SEEN_KEY_PREFIX + webhook_id, "1", nx=True, ex=2 * self._tolerance_s):
            raise ReplayedWebhookError(f"webhook-id {webhook_id!r} was already accepted")
        return webhook_id

    def forget(self, webhook_id: str) -> None:
        """Un-see an id whose processing failed, so the provider's retry is accepted."""
        self._seen.delete(SEEN_KEY_PREFIX + webhook_id)


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
) -> FastAPI:
    """The receiver; ``queue`` routes the tasks (None: Celery's default, ``credits``)."""
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

    return api


def stamp_id(request: Request) -> str:
    return request.headers.get("webhook-id", "")


def create_app_from_env() -> FastAPI:
    """For ``uvicorn --factory``: the ledger from ``CREDITS_REDIS_URL``, the secret from env."""
    settings = WebhookSettings()  # type: ignore[call-arg]  # secret comes from the environment
    ledger = Credits.from_env()
    verifier = StandardWebhookVerifier(
        settings.secret.get_secret_value(), ledger.redis, tolerance_s=settings.tolerance_s
    )
    return create_app(ledger, verifier)
