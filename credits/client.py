"""Credits: the blocking client, a thin carrier of :mod:`credits.steps`.

Every method builds its steps in :mod:`credits.core` or
:mod:`credits.reservations.steps` and runs them over one redis-py connection
pool; :class:`~credits.aio.AsyncCredits` runs the very same steps with asyncio.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

import redis
import redis.cluster

from credits import core, limits
from credits.base import ClientBase
from credits.connection import blocking_executor
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
from credits.transport import drive

T = TypeVar("T")
Metadata = dict[str, Any] | None


class Credits(ClientBase):
    """The credits ledger over a blocking Redis connection.

    ``url`` is a ``redis://``, ``rediss://`` or Upstash ``https://`` URL (with
    ``token`` as the password); ``None`` reads ``CREDITS_REDIS_URL``.
    ``clock`` returns Unix seconds; every script gets the time from it.
    """

    def _connect(self) -> None:
        self._redis = self._options.connect()
        self._execute = blocking_executor(self._redis)

    @property
    def redis(self) -> redis.Redis | redis.cluster.RedisCluster:
        """The underlying redis-py client (for tools; the ledger's keys are not an API)."""
        return self._redis

    def _run(self, steps: Steps[T]) -> T:
        return drive(steps, self._execute)

    # Ledger

    def initialize_user(
        self, user_id: str, credits: int | None = None, metadata: Metadata = None
    ) -> TxResult:
        """Grant a new user ``credits`` (``default_credits`` when None), once.

        A second call for the same user grants nothing and returns the first result.
        """
        grant = self._options.default_credits if credits is None else credits
        return self._run(core.initialize_user(self._now_ms(), user_id, grant, metadata))

    def deduct(
        self,
        user_id: str,
        amount: int,
        action: str,
        metadata: Metadata = None,
        *,
        idempotency_key: str | None = None,
    ) -> TxResult:
        """Charge ``amount`` credits now, atomically.

        Raises :class:`InsufficientCreditsError` (and writes nothing) when the
        balance is too low, :class:`IdempotencyConflictError` when the key was
        used with other parameters.
        """
        return self._run(
            core.deduct(self._now_ms(), user_id, amount, action, metadata, idempotency_key)
        )

    def add(
        self,
        user_id: str,
        amount: int,
        action: str,
        metadata: Metadata = None,
        *,
        idempotency_key: str | None = None,
    ) -> TxResult:
        """Credit ``amount`` (a purchase, grant or refund); creates the account if new."""
        return self._run(
            core.add(self._now_ms(), user_id, amount, action, metadata, idempotency_key)
        )

    def add_many(self, items: Iterable[BulkItem]) -> list[TxResult | CreditsError]:
        """Many items in one pipeline; see :func:`credits.core.move_many`.

        Returns, per item and in order, its :class:`TxResult` or the
        :class:`CreditsError` it failed with.
        """
        return self._run(core.move_many("add", self._now_ms(), items))

    def deduct_many(self, items: Iterable[BulkItem]) -> list[TxResult | CreditsError]:
        return self._run(core.move_many("deduct", self._now_ms(), items))

    def get_balance(self, user_id: str) -> int:
        """Spendable credits (0 for an unknown user); O(1)."""
        return self._run(core.get_balance(self._now_ms(), user_id))

    def get_account(self, user_id: str) -> Account:
        return self._run(core.get_account(self._now_ms(), user_id))

    def get_transactions(
        self,
        user_id: str,
        *,
        limit: int = limits.TRANSACTIONS_LIMIT_DEFAULT,
        start_time: int | None = None,
        end_time: int | None = None,
    ) -> list[Transaction]:
        """Newest first; times are Unix ms, inclusive; O(log N + limit)."""
        return self._run(core.get_transactions(user_id, limit, start_time, end_time))

    def verify_balance(self, user_id: str) -> BalanceVerification:
        """Compare the cached balance with the sum of the log; changes nothing."""
        return self._run(core.verify_balance(self._now_ms(), user_id))

    def rebuild_balance(self, user_id: str) -> int:
        """Set the cached balance from the log without losing a racing write."""
        return self._run(core.rebuild_balance(self._now_ms(), user_id))

    # Reservations

    def reserve(
        self,
        user_id: str,
        amount: int,
        action: str,
        *,
        ttl: int | timedelta,
        metadata: Metadata = None,
        idempotency_key: str | None = None,
    ) -> Reservation:
        """Hold ``amount`` credits for ``ttl`` (whole seconds or a timedelta, 1 s to 30 days).

        Raises :class:`InsufficientCreditsError` and writes nothing when the
        balance is too low.
        """
        return self._run(
            holds.reserve(self._now_ms(), user_id, amount, action, ttl, metadata, idempotency_key)
        )

    def settle(
        self, reservation_id: str, actual_amount: int, metadata: Metadata = None
    ) -> Settlement:
        """Charge the actual cost of a held job, once; see SPEC for overage and late settles."""
        return self._run(holds.settle(self._now_ms(), reservation_id, actual_amount, metadata))

    def release(self, reservation_id: str, reason: str | None = None) -> Settlement:
        """Close a hold without charging; all of it returns to the balance."""
        return self._run(holds.release(self._now_ms(), reservation_id, reason))

    def extend(self, reservation_id: str, ttl: int | timedelta) -> Reservation:
        """Push the expiry of an open hold to ``now + ttl`` (never earlier than it was)."""
        return self._run(holds.extend(self._now_ms(), reservation_id, ttl))

    def get_reservation(self, reservation_id: str) -> Reservation:
        return self._run(holds.get_reservation(self._now_ms(), reservation_id))

    def list_reservations(
        self,
        user_id: str,
        status: str | None = None,
        *,
        limit: int = limits.RESERVATIONS_LIST_LIMIT_MAX,
    ) -> list[Reservation]:
        return self._run(holds.list_reservations(self._now_ms(), user_id, status, limit))

    # Upkeep (what the Celery beat runs)

    def expire_reservations(self, *, batch_size: int = limits.SWEEP_BATCH_HOLDS_DEFAULT) -> int:
        """Close every hold whose expiry has passed; returns how many."""
        return self._run(expire_reservations(self._now_ms(), batch_size))

    def reconcile(
        self,
        *,
        fix: bool = False,
        batch_size: int = limits.RECONCILE_BATCH_USERS_DEFAULT,
        progress: Progress | None = None,
    ) -> ReconcileReport:
        """Verify every user; with ``fix``, rebuild those whose cache differs from the log."""
        return self._run(reconcile(self._now_ms, fix=fix, batch_size=batch_size, progress=progress))

    def check_store(self) -> list[str]:
        """Warnings about the server's eviction and persistence settings (empty: fit for money)."""
        return self._run(store_warnings())

    # Lifecycle

    def close(self) -> None:
        self._redis.close()

    def __enter__(self) -> Credits:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
