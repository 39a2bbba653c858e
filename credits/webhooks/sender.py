"""One signed POST of one event to one endpoint: Standard Webhooks, a hard deadline, no redirects.

The body is the event's JSON (``{id, type, created_at, user_id, data}``);
the headers are Standard Webhooks' (https://www.standardwebhooks.com):
``webhook-id`` (the event id, the same on every retry, so a receiver dedupes
on it), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256>``), signed by the maintained
``standardwebhooks`` package, never by hand.

The request goes to an address checked by :mod:`~credits.webhooks.ssrf` when
the run started (not to a second lookup of the name), with the URL's host as
``Host`` and as the TLS server name, so certificates are still verified for
the name. An attempt has one deadline for everything (connect, send, the
whole answer); at most 64 KiB of the answer's body is read, and dropped, so an
endpoint cannot make a worker download anything. Any 2xx is a delivery;
anything else, including a redirect, is a failure.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Final

import httpx
from standardwebhooks import Webhook

from credits import limits
from credits.webhooks.ssrf import Address, WebhookUrl

USER_AGENT: Final = "credits-webhooks/1"
CONTENT_TYPE: Final = "application/json"
# An answer's body is read up to this many bytes (and then dropped), so a small answer
# leaves its connection reusable and a large one costs nothing.
ANSWER_BYTES_READ_MAX: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one POST went. ``transport``: no HTTP answer at all (refused, timeout, DNS)."""

    ok: bool
    status: int | None = None
    error: str = ""
    transport: bool = False

    @classmethod
    def unreachable(cls, error: str) -> Attempt:
        return cls(ok=False, error=error[: limits.WEBHOOK_ERROR_CHARS_MAX], transport=True)


@dataclass(frozen=True, slots=True)
class Target:
    """Where an endpoint's requests go in this run: its URL and the address checked for it."""

    url: WebhookUrl
    address: Address

    def request_url(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.url.scheme}://{host}:{self.url.port}{self.url.target}"

    def extensions(self) -> dict[str, str]:
        if self.url.scheme == "https" and self.url.literal() is None:
            return {"sni_hostname": self.url.host}
        return {}


def signed_headers(secret: str, webhook_id: str, body: str, now_s: float) -> dict[str, str]:
    """The Standard Webhooks headers for ``body``, signed with ``secret`` at ``now_s``."""
    stamp = datetime.fromtimestamp(int(now_s), tz=UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now_s)),
        "webhook-signature": Webhook(secret).sign(webhook_id, stamp, body),
    }


class Sender:
    """POSTs over one pooled ``httpx.AsyncClient``; ``async with Sender(timeout_s) as s: ...``."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Sender:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self._timeout_s),
            follow_redirects=False,
            trust_env=False,  # no proxy from the environment: the address checked is the one called
            headers={"user-agent": USER_AGENT},
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def post(self, target: Target, secret: str, webhook_id: str, body: str) -> Attempt:
        """One attempt, over within the timeout whatever the endpoint does."""
        if self._client is None:
            raise RuntimeError("Sender used outside `async with`")
        headers = {
            "content-type": CONTENT_TYPE,
            "host": target.url.host_header,
            **signed_headers(secret, webhook_id, body, time.time()),
        }
        request = self._client.build_request(
            "POST",
            target.request_url(),
            content=body.encode("utf-8"),
            headers=headers,
            extensions=target.extensions(),
        )
        try:
            status = await asyncio.wait_for(self._exchange(request), self._timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            return Attempt.unreachable(f"no answer within {self._timeout_s:g} s")
        except (httpx.HTTPError, OSError) as exc:
            return Attempt.unreachable(f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return Attempt(ok=True, status=status)
        return Attempt(ok=False, status=status, error=f"HTTP {status}")

    async def _exchange(self, request: httpx.Request) -> int:
        """Send, then read at most a small answer (so the connection can be reused); the status."""
        assert self._client is not None
        response = await self._client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read > ANSWER_BYTES_READ_MAX:
                    break  # closed below instead of read: nothing large is downloaded
        finally:
            await response.aclose()
        return response.status_code
