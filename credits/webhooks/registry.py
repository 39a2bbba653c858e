"""Webhook endpoints in Redis: add, remove, list; what the clients' webhook methods run.

An endpoint is one field of ``credits:webhooks:endpoints`` (id → JSON: url,
events, secret, created_at). Adding one checks its URL (:mod:`~credits.webhooks.ssrf`,
resolving the host), its event filter and its secret before anything is
written, then one script call counts the endpoints and writes it, so the bound
of :data:`~credits.limits.WEBHOOK_ENDPOINTS_MAX` holds under concurrent adds.
A new endpoint receives the events written from its ``created_at`` on.

Secrets follow Standard Webhooks: ``whsec_`` and the base64 of 24 to 64
random bytes; one of 32 bytes is generated when none is given.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
from typing import Any, Final

from pydantic import ValidationError

from credits import limits, replies
from credits.errors import InvalidInputError
from credits.events import check_event_filters
from credits.keys import WEBHOOK_ENDPOINTS_KEY, context_args, webhook_keys
from credits.models import WebhookEndpoint
from credits.protocol import Batch, Command, Now, Steps, batch_values, run_script
from credits.scripts import script
from credits.webhooks.settings import WebhookSettings
from credits.webhooks.ssrf import allowed_addresses, check_url

logger = logging.getLogger(__name__)

SECRET_PREFIX: Final = "whsec_"
ENDPOINT_ID_PREFIX: Final = "we_"
_ENDPOINT_ID: Final = re.compile(r"^we_[0-9a-f]{16}$")
_SECRET_CHARS_MAX: Final = len(SECRET_PREFIX) + 4 * -(-limits.WEBHOOK_SECRET_BYTES_MAX // 3)


def new_secret() -> str:
    raw = secrets.token_bytes(limits.WEBHOOK_SECRET_BYTES_GENERATED)
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def check_secret(secret: object) -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 24 to 64 bytes."""
    if not isinstance(secret, str):
        raise InvalidInputError(f"secret must be a str (whsec_...), got {type(secret).__name__}")
    if len(secret) > _SECRET_CHARS_MAX or not secret.startswith(SECRET_PREFIX):
        raise InvalidInputError("secret must be 'whsec_' followed by base64 of 24 to 64 bytes")
    try:
        raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError("secret must be 'whsec_' followed by base64") from None
    if not limits.WEBHOOK_SECRET_BYTES_MIN <= len(raw) <= limits.WEBHOOK_SECRET_BYTES_MAX:
        raise InvalidInputError(
            f"secret must encode {limits.WEBHOOK_SECRET_BYTES_MIN} to "
            f"{limits.WEBHOOK_SECRET_BYTES_MAX} bytes, got {len(raw)}"
        )
    return secret


def check_endpoint_id(endpoint_id: object) -> str:
    if not isinstance(endpoint_id, str) or not _ENDPOINT_ID.match(endpoint_id):
        shown = endpoint_id[:40] if isinstance(endpoint_id, str) else type(endpoint_id).__name__
        raise InvalidInputError(f"not a webhook endpoint id (we_<16 hex>): {shown!r}")
    return endpoint_id


def _allow_private() -> bool:
    try:
        return WebhookSettings().webhook_allow_private
    except ValidationError as exc:
        raise InvalidInputError(f"bad CREDITS_WEBHOOK_* settings: {exc}") from None


def add_webhook(
    url: object, events: object, secret: object, *, allow_private: bool | None = None
) -> Steps[WebhookEndpoint]:
    """Check everything, then register the endpoint; ``LimitExceededError`` when full.

    Resolves the URL's host (a blocking DNS lookup, also in the asyncio client:
    adding an endpoint is rare, and the lookup is part of refusing it).
    ``created_at`` is always the Redis server's time, even for a client with an
    explicit clock: it is compared with outbox ids, which the server stamps.
    """
    checked = check_url(url)
    filters = check_event_filters(events)
    chosen = new_secret() if secret is None else check_secret(secret)
    private_ok = _allow_private() if allow_private is None else allow_private
    allowed_addresses(checked, allow_private=private_ok)
    endpoint_id = ENDPOINT_ID_PREFIX + secrets.token_hex(8)
    record = json.dumps({"url": checked.url, "events": filters, "secret": chosen},
                        separators=(",", ":"))  # fmt: skip
    reply = yield from run_script(
        script("webhook_add"),
        [WEBHOOK_ENDPOINTS_KEY],
        [*context_args(Now()), endpoint_id, limits.WEBHOOK_ENDPOINTS_MAX, record],
    )
    replies.check(reply, replies.Context("add_webhook", checked.url))
    return WebhookEndpoint(
        id=endpoint_id, url=checked.url, events=filters, secret=chosen, created_at=int(reply[1])
    )


def parse_endpoint(endpoint_id: str, raw: str) -> WebhookEndpoint | None:
    """A stored record as a model; None (logged) when it cannot be one."""
    try:
        fields: dict[str, Any] = json.loads(raw)
        return WebhookEndpoint(id=endpoint_id, **fields)
    except (ValueError, TypeError, ValidationError):
        logger.error("webhook endpoint %s has a damaged record; ignored", endpoint_id)
        return None


def endpoints_of(stored: dict[str, str]) -> list[WebhookEndpoint]:
    """An HGETALL of the endpoints hash as models, oldest first."""
    found = [parse_endpoint(endpoint_id, raw) for endpoint_id, raw in stored.items()]
    return sorted((e for e in found if e is not None), key=lambda e: (e.created_at, e.id))


def list_webhooks() -> Steps[list[WebhookEndpoint]]:
    stored = yield Command(("HGETALL", WEBHOOK_ENDPOINTS_KEY))
    return endpoints_of(stored or {})


def get_webhook(endpoint_id: str) -> Steps[WebhookEndpoint | None]:
    raw = yield Command(("HGET", WEBHOOK_ENDPOINTS_KEY, endpoint_id))
    return None if raw is None else parse_endpoint(endpoint_id, raw)


def remove_webhook(endpoint_id: object) -> Steps[bool]:
    """Forget the endpoint and all its delivery state (parked failures too); False if unknown."""
    checked = check_endpoint_id(endpoint_id)
    removed, _ = batch_values(
        (
            yield Batch(
                (
                    Command(("HDEL", WEBHOOK_ENDPOINTS_KEY, checked)),
                    # One tag ({wh:<id>}), so one DEL, also on a Cluster.
                    Command(("DEL", *webhook_keys(checked))),
                )
            )
        )
    )
    return bool(removed)
