"""Settings: the only code in credits that reads the environment.

``CREDITS_REDIS_URL`` names the store. The seed's ``UPSTASH_REDIS_URL`` and
``UPSTASH_REDIS_TOKEN`` work too: a token is the Redis password, and an
Upstash ``https://HOST`` REST URL maps to its TLS Redis endpoint
``rediss://default:TOKEN@HOST:6379``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from credits.errors import InvalidInputError

REDIS_SCHEMES = ("redis", "rediss", "unix")
UPSTASH_TLS_PORT = 6379


class CreditsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CREDITS_", extra="ignore")

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CREDITS_REDIS_URL", "UPSTASH_REDIS_URL")
    )
    redis_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CREDITS_REDIS_TOKEN", "UPSTASH_REDIS_TOKEN")
    )
    redis_cluster: bool = False
    default_credits: int = Field(default=100, ge=0)
    data_dir: Path = Path(".credits")


def resolve_redis_url(url: str, token: str | None = None) -> str:
    """A redis-py URL from what a user configured.

    * ``https://HOST`` (Upstash REST) → ``rediss://default:TOKEN@HOST:6379``;
    * ``redis://`` / ``rediss://`` without a password, plus a token → the token
      becomes the password;
    * anything else is refused with :class:`InvalidInputError`.
    """
    parts = urlsplit(url)
    if parts.scheme in ("https", "http"):
        if not token:
            raise InvalidInputError(
                "an Upstash https:// URL needs UPSTASH_REDIS_TOKEN (the password)"
            )
        host = parts.hostname
        if not host:
            raise InvalidInputError("the Upstash URL has no host")
        return f"rediss://default:{quote(token, safe='')}@{host}:{UPSTASH_TLS_PORT}"
    if parts.scheme not in REDIS_SCHEMES:
        raise InvalidInputError(
            f"unsupported Redis URL scheme {parts.scheme!r}: "
            "use redis://, rediss://, unix:// or https:// (Upstash)"
        )
    if token and parts.password is None and parts.scheme != "unix":
        user = quote(parts.username, safe="") if parts.username else ""
        netloc = f"{user}:{quote(token, safe='')}@{parts.hostname or 'localhost'}"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def redact_url(url: str) -> str:
    """The URL with its password replaced, for logs and reprs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
