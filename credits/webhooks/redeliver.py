"""Retry parked deliveries now, from wherever this runs (``credits webhooks retry``).

The same path as the worker's: the URL is checked and resolved again, the
request goes to the checked address, signed with the endpoint's secret, with
the event's id as ``webhook-id``. Delivered, the parked record is struck off
and counted as delivered; failed again, it stays, one attempt more, with the
new error. It does not wait for the endpoint's pause: an operator asking for
a retry wants to know now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from credits.protocol import Batch, Call, Steps, batch_values
from credits.transport import drive
from credits.webhooks import failed, stats
from credits.webhooks.delivery import server_time
from credits.webhooks.failed import FailedDelivery
from credits.webhooks.registry import check_endpoint_id, list_webhooks
from credits.webhooks.sender import Attempt, Sender, Target
from credits.webhooks.ssrf import allowed_addresses, check_url

Execute = Callable[[Call], Any]


@dataclass(frozen=True, slots=True)
class Redelivery:
    endpoint_id: str
    event_id: str
    delivered: bool
    error: str = ""


async def _send(parked: FailedDelivery, url: str, secret: str, allow_private: bool,
                timeout_s: float) -> Attempt:  # fmt: skip
    try:
        checked = check_url(url)
        address = allowed_addresses(checked, allow_private=allow_private)[0]
    except ValueError as exc:
        return Attempt.unreachable(str(exc))
    async with Sender(timeout_s) as sender:
        body = parked.event.model_dump_json()
        return await sender.post(Target(checked, address), secret, parked.event.id, body)


def _record(parked: FailedDelivery, attempt: Attempt, now_ms: int) -> Steps[None]:
    if attempt.ok:
        commands = [*failed.forget_commands(parked), *stats.increments(delivered=1)]
    else:
        commands = failed.park_commands(failed.again(parked, attempt.error, now_ms))
    batch_values((yield Batch(tuple(commands))))


def retry_parked(
    execute: Execute,
    event_id: str,
    *,
    endpoint_id: str | None = None,
    allow_private: bool,
    timeout_s: float,
) -> list[Redelivery]:
    """POST the parked event ``event_id`` again to every endpoint that parked it (or just one)."""
    endpoints = {e.id: e for e in drive(list_webhooks(), execute)}
    if endpoint_id is not None:
        endpoints = {k: v for k, v in endpoints.items() if k == check_endpoint_id(endpoint_id)}
    found = drive(failed.find_failed(sorted(endpoints), event_id), execute)
    outcomes: list[Redelivery] = []
    for parked in found:
        endpoint = endpoints[parked.endpoint_id]
        attempt = asyncio.run(
            _send(parked, endpoint.url, endpoint.secret, allow_private, timeout_s)
        )
        drive(_record(parked, attempt, drive(server_time(), execute)), execute)
        outcomes.append(Redelivery(parked.endpoint_id, event_id, attempt.ok, attempt.error))
    return outcomes
