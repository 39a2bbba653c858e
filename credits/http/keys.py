"""API keys of the HTTP API: created by ``credits keys create``, stored hashed in Redis.

Why this shape:

* A key is ``ck_live_<id>_<secret>``: the id (16 hex) names the key in lists,
  logs and revocations; the secret (32 random bytes) is what proves it. Only
  the SHA-256 of the whole key is stored: the secret has 256 bits of entropy,
  so a fast hash is as good as a slow one, and a copy of Redis gives no key.
* All keys live in one hash, ``credits:apikeys`` (id → JSON record), so a
  lookup is one ``HGET`` and it works the same on a Cluster (one slot).
* Scopes are ordered: ``read`` < ``write`` < ``admin``; a key may do what its
  scope and every lower one allow.
* Like the ledger's operations, each function here returns its steps
  (:mod:`credits.protocol`), so the CLI runs them blocking and the HTTP app
  awaits them, from one definition.

This module needs nothing beyond the core package (no FastAPI), because the
``credits keys`` command uses it too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from credits import limits
from credits.errors import InvalidInputError, LimitExceededError
from credits.keys import PREFIX
from credits.protocol import Command, Steps

Scope = Literal["read", "write", "admin"]
SCOPES: Final[tuple[Scope, ...]] = ("read", "write", "admin")
SCOPE_RANK: Final[dict[str, int]] = {scope: rank for rank, scope in enumerate(SCOPES)}

KEYS_HASH: Final = f"{PREFIX}:apikeys"
TOKEN_PREFIX: Final = "ck_live_"
KEY_ID_BYTES: Final = 8
SECRET_BYTES: Final = 32
_TOKEN: Final = re.compile(r"^ck_live_(?P<id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_-]{43})$")
_NAME: Final = re.compile(r"^[^\x00-\x1f\x7f-\x9f]+$")


class ApiKey(BaseModel):
    """A stored key: what it may do and the hash that proves it (never the key itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    scope: Scope
    created_at: int = Field(description="Unix ms")
    sha256: str = Field(description="hex SHA-256 of the whole key")

    def allows(self, needed: Scope) -> bool:
        return SCOPE_RANK[self.scope] >= SCOPE_RANK[needed]

    def public(self) -> dict[str, object]:
        """What lists show: everything but the hash."""
        return self.model_dump(exclude={"sha256"})


class NewKey(BaseModel):
    """A key just made: ``token`` is shown once and never stored."""

    model_config = ConfigDict(frozen=True)

    token: str
    key: ApiKey


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


def key_id_of(token: str) -> str | None:
    """The id inside a well-formed key, or None (nothing is looked up for a malformed one)."""
    match = _TOKEN.match(token)
    return None if match is None else match["id"]


def check_scope(scope: object) -> Scope:
    for known in SCOPES:
        if scope == known:
            return known
    raise InvalidInputError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= limits.API_KEY_NAME_CHARS_MAX:
        raise InvalidInputError(
            f"a key's name must be 1 to {limits.API_KEY_NAME_CHARS_MAX} characters"
        )
    if _NAME.match(name) is None:
        raise InvalidInputError("a key's name must not contain control characters")
    return name


def _parse(raw: object) -> ApiKey | None:
    if not isinstance(raw, str):
        return None
    try:
        return ApiKey.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        return None  # a damaged record authenticates nobody


def create_key(scope: str, name: str) -> Steps[NewKey]:
    """Make a key with ``scope``; refuses past :data:`~credits.limits.API_KEYS_MAX` keys."""
    checked_scope, checked_name = check_scope(scope), check_name(name)
    count = int((yield Command(("HLEN", KEYS_HASH))))
    if count >= limits.API_KEYS_MAX:
        raise LimitExceededError("api_keys", limits.API_KEYS_MAX, count, 1)
    key_id = secrets.token_hex(KEY_ID_BYTES)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    key = ApiKey(
        id=key_id,
        name=checked_name,
        scope=checked_scope,
        created_at=int(time.time() * 1000),
        sha256=digest(token),
    )
    created = yield Command(("HSETNX", KEYS_HASH, key_id, key.model_dump_json()))
    if not int(created):  # 64 random bits collided: astronomically unlikely, never overwritten
        raise InvalidInputError("key id collision; run the command again")
    return NewKey(token=token, key=key)


def list_keys() -> Steps[list[ApiKey]]:
    """Every key, oldest first (at most API_KEYS_MAX, so one HGETALL is bounded)."""
    raw = yield Command(("HGETALL", KEYS_HASH))
    values = raw.values() if isinstance(raw, dict) else raw[1::2]
    found = [key for key in (_parse(value) for value in values) if key is not None]
    return sorted(found, key=lambda key: (key.created_at, key.id))


def revoke_key(key_id: str) -> Steps[bool]:
    """Delete a key; True if it existed. Processes that cached it stop within the cache TTL."""
    if not isinstance(key_id, str) or re.fullmatch(r"[0-9a-f]{16}", key_id) is None:
        raise InvalidInputError("a key id is 16 hex characters (see `credits keys list`)")
    removed = yield Command(("HDEL", KEYS_HASH, key_id))
    return bool(int(removed))


def get_key(key_id: str) -> Steps[ApiKey | None]:
    return _parse((yield Command(("HGET", KEYS_HASH, key_id))))


def authenticate(token: str) -> Steps[ApiKey | None]:
    """The key ``token`` proves, or None; compared in constant time."""
    key_id = key_id_of(token)
    if key_id is None:
        return None
    key = yield from get_key(key_id)
    if key is None or not hmac.compare_digest(key.sha256, digest(token)):
        return None
    return key
