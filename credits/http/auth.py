"""Bearer API keys for the JSON API: ``Authorization: Bearer ck_live_...``.

Why a cache: every request would otherwise pay one extra Redis round trip
before the ledger call. A key that was looked up is trusted for
:data:`~credits.limits.API_KEY_CACHE_TTL_S` seconds in this process (bounded
entries; only keys that exist are kept), so a key revoked by another process
stops working within that time, and at once in the process that revoked it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Final

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from credits import limits
from credits.http import keys
from credits.http.errors import ApiProblem
from credits.protocol import Call
from credits.transport import drive_async

Execute = Callable[[Call], Awaitable[Any]]
bearer: Final = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key from `credits keys create --scope read|write|admin`",
)
UNAUTHORIZED_HEADERS: Final = {"WWW-Authenticate": "Bearer"}


class KeyCache:
    """Keys this process looked up recently, by the digest of their token."""

    def __init__(
        self,
        ttl_s: float = limits.API_KEY_CACHE_TTL_S,
        entries_max: int = limits.API_KEY_CACHE_ENTRIES_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._entries_max = entries_max
        self._clock = clock
        self._entries: OrderedDict[str, tuple[keys.ApiKey, float]] = OrderedDict()

    async def authenticate(self, token: str, execute: Execute) -> keys.ApiKey | None:
        digest = keys.digest(token)
        cached = self._entries.get(digest)
        now = self._clock()
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await drive_async(keys.authenticate(token), execute)
        self._entries.pop(digest, None)
        if found is not None:
            self._entries[digest] = (found, now + self._ttl_s)
            while len(self._entries) > self._entries_max:
                self._entries.popitem(last=False)
        return found

    def forget(self, key_id: str) -> None:
        """Drop a revoked key at once (this process)."""
        for digest, (key, _) in list(self._entries.items()):
            if key.id == key_id:
                del self._entries[digest]


def require(scope: keys.Scope) -> Callable[..., Awaitable[keys.ApiKey]]:
    """A dependency: the request's API key, which must allow ``scope`` (else 401 / 403)."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),  # noqa: B008
    ) -> keys.ApiKey:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ApiProblem(
                401, "unauthorized", "send Authorization: Bearer <API key>", UNAUTHORIZED_HEADERS
            )
        state = request.app.state
        cache: KeyCache = state.key_cache
        key = await cache.authenticate(credentials.credentials, state.execute)
        if key is None:
            raise ApiProblem(401, "unauthorized", "unknown API key", UNAUTHORIZED_HEADERS)
        if not key.allows(scope):
            raise ApiProblem(
                403, "forbidden", f"this key's scope is {key.scope!r}; this needs {scope!r}"
            )
        return key

    return dependency
