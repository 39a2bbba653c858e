"""Settings: the only code in credits that reads the environment.

Every ``CREDITS_*`` variable is a field of :class:`CreditsSettings`, and a
client's options come from here and nowhere else (:mod:`credits.connection`):
``Credits()`` and ``Credits.from_env()`` are the same client.

``CREDITS_REDIS_URL`` names the store. The seed's ``UPSTASH_REDIS_URL`` and
``UPSTASH_REDIS_TOKEN`` work too: a token is the Redis password, and an
Upstash ``https://HOST`` REST URL maps to its TLS Redis endpoint
``rediss://default:TOKEN@HOST:6379``. A ``redis+sentinel://`` URL
(:mod:`credits.sentinel`) names a primary watched by Redis Sentinel.

``CREDITS_WAIT_REPLICAS`` (0) and ``CREDITS_WAIT_TIMEOUT_MS`` (500): with n > 0,
every write is acknowledged only once n replicas have it (docs/RELIABILITY.md).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from credits import limits, sentinel
from credits.errors import InvalidInputError
from credits.limits import AMOUNT_MAX, LOT_EXPIRING_NOTICE_MS_DEFAULT, LOT_TERM_MS_MAX

REDIS_SCHEMES = ("redis", "rediss", "unix", sentinel.SCHEME)
UPSTASH_TLS_PORT = 6379
SOCKET_TIMEOUT_S_DEFAULT = 5.0
DEFAULT_CREDITS_DEFAULT = 100


class CreditsSettings(BaseSettings):
    """What the ledger client reads from the environment (``CREDITS_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="CREDITS_", extra="ignore")

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("CREDITS_REDIS_URL", "UPSTASH_REDIS_URL")
    )
    redis_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CREDITS_REDIS_TOKEN", "UPSTASH_REDIS_TOKEN")
    )
    redis_cluster: bool = False
    default_credits: int = Field(default=DEFAULT_CREDITS_DEFAULT, ge=0)
    socket_timeout_s: float = Field(default=SOCKET_TIMEOUT_S_DEFAULT, gt=0, le=3600)
    wait_replicas: int = Field(default=0, ge=0, le=limits.WAIT_REPLICAS_MAX)
    wait_timeout_ms: int = Field(
        default=limits.WAIT_TIMEOUT_MS_DEFAULT,
        ge=limits.WAIT_TIMEOUT_MS_MIN,
        le=limits.WAIT_TIMEOUT_MS_MAX,
    )
    # "package.module:NAME" of a PricingEngine or a mapping of custom rules
    pricing: str | None = None
    # lot.expiring goes out this long before a lot expires
    lot_expiring_notice_s: int = Field(
        default=LOT_EXPIRING_NOTICE_MS_DEFAULT // 1000, ge=0, le=LOT_TERM_MS_MAX // 1000
    )
    # balance.below / balance.recovered for every user at this threshold (None: none)
    default_alert_below: int | None = Field(default=None, ge=1, le=AMOUNT_MAX)
    data_dir: Path = Path(".credits")
    # The archive tier: postgresql://... or sqlite:///PATH (None: nothing is archived)
    archive_url: str | None = None
    # Events stay in Redis at least this many days (and until a verified checkpoint
    # covers them); the archiver moves what is older to the archive.
    hot_days: int = Field(default=limits.HOT_DAYS_DEFAULT, ge=1, le=limits.HOT_DAYS_MAX)

    def token(self) -> str | None:
        return self.redis_token.get_secret_value() if self.redis_token else None

    def store_url(self) -> str | None:
        """The ledger's Redis URL (token applied, Upstash mapped), or None if unset."""
        if not self.redis_url:
            return None
        return resolve_redis_url(self.redis_url, self.token())


def resolve_redis_url(url: str, token: str | None = None) -> str:
    """A redis-py URL from what a user configured.

    * ``https://HOST`` (Upstash REST) → ``rediss://default:TOKEN@HOST:6379``;
    * ``redis://`` / ``rediss://`` without a password, plus a token → the token
      becomes the password;
    * ``redis+sentinel://`` is checked, and a token becomes the primary's password;
    * anything else is refused with :class:`InvalidInputError`.
    """
    if sentinel.is_sentinel_url(url):
        return sentinel.with_token(url, token)
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
            "use redis://, rediss://, unix://, redis+sentinel:// or https:// (Upstash)"
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
    if sentinel.is_sentinel_url(url):
        return sentinel.redact(url)
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname or ''}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
