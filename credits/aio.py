"""AsyncCredits: the asyncio client, carrying the operations of :class:`~credits.Credits`.

Only the I/O differs: :func:`awaiting` binds each operation of
:class:`~credits.operations.Operations` as a coroutine method that awaits the
calls its steps yield. Signatures, behaviour, errors and docstrings are those
of the blocking client, because both are made from the same declaration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

from credits.base import ClientBase
from credits.operations import Operations
from credits.protocol import Steps
from credits.transport import AsyncRedis, async_executor, drive_async

P = ParamSpec("P")
T = TypeVar("T")


def awaiting(
    operation: Callable[Concatenate[Operations, P], Steps[T]],
) -> Callable[Concatenate[AsyncCredits, P], Coroutine[Any, Any, T]]:
    """``operation`` as a coroutine method of :class:`AsyncCredits`."""

    @functools.wraps(operation)
    async def method(self: AsyncCredits, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await drive_async(operation(self._operations, *args, **kwargs), self._execute)

    return method


class AsyncCredits(ClientBase):
    """The credits ledger over an asyncio Redis connection (see :class:`~credits.Credits`).

    ``async with AsyncCredits(url) as credits: await credits.deduct(...)``.
    """

    def _connect(self) -> None:
        self._redis = self._options.connect_async()
        self._execute = async_executor(
            self._redis, self._options.replication(), archive=self._archive
        )

    @property
    def redis(self) -> AsyncRedis:
        """The underlying redis-py client (for tools; the ledger's keys are not an API)."""
        return self._redis

    # Ledger

    initialize_user = awaiting(Operations.initialize_user)
    deduct = awaiting(Operations.deduct)
    add = awaiting(Operations.add)
    add_many = awaiting(Operations.add_many)
    deduct_many = awaiting(Operations.deduct_many)
    get_balance = awaiting(Operations.get_balance)
    get_account = awaiting(Operations.get_account)
    get_transactions = awaiting(Operations.get_transactions)
    balance_at = awaiting(Operations.balance_at)
    verify_balance = awaiting(Operations.verify_balance)
    rebuild_balance = awaiting(Operations.rebuild_balance)

    # Reservations

    reserve = awaiting(Operations.reserve)
    settle = awaiting(Operations.settle)
    release = awaiting(Operations.release)
    extend = awaiting(Operations.extend)
    get_reservation = awaiting(Operations.get_reservation)
    list_reservations = awaiting(Operations.list_reservations)

    # Lots

    list_lots = awaiting(Operations.list_lots)
    get_lot = awaiting(Operations.get_lot)
    void_lot = awaiting(Operations.void_lot)

    # Plans: allowances, spend limits, alerts, auto top-up
    set_allowance = awaiting(Operations.set_allowance)
    remove_allowance = awaiting(Operations.remove_allowance)
    list_allowances = awaiting(Operations.list_allowances)
    set_limit = awaiting(Operations.set_limit)
    remove_limit = awaiting(Operations.remove_limit)
    list_limits = awaiting(Operations.list_limits)
    set_alert = awaiting(Operations.set_alert)
    remove_alert = awaiting(Operations.remove_alert)
    list_alerts = awaiting(Operations.list_alerts)
    set_auto_topup = awaiting(Operations.set_auto_topup)
    remove_auto_topup = awaiting(Operations.remove_auto_topup)
    get_auto_topup = awaiting(Operations.get_auto_topup)
    confirm_topup = awaiting(Operations.confirm_topup)

    # Events out

    read_events = awaiting(Operations.read_events)
    add_webhook = awaiting(Operations.add_webhook)
    remove_webhook = awaiting(Operations.remove_webhook)
    list_webhooks = awaiting(Operations.list_webhooks)

    # Upkeep (what the Celery beat runs)

    expire_reservations = awaiting(Operations.expire_reservations)
    expire_lots = awaiting(Operations.expire_lots)
    renew_allowances = awaiting(Operations.renew_allowances)
    reconcile = awaiting(Operations.reconcile)
    archive_events = awaiting(Operations.archive_events)
    check_store = awaiting(Operations.check_store)

    # Lifecycle

    async def aclose(self) -> None:
        await self._redis.aclose()
        if self._archive is not None:
            self._archive.close()

    async def __aenter__(self) -> AsyncCredits:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
