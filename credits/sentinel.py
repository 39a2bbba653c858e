"""Redis Sentinel addresses: ``redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]``.

Why a URL form of our own: redis-py has no URL for Sentinel, kombu spells it
``sentinel://h1:p1;sentinel://h2:p2`` plus a ``master_name`` transport option,
and Celery's result backend the same. One string in ``CREDITS_REDIS_URL`` (or
``CELERY_BROKER_URL``) must name the store, the broker and the result backend
alike, so the project reads this form everywhere and translates it where a
library wants its own (:func:`kombu_url`, :func:`kombu_options`).

The user and password in the URL are the *primary's* (as in ``redis://``);
sentinels that require a password of their own are not supported yet.
The port of each sentinel defaults to 26379.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final, TypeGuard
from urllib.parse import quote, unquote

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from credits.errors import InvalidInputError

SCHEME: Final = "redis+sentinel"
KOMBU_SCHEME: Final = "sentinel"
SENTINEL_PORT_DEFAULT: Final = 26379
SENTINELS_MAX: Final = 32
_SERVICE: Final = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_HOST: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?$")


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """Where the sentinels are, which service they watch, and the primary's credentials."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def is_sentinel_url(url: object) -> TypeGuard[str]:
    return isinstance(url, str) and url.lower().startswith(f"{SCHEME}://")


def parse_sentinel_url(url: str) -> SentinelURL:
    """The parts of a ``redis+sentinel://`` URL; :class:`InvalidInputError` names the bad part.

    No message repeats the URL: it may carry a password.
    """
    if not is_sentinel_url(url):
        raise InvalidInputError(f"not a {SCHEME}:// URL")
    rest = url[len(SCHEME) + 3 :]
    if "?" in rest or "#" in rest:
        raise InvalidInputError(f"{SCHEME}:// URLs take no query or fragment")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(part) for part in hosts.split(","))
    if not 1 <= len(sentinels) <= SENTINELS_MAX:
        raise InvalidInputError(f"a {SCHEME}:// URL names 1 to {SENTINELS_MAX} sentinels")
    service, _, db_text = path.partition("/")
    if not _SERVICE.match(service):
        raise InvalidInputError(
            f"{SCHEME}:// needs /SERVICE after the sentinels (letters, digits, . _ -)"
        )
    db_text = db_text.rstrip("/")
    if db_text and not (db_text.isdigit() and len(db_text) <= 5):
        raise InvalidInputError(f"the database of a {SCHEME}:// URL must be a number")
    return SentinelURL(sentinels, service, int(db_text or 0), username, password)


def _host_port(text: str) -> tuple[str, int]:
    match = _HOST.match(text.strip())
    if match is None:
        raise InvalidInputError(f"bad sentinel address in a {SCHEME}:// URL: {text[:80]!r}")
    host = match[1].strip("[]")
    port = int(match[2]) if match[2] else SENTINEL_PORT_DEFAULT
    if not 1 <= port <= 65_535:
        raise InvalidInputError(f"sentinel port {port} is out of range")
    return host, port


def format_sentinel_url(parts: SentinelURL) -> str:
    """The ``redis+sentinel://`` URL of ``parts`` (the inverse of :func:`parse_sentinel_url`)."""
    return f"{SCHEME}://{_auth(parts)}{_hosts(parts)}/{parts.service}/{parts.db}"


def with_token(url: str, token: str | None) -> str:
    """The URL with ``token`` as the primary's password, unless it has one already."""
    parts = parse_sentinel_url(url)
    if not token or parts.password is not None:
        return url
    return format_sentinel_url(
        SentinelURL(parts.sentinels, parts.service, parts.db, parts.username, token)
    )


def redact(url: str) -> str:
    """For logs and reprs: the password replaced, or the URL's shape if it does not parse."""
    try:
        parts = parse_sentinel_url(url)
    except InvalidInputError:
        return f"{SCHEME}://(malformed)"
    hidden = "***" if parts.password is not None else None
    return format_sentinel_url(
        SentinelURL(parts.sentinels, parts.service, parts.db, parts.username, hidden)
    )


