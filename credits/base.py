"""Construction shared by :class:`~credits.client.Credits` and :class:`~credits.aio.AsyncCredits`.

The two clients differ only in how they carry calls to Redis; how they are
configured (URL, token, cluster, clock, environment, embedded server) is here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from credits.connection import SOCKET_TIMEOUT_S_DEFAULT, ClientOptions, Clock
from credits.settings import CreditsSettings


class ClientBase:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        default_credits: int = 100,
        cluster: bool = False,
        clock: Clock | None = None,
        socket_timeout: float = SOCKET_TIMEOUT_S_DEFAULT,
    ) -> None:
        """``url`` is ``redis://``, ``rediss://`` or an Upstash ``https://`` URL, with
        ``token`` as its password; ``None`` reads ``CREDITS_REDIS_URL``. ``clock``
        returns Unix seconds and is read once per operation; every script gets
        the time from it, so tests can freeze or advance it.
        """
        self._options = ClientOptions.build(
            url,
            token,
            default_credits=default_credits,
            cluster=cluster,
            clock=clock,
            socket_timeout_s=socket_timeout,
        )
        self._connect()

    def _connect(self) -> None:
        raise NotImplementedError

    @classmethod
    def from_env(cls, *, clock: Clock | None = None) -> Self:
        """A client configured from ``CREDITS_*`` (or the seed's ``UPSTASH_*``) variables."""
        settings = CreditsSettings()
        token = settings.redis_token.get_secret_value() if settings.redis_token else None
        return cls(
            settings.redis_url,
            token,
            default_credits=settings.default_credits,
            cluster=settings.redis_cluster,
            clock=clock,
        )

    @classmethod
    def embedded(cls, data_dir: str | Path | None = None, **kwargs: Any) -> Self:
        """A client of a local redis-server persisting (AOF) in ``data_dir``.

        Starts one, or reuses the one already serving that directory, so the
        quickstart runs with no Redis installed.
        """
        from credits.redis_server import embedded_server

        server = embedded_server(Path(data_dir) if data_dir else CreditsSettings().data_dir)
        return cls(server.url, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._options.describe()})"

    def _now_ms(self) -> int:
        return self._options.now_ms()
