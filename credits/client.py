"""Credits: the blocking client, a thin carrier of the ledger's operations.

Every operation is declared once, in :class:`~credits.operations.Operations`,
as a function that returns its steps; :func:`blocking` makes it a method that
runs those steps over one redis-py connection pool. :class:`~credits.aio.AsyncCredits`
binds the very same operations as coroutines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

from credits.base import ClientBase
from credits.operations import Operations
from credits.protocol import Steps
from credits.transport import BlockingRedis, blocking_executor, drive

P = ParamSpec("P")
T = TypeVar("T")


def blocking(
    operation: Callable[Concatenate[Operations, P], Steps[T]],
) -> Callable[Concatenate[Credits, P], T]:
    """``operation`` as a method of :class:`Credits` that returns its result."""

    @functools.wraps(operation)
    def method(self: Credits, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return drive(operation(self._operations, *args, **kwargs), self._execute)

    return method


class Credits(ClientBase):
    """The credits ledger over a blocking Redis connection.

    ``url`` is a ``redis://``, ``rediss://`` or Upstash ``https://`` URL (with
    ``token`` as the password); every argument left out comes from its
    ``CREDITS_*`` setting, so ``Credits()`` is ``Credits.from_env()``.
    """

    def _connect(self) -> None:
        self._redis = self._options.connect()
        self._execute = blocking_executor(
            self._redis, self._options.replication(), archive=self._archive
        )

    @property
    def redis(self) -> BlockingRedis:
        """The underlying redis-py client (for tools; the ledger's keys are not an API)."""
        return self._redis

    # Ledger

    initialize_user = blocking(Operations.initialize_user)
    deduct = blocking(Operations.deduct)
    add = blocking(Operations.add)
    add_many = blocking(Operations.add_many)
    deduct_many = blocking(Operations.deduct_many)
    get_balance = blocking(Operations.get_balance)
    get_account = blocking(Operations.get_account)
    get_transactions = blocking(Operations.get_transactions)
    balance_at = blocking(Operations.balance_at)
    verify_balance = blocking(Operations.verify_balance)
    rebuild_balance = blocking(Operations.rebuild_balance)

    # Reservations

    reserve = blocking(Operations.reserve)
    settle = blocking(Operations.settle)
    release = blocking(Operations.release)
    extend = blocking(Operations.extend)
    get_reservation = blocking(Operations.get_reservation)
    list_reservations = blocking(Operations.list_reservations)

    # Lots

    list_lots = blocking(Operations.list_lots)
    get_lot = blocking(Operations.get_lot)
    void_lot = blocking(Operations.void_lot)

    # Plans: allowances, spend limits, alerts, auto top-up
    set_allowance = blocking(Operations.set_allowance)
    remove_allowance = blocking(Operations.remove_allowance)
    list_allowances = blocking(Operations.list_allowances)
    set_limit = blocking(Operations.set_limit)
    remove_limit = blocking(Operations.remove_limit)
    list_limits = blocking(Operations.list_limits)
    set_alert = blocking(Operations.set_alert)
    remove_alert = blocking(Operations.remove_alert)
    list_alerts = blocking(Operations.list_alerts)
    set_auto_topup = blocking(Operations.set_auto_topup)
    remove_auto_topup = blocking(Operations.remove_auto_topup)
    get_auto_topup = blocking(Operations.get_auto_topup)
    confirm_topup = blocking(Operations.confirm_topup)

    # Events out

    read_events = blocking(Operations.read_events)
    add_webhook = blocking(Operations.add_webhook)
    remove_webhook = blocking(Operations.remove_webhook)
    list_webhooks = blocking(Operations.list_webhooks)

    # Upkeep (what the Celery beat runs)

    expire_reservations = blocking(Operations.expire_reservations)
    expire_lots = blocking(Operations.expire_lots)
    renew_allowances = blocking(Operations.renew_allowances)
    reconcile = blocking(Operations.reconcile)
    archive_events = blocking(Operations.archive_events)
    check_store = blocking(Operations.check_store)

    # Lifecycle

    def close(self) -> None:
        self._redis.close()
        if self._archive is not None:
            self._archive.close()

    def __enter__(self) -> Credits:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