def _auth(parts: SentinelURL) -> str:
    if parts.password is None:
        return f"{quote(parts.username, safe='')}@" if parts.username else ""
    user = quote(parts.username, safe="") if parts.username else ""
    secret = parts.password if parts.password == "***" else quote(parts.password, safe="")
    return f"{user}:{secret}@"


def _hosts(parts: SentinelURL) -> str:
    return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in parts.sentinels)


# --------------------------------------------------------------------------- connecting


def _kwargs(parts: SentinelURL, socket_timeout_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """The kwargs of the connections to the sentinels, and to the primary."""
    timeouts = {"socket_timeout": socket_timeout_s, "socket_connect_timeout": socket_timeout_s}
    primary = {**timeouts, "db": parts.db, "username": parts.username, "password": parts.password}
    return timeouts, primary


def blocking_primary(url: str, socket_timeout_s: float, **options: Any) -> redis.Redis:
    """A client of the primary the sentinels name; each new connection asks them again.

    ``options`` go to the primary's connections (``retry``, ``decode_responses``).
    The sentinels get the socket timeouts only: redis-py would otherwise leave
    them without one when ``sentinel_kwargs`` is given.
    """
    parts = parse_sentinel_url(url)
    timeouts, primary = _kwargs(parts, socket_timeout_s)
    watchers = redis.sentinel.Sentinel(list(parts.sentinels), sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    client: redis.Redis = watchers.master_for(parts.service, **primary, **options)  # type: ignore[no-untyped-call]
    return client


def async_primary(url: str, socket_timeout_s: float, **options: Any) -> redis.asyncio.Redis:
    """:func:`blocking_primary` for asyncio."""
    parts = parse_sentinel_url(url)
    timeouts, primary = _kwargs(parts, socket_timeout_s)
    watchers = redis.asyncio.sentinel.Sentinel(list(parts.sentinels), sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    client: redis.asyncio.Redis = watchers.master_for(parts.service, **primary, **options)
    return client


# --------------------------------------------------------------------------- kombu / Celery


def kombu_url(url: str) -> str:
    """kombu's (and Celery's result backend's) spelling: ``sentinel://h:p/db;sentinel://...``.

    The primary's password rides in every part, as kombu takes it from the first.
    """
    parts = parse_sentinel_url(url)
    auth = _auth(parts)
    return ";".join(
        f"{KOMBU_SCHEME}://{auth}{f'[{h}]' if ':' in h else h}:{p}/{parts.db}"
        for h, p in parts.sentinels
    )


def kombu_options(url: str, socket_timeout_s: float) -> dict[str, Any]:
    """The transport options kombu and the result backend need beside :func:`kombu_url`.

    ``sentinel_kwargs`` is spelled out because Celery's backend defaults it to
    ``{}``, which leaves connections to the sentinels without any timeout.
    """
    return {
        "master_name": parse_sentinel_url(url).service,
        "sentinel_kwargs": {
            "socket_timeout": socket_timeout_s,
            "socket_connect_timeout": socket_timeout_s,
        },
    }


def from_kombu_url(url: str, master_name: str) -> str:
    """The ``redis+sentinel://`` URL of kombu's ``sentinel://...;...`` form and its master name."""
    hosts: list[str] = []
    auth = path = ""
    for chunk in url.split(";"):
        body = chunk.strip()
        if not body.lower().startswith(f"{KOMBU_SCHEME}://"):
            raise InvalidInputError(f"not a {KOMBU_SCHEME}:// URL")
        netloc, _, tail = body[len(KOMBU_SCHEME) + 3 :].partition("/")
        userinfo, at, host = netloc.rpartition("@")
        if not hosts:
            auth, path = (f"{userinfo}@" if at else ""), tail
        hosts.append(host)
    db = path.strip("/") or "0"
    return f"{SCHEME}://{auth}{','.join(hosts)}/{master_name}/{db}"
