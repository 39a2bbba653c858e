"""Construction shared by :class:`~credits.client.Credits` and :class:`~credits.aio.AsyncCredits`.

The two clients differ only in how they carry calls to Redis; how they are
configured (:meth:`ClientOptions.resolve`) and what they can do
(:class:`~credits.operations.Operations`) is here and in those modules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from credits.archive.base import Archive
from credits.connection import ClientOptions, Clock
from credits.operations import Operations
from credits.pricing import PricingEngine
from credits.settings import CreditsSettings


class ClientBase:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        default_credits: int | None = None,
        cluster: bool | None = None,
        clock: Clock | None = None,
        socket_timeout: float | None = None,
        pricing: PricingEngine | None = None,
        wait_replicas: int | None = None,
        wait_timeout_ms: int | None = None,
        archive_url: str | None = None,
        settings: CreditsSettings | None = None,
    ) -> None:
        """A client of the ledger.

        ``url`` is ``redis://``, ``rediss://``, ``redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB]``
        or an Upstash ``https://`` URL, with ``token`` as its password. Every
        argument left out comes from its ``CREDITS_*`` setting (``settings``, or
        the environment): ``url`` from ``CREDITS_REDIS_URL``, ``default_credits``
        (100), ``cluster``, ``socket_timeout`` (seconds, 5), ``pricing``
        (``CREDITS_PRICING``), ``wait_replicas`` (0: a write is acknowledged
        once the primary has it; n: once n replicas have it too, else
        ``StoreUnavailableError``) and ``wait_timeout_ms`` (500); ``archive_url``
        (``CREDITS_ARCHIVE_URL``: ``postgresql://...`` or ``sqlite:///PATH``) is
        where archived history is read from (:mod:`credits.archive`).
        ``clock`` returns Unix seconds and is read once per operation.
        """
        self._options = ClientOptions.resolve(
            url,
            token,
            default_credits=default_credits,
            cluster=cluster,
            clock=clock,
            socket_timeout=socket_timeout,
            pricing=pricing,
            wait_replicas=wait_replicas,
            wait_timeout_ms=wait_timeout_ms,
            archive_url=archive_url,
            settings=settings,
        )
        self._operations = Operations(self._options)
        self._archive = self._options.open_archive()
        self._connect()

    def _connect(self) -> None:
        raise NotImplementedError

    @property
    def archive(self) -> Archive | None:
        """The archive tier this client reads archived history from, or None."""
        return self._archive

    @property
    def options(self) -> ClientOptions:
        """What this client was configured with (its URL, clock, pricing ...)."""
        return self._options

    @classmethod
    def from_env(cls, *, clock: Clock | None = None) -> Self:
        """A client configured from ``CREDITS_*`` (or the seed's ``UPSTASH_*``) variables.

        The same client as ``cls()``: both read every setting.
        """
        return cls(clock=clock)

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
