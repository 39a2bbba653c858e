"""AsyncCredits: the asyncio client, carrying the same steps as :class:`~credits.client.Credits`.

Only the I/O differs: each method awaits the calls its steps yield. The
behaviour, errors and docstrings are those of the blocking client.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

import redis.asyncio
import redis.asyncio.cluster

from credits import core, limits
from credits.base import ClientBase
from credits.connection import async_executor
from credits.errors import CreditsError
from credits.health import store_warnings
from credits.models import (
    Account,
    BalanceVerification,
    BulkItem,
    Reservation,
    Settlement,
    Transaction,
    TxResult,
)
from credits.reconcile import Progress, ReconcileReport, reconcile
from credits.reservations import steps as holds
from credits.reservations.sweep import expire_reservations
from credits.steps import Steps
from credits.transport import drive_async

T = TypeVar("T")
Metadata = dict[str, Any] | None


class AsyncCredits(ClientBase):
    """The credits ledger over an asyncio Redis connection (see :class:`Credits`).

    ``url`` is a ``redis://``, ``rediss://`` or Upstash ``https://`` URL (with
    ``token`` as the password); ``None`` reads ``CREDITS_REDIS_URL``.
    ``clock`` returns Unix seconds; every script gets the time from it.
    """

    def _connect(self) -> None:
        self._redis = self._options.connect_async()
        self._execute = async_executor(self._redis)

    @property
    def redis(self) -> redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster:
        return self._redis

    async def _run(self, steps: Steps[T]) -> T:
        return await drive_async(steps, self._execute)

    # Ledger

    async def initialize_user(
        self, user_id: str, credits: int | None = None, metadata: Metadata = None
    ) -> TxResult:
        grant = self._options.default_credits if credits is None else credits
        return await self._run(core.initialize_user(self._now_ms(), user_id, grant, metadata))

    async def deduct(
        self,
        user_id: str,
        amount: int,
        action: str,
        metadata: Metadata = None,
        *,
        idempotency_key: str | None = None,
    ) -> TxResult:
        return await self._run(
            core.deduct(self._now_ms(), user_id, amount, action, metadata, idempotency_key)
        )

    async def add(
        self,
        user_id: str,
        amount: int,
        action: str,
        metadata: Metadata = None,
        *,
        idempotency_key: str | None = None,
    ) -> TxResult:
        return await self._run(
            core.add(self._now_ms(), user_id, amount, action, metadata, idempotency_key)
        )

    async def add_many(self, items: Iterable[BulkItem]) -> list[TxResult | CreditsError]:
        return await self._run(core.move_many("add", self._now_ms(), items))

    async def deduct_many(self, items: Iterable[BulkItem]) -> list[TxResult | CreditsError]:
        return await self._run(core.move_many("deduct", self._now_ms(), items))

    async def get_balance(self, user_id: str) -> int:
        return await self._run(core.get_balance(self._now_ms(), user_id))

    async def get_account(self, user_id: str) -> Account:
        return await self._run(core.get_account(self._now_ms(), user_id))

    async def get_transactions(
        self,
        user_id: str,
        *,
        limit: int = limits.TRANSACTIONS_LIMIT_DEFAULT,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> list[Transaction]:
        return await self._run(core.get_transactions(user_id, limit, start_time, end_time))

    async def verify_balance(self, user_id: str) -> BalanceVerification:
        return await self._run(core.verify_balance(self._now_ms(), user_id))

    async def rebuild_balance(self, user_id: str) -> int:
        return await self._run(core.rebuild_balance(self._now_ms(), user_id))

    # Reservations

    async def reserve(
        self,
        user_id: str,
        amount: int,
        action: str,
        *,
        ttl: int | timedelta,
        metadata: Metadata = None,
        idempotency_key: str | None = None,
    ) -> Reservation:
        return await self._run(
            holds.reserve(self._now_ms(), user_id, amount, action, ttl, metadata, idempotency_key)
        )

    async def settle(
        self, reservation_id: str, actual_amount: int, metadata: Metadata = None
    ) -> Settlement:
        return await self._run(
            holds.settle(self._now_ms(), reservation_id, actual_amount, metadata)
        )

    async def release(self, reservation_id: str, reason: str | None = None) -> Settlement:
        return await self._run(holds.release(self._now_ms(), reservation_id, reason))

    async def extend(self, reservation_id: str, ttl: int | timedelta) -> Reservation:
        return await self._run(holds.extend(self._now_ms(), reservation_id, ttl))

    async def get_reservation(self, reservation_id: str) -> Reservation:
        return await self._run(holds.get_reservation(self._now_ms(), reservation_id))

    async def list_reservations(
        self,
        user_id: str,
        status: str | None = None,
        *,
        limit: int = limits.RESERVATIONS_LIST_LIMIT_MAX,
    ) -> list[Reservation]:
        return await self._run(holds.list_reservations(self._now_ms(), user_id, status, limit))

    # Upkeep (what the Celery beat runs)

    async def expire_reservations(
        self, *, batch_size: int = limits.SWEEP_BATCH_HOLDS_DEFAULT
    ) -> int:
        return await self._run(expire_reservations(self._now_ms(), batch_size))

    async def reconcile(
        self,
        *,
        fix: bool = False,
        batch_size: int = limits.RECONCILE_BATCH_USERS_DEFAULT,
        progress: Progress | None = None,
    ) -> ReconcileReport:
        return await self._run(
            reconcile(self._now_ms, fix=fix, batch_size=batch_size, progress=progress)
        )

    async def check_store(self) -> list[str]:
        return await self._run(store_warnings())

    # Lifecycle

    async def aclose(self) -> None:
        await self._redis.aclose()

    async def __aenter__(self) -> AsyncCredits:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
