"""Every public operation of the ledger, declared once for both clients.

Each method validates nothing itself and does no I/O: it reads the clock once
(the operation's "now") and returns the operation's steps (see
:mod:`credits.protocol`). :class:`~credits.client.Credits` binds each one as a
blocking method and :class:`~credits.aio.AsyncCredits` as a coroutine method,
with this signature and this docstring, so the two clients cannot drift: there
is no second copy to forget.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from credits import audit, event_cursor, history, ledger, limits
from credits.archive import archiver
from credits.archive.archiver import ArchiveReport
from credits.connection import ClientOptions
from credits.errors import CreditsError
from credits.health import store_warnings
from credits.lots import ops as lots_ops
from credits.lots import sweep as lots_sweep
from credits.models import (
    Account,
    AccountAt,
    Alert,
    Allowance,
    AutoTopup,
    BalanceVerification,
    BulkItem,
    EventPage,
    Lot,
    Reservation,
    Settlement,
    SpendLimit,
    TopupConfirmation,
    Transaction,
    TxResult,
    WebhookEndpoint,
)
from credits.plans import alerts, allowances, spend_limits, topups
from credits.protocol import Now, Steps
from credits.reconcile import Progress, ReconcileReport, reconcile
from credits.reservations import holds
from credits.reservations.sweep import expire_reservations
from credits.webhooks import registry

Metadata = dict[str, Any] | None


class Operations:
    """The ledger's operations over one client's options; each returns its steps."""

    def __init__(self, options: ClientOptions) -> None:
        self.options = options

    def _now(self) -> Now:
        """None (the server's clock decides) unless the client has an explicit clock."""
        return self.options.now()

    # Ledger

    def initialize_user(
        self, user_id: str, credits: int | None = None, metadata: Metadata = None
    ) -> Steps[TxResult]:
        """Grant a new user ``credits`` (``default_credits`` when None), once.

        A second call for the same user grants nothing and returns the first result.
        """
        grant = self.options.default_credits if credits is None else credits
        return ledger.initialize_user(self._now(), user_id, grant, metadata)

    def deduct(
        self,
        user_id: str,
        amount: int,
        action: str,
        metadata: Metadata = None,
        *,
        idempotency_key: str | None = None,
    ) -> Steps[TxResult]:
        """Charge ``amount`` credits now, atomically.

        Raises :class:`~credits.errors.InsufficientCreditsError` (and writes
        nothing) when the balance is too low,
        :class:`~credits.errors.IdempotencyConflictError` when the key was used
        with other parameters.
        """
        return ledger.deduct(self._now(), user_id, amount, action, metadata, idempotency_key)

    def add(
        self,
        user_id: str,
        amount: int,
        action: str,
        metadata: Metadata = None,
        *,
        idempotency_key: str | None = None,
        expires_at: int | datetime | None = None,
        expires_in: int | timedelta | None = None,
        effective_at: int | datetime | None = None,
        priority: int = limits.LOT_PRIORITY_DEFAULT,
        category: str = "paid",
        scope: list[str] | None = None,
    ) -> Steps[TxResult]:
        """Credit ``amount`` (a purchase, grant or refund) as a new lot; creates the account.

        The lot's terms: ``expires_at`` (Unix ms or an aware datetime) or
        ``expires_in`` (seconds or a timedelta, from now), ``effective_at``
        (later: the lot is pending until then, outside the balance),
        ``priority`` 0..100 (lower is drawn first), ``category`` (``paid``,
        ``promotional``, ``refund``) and ``scope`` (None: every action; or the
        1..32 actions it alone may pay for). ``TxResult.lot_id`` names the lot.
        Raises :class:`~credits.errors.LimitExceededError` when ``balance +
        held`` would pass the ledger's ceiling or the user has the most active
        lots allowed, :class:`~credits.errors.InvalidInputError` for terms out
        of range (an ``expires_at`` already past, by the server's clock).
        """
        return ledger.add(
            self._now(),
            user_id,
            amount,
            action,
            metadata,
            idempotency_key,
            expires_at=expires_at,
            expires_in=expires_in,
            effective_at=effective_at,
            priority=priority,
            category=category,
            scope=scope,
        )

    def add_many(self, items: Iterable[BulkItem]) -> Steps[list[TxResult | CreditsError]]:
        """Many credits in one pipeline; see :func:`credits.ledger.move_many`.

        Returns, per item and in order, its :class:`TxResult` or the
        :class:`CreditsError` it failed with.
        """
        return ledger.move_many("add", self._now(), items)

    def deduct_many(self, items: Iterable[BulkItem]) -> Steps[list[TxResult | CreditsError]]:
        """Many charges in one pipeline; see :func:`credits.ledger.move_many`.

        Returns, per item and in order, its :class:`TxResult` or the
        :class:`CreditsError` it failed with.
        """
        return ledger.move_many("deduct", self._now(), items)

    def get_balance(self, user_id: str, action: str | None = None) -> Steps[int]:
        """Spendable credits now (0 for an unknown user); O(1).

        With ``action``, what the lots that apply to it can spend (a lot scoped
        to other actions does not count).
        """
        return ledger.get_balance(self._now(), user_id, action)

    def get_account(self, user_id: str) -> Steps[Account]:
        """Balance, held and creation time (zeros and None for an unknown user)."""
        return ledger.get_account(self._now(), user_id)

    def get_transactions(
        self,
        user_id: str,
        *,
        limit: int = limits.TRANSACTIONS_LIMIT_DEFAULT,
        start_time: int | None = None,
        end_time: int | None = None,
        before: str | None = None,
        after: str | None = None,
    ) -> Steps[list[Transaction]]:
        """A page of the user's events, newest first; O(log N + limit).

        ``start_time`` / ``end_time`` are Unix ms, inclusive. ``before`` /
        ``after`` are tx ids, exclusive: page back with ``before=<last tx_id of
        the page>``; with ``after`` the page is the ``limit`` oldest events after
        it (for polling what is new). Either reaches every event, however many
        share a millisecond.
        """
        return history.get_transactions(user_id, limit, start_time, end_time, before, after)

    def balance_at(self, user_id: str, at: int, *, lots: bool = False) -> Steps[AccountAt]:
        """Balance and held right after the last event stamped at or before ``at`` (Unix ms).

        ``AccountAt.tx_id`` is that event (None before the user's first); exact,
        O(log N) plus a bounded read, archived history included. ``lots=True``
        adds each active lot's remaining credits at that moment, from the last
        verified checkpoint before it plus at most 1,000 events.
        """
        return history.balance_at(user_id, at, lots)

    def verify_balance(self, user_id: str, *, full: bool = False) -> Steps[BalanceVerification]:
        """Compare the cached account with the log's real end; changes nothing but checkpoints.

        A lost or stale account hash is invalid (``problems`` says how).
        Incremental: the replay starts from the user's last verified checkpoint,
        so it reads only what was written since (``checkpoint`` names it).
        ``full`` replays from the very first event, archived ones included, and
        holds every stored checkpoint against the log too.
        """
        return audit.verify_balance(self._now(), user_id, full=full)

    def rebuild_balance(self, user_id: str) -> Steps[int]:
        """Set the cached account from the log without losing a racing write; the balance.

        Restores a lost account hash whole (so ``initialize_user`` never pays
        twice). Raises :class:`~credits.errors.BalanceVerificationError` (and
        changes nothing) when the log sums to an impossible state.
        """
        return audit.rebuild_balance(self._now(), user_id)

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
    ) -> Steps[Reservation]:
        """Hold ``amount`` credits for ``ttl`` (whole seconds or a timedelta, 1 s to 30 days).

        Raises :class:`~credits.errors.InsufficientCreditsError` and writes
        nothing when the balance is too low,
        :class:`~credits.errors.LimitExceededError` when the user has the most
        open holds allowed.
        """
        now = self._now()
        return holds.reserve(now, user_id, amount, action, ttl, metadata, idempotency_key)

    def settle(
        self, reservation_id: str, actual_amount: int, metadata: Metadata = None
    ) -> Steps[Settlement]:
        """Charge the actual cost of a held job, once (overage and late rules: docs/CONTRACT.md).

        A second settle returns the first :class:`Settlement`; a released hold
        raises :class:`~credits.errors.ReservationClosedError`.
        """
        return holds.settle(self._now(), reservation_id, actual_amount, metadata)

    def release(self, reservation_id: str, reason: str | None = None) -> Steps[Settlement]:
        """Close a hold without charging; all of it returns to the balance."""
        return holds.release(self._now(), reservation_id, reason)

    def extend(self, reservation_id: str, ttl: int | timedelta) -> Steps[Reservation]:
        """Push the expiry of an open hold to ``now + ttl`` (never earlier than it was)."""
        return holds.extend(self._now(), reservation_id, ttl)

    def get_reservation(self, reservation_id: str) -> Steps[Reservation]:
        """One hold, open or closed within the retention; ``ReservationNotFoundError`` else."""
        return holds.get_reservation(self._now(), reservation_id)

    def list_reservations(
        self,
        user_id: str,
        status: str | None = None,
        *,
        limit: int = limits.RESERVATIONS_LIST_LIMIT_MAX,
    ) -> Steps[list[Reservation]]:
        """Open holds soonest-expiring first, then closed ones most recently closed first."""
        return holds.list_reservations(self._now(), user_id, status, limit)

    # Lots

    def list_lots(self, user_id: str, status: str | None = None) -> Steps[list[Lot]]:
        """The user's lots: active ones in drawdown order, then finished ones, newest first.

        ``status`` filters (``pending``, ``active``, ``exhausted``, ``expired``,
        ``voided``). Finished lots are kept 90 days after they finished.
        """
        return lots_ops.list_lots(self._now(), user_id, status)

    def get_lot(self, lot_id: str) -> Steps[Lot]:
        """One lot; :class:`~credits.errors.LotNotFoundError` for an unknown (or aged-out) id."""
        return lots_ops.get_lot(self._now(), lot_id)

    def void_lot(self, lot_id: str, reason: str | None = None) -> Steps[TxResult]:
        """Remove what remains of a lot (a ``lot_void`` event); once.

        Credits of it held by open holds are voided when those holds give them
        back. Voiding a voided lot returns the first result; an exhausted or
        expired lot raises :class:`~credits.errors.LotClosedError`.
        """
        return lots_ops.void_lot(self._now(), lot_id, reason)

    # Plans

    def set_allowance(
        self,
        user_id: str,
        name: str,
        amount: int,
        *,
        every: str,
        anchor: int | datetime | None = None,
        rollover_max: int = 0,
        priority: int = allowances.ALLOWANCE_PRIORITY_DEFAULT,
        scope: list[str] | None = None,
        effective: str = "next_period",
    ) -> Steps[Allowance]:
        """Grant ``amount`` credits every ``every`` (day, week, month, year) from ``anchor``.

        Each period gets one ``allowance`` lot that expires at its end; up to
        ``rollover_max`` of what it leaves moves into a ``rollover`` lot for the
        next period. Periods repeat in UTC from ``anchor`` (Unix ms or an aware
        datetime; default now); a month anchored on the 31st renews on the last
        day of shorter months. The period holding now is granted at once when
        ``anchor`` has come. Changing an allowance applies from the next period,
        or with ``effective="now"`` grants the positive difference for the rest of
        this one. Renewal happens in the user's next call or the beat's
        ``renew_allowances``, whichever is first, once per period.
        """
        return allowances.set_allowance(
            self._now(),
            user_id,
            name,
            amount,
            every=every,
            anchor=anchor,
            rollover_max=rollover_max,
            priority=priority,
            scope=scope,
            effective=effective,
        )

    def remove_allowance(self, user_id: str, name: str) -> Steps[bool]:
        """Stop an allowance (its current lot is left to expire); False if there was none."""
        return allowances.remove_allowance(self._now(), user_id, name)

    def list_allowances(self, user_id: str) -> Steps[list[Allowance]]:
        """The user's allowances by name, with the period each granted last."""
        return allowances.list_allowances(self._now(), user_id)

    def set_limit(
        self, user_id: str, name: str, amount: int, *, every: str, scope: list[str] | None = None
    ) -> Steps[SpendLimit]:
        """At most ``amount`` credits charged or held per UTC ``every`` (hour, day, week, month).

        ``scope``: the actions it counts (None: all). A deduct or reserve that
        would pass it raises :class:`~credits.errors.LimitExceededError` and writes
        nothing; a settle is never refused, but what it charges counts. Changing a
        limit's amount keeps what its current window has used.
        """
        return spend_limits.set_limit(self._now(), user_id, name, amount, every=every, scope=scope)

    def remove_limit(self, user_id: str, name: str) -> Steps[bool]:
        """Drop a spend limit; False if there was none."""
        return spend_limits.remove_limit(self._now(), user_id, name)

    def list_limits(self, user_id: str) -> Steps[list[SpendLimit]]:
        """The user's spend limits by name, with what the current window has used."""
        return spend_limits.list_limits(self._now(), user_id)

    def set_alert(self, user_id: str, name: str, *, below: int) -> Steps[Alert]:
        """``balance.below`` once when the balance falls below ``below``, ``balance.recovered``
        once when it comes back; fires at once if the balance is already below."""
        return alerts.set_alert(self._now(), user_id, name, below=below)

    def remove_alert(self, user_id: str, name: str) -> Steps[bool]:
        """Drop an alert; False if there was none."""
        return alerts.remove_alert(self._now(), user_id, name)

    def list_alerts(self, user_id: str) -> Steps[list[Alert]]:
        """The user's alerts by name, and whether the balance is below each now."""
        return alerts.list_alerts(self._now(), user_id)

    def set_auto_topup(
        self,
        user_id: str,
        *,
        below: int,
        amount: int | None = None,
        target: int | None = None,
        max_per_month: int | None = None,
    ) -> Steps[AutoTopup]:
        """Ask the app to charge the user (``topup.requested``) when the balance falls below.

        Exactly one of ``amount`` (credits to add) or ``target`` (the balance to
        reach). One request is open at most; ``max_per_month`` caps requests per
        UTC month. Setting it again switches it back on after failures. If the
        balance is already below, the request is made at once.
        """
        return topups.set_auto_topup(
            self._now(),
            user_id,
            below=below,
            amount=amount,
            target=target,
            max_per_month=max_per_month,
        )

    def remove_auto_topup(self, user_id: str) -> Steps[bool]:
        """Switch auto top-up off (``topup.disabled``); False if it was not set."""
        return topups.remove_auto_topup(self._now(), user_id)

    def get_auto_topup(self, user_id: str) -> Steps[AutoTopup | None]:
        """The user's auto top-up, or None."""
        return topups.get_auto_topup(self._now(), user_id)

    def confirm_topup(
        self, topup_id: str, *, paid: bool, amount: int | None = None
    ) -> Steps[TopupConfirmation]:
        """The app's answer to a ``topup.requested`` event, applied once per ``topup_id``.

        ``paid``: a ``paid`` lot of ``amount`` (default: the requested amount).
        Not paid: the request closes; three failures in a row switch auto top-up
        off. Every repeat returns the first confirmation's result.
        :class:`~credits.errors.TopupNotFoundError` for an id that is not open.
        """
        return topups.confirm_topup(self._now(), topup_id, paid, amount)

    # Events out

    def read_events(
        self, *, after: str | None = None, limit: int = limits.EVENTS_READ_LIMIT_DEFAULT
    ) -> Steps[EventPage]:
        """The next events of every user after the cursor ``after`` (None: the oldest kept).

        Returns an :class:`EventPage`: a list of :class:`LedgerEvent`, in order
        per user, with ``.cursor`` to pass as ``after`` next time. The cursor
        never skips an event (docs/CONTRACT.md, "Events out"); a call reads at
        most ``limit`` events (1 to 1000) plus one probe per bucket.
        """
        return event_cursor.read_events(after, limit, cluster=self.options.cluster)

    def add_webhook(
        self, url: str, *, events: list[str] | None = None, secret: str | None = None
    ) -> Steps[WebhookEndpoint]:
        """Register an endpoint that receives events (``events``: types, or None for all).

        ``secret`` (``whsec_...``) is generated when None. The URL must be http(s),
        without credentials, and resolve to public addresses only (unless
        ``CREDITS_WEBHOOK_ALLOW_PRIVATE=1``); the endpoint receives events
        written from now on (``created_at``, by the server's clock). Raises
        :class:`~credits.errors.InvalidInputError` for a refused URL, filter or
        secret, :class:`~credits.errors.LimitExceededError` when there are too many.
        """
        return registry.add_webhook(url, events, secret)

    def remove_webhook(self, endpoint_id: str) -> Steps[bool]:
        """Forget an endpoint, its delivery state and its parked failures; False if unknown."""
        return registry.remove_webhook(endpoint_id)

    def list_webhooks(self) -> Steps[list[WebhookEndpoint]]:
        """Every webhook endpoint, oldest first (secrets included: this is an admin call)."""
        return registry.list_webhooks()

    # Upkeep (what the Celery beat runs)

    def expire_lots(self) -> Steps[int]:
        """Start and expire every lot that is due, for users who never come back; how many."""
        return lots_sweep.expire_lots(self._now())

    def renew_allowances(self) -> Steps[int]:
        """Grant every allowance period that has begun, for users who never come back.

        Returns how many renewals and lot transitions it applied. A period is
        granted once whoever gets there first: this or the user's own next call.
        """
        return lots_sweep.renew_allowances(self._now())

    def expire_reservations(
        self, *, batch_size: int = limits.SWEEP_BATCH_HOLDS_DEFAULT
    ) -> Steps[int]:
        """Close every hold whose expiry has passed; returns how many."""
        return expire_reservations(self._now(), batch_size)

    def reconcile(
        self,
        *,
        fix: bool = False,
        batch_size: int = limits.RECONCILE_BATCH_USERS_DEFAULT,
        progress: Progress | None = None,
        full: bool = False,
    ) -> Steps[ReconcileReport]:
        """Verify every user; with ``fix``, rebuild those whose cache differs from the log.

        Incremental (each user from its last verified checkpoint: a reconcile
        costs what was written since the last one) unless ``full``.
        """
        return reconcile(self._now, fix=fix, batch_size=batch_size, progress=progress, full=full)

    def archive_events(
        self,
        *,
        hot_days: int | None = None,
        batch_events: int = limits.ARCHIVE_BATCH_EVENTS,
        users: list[str] | None = None,
    ) -> Steps[ArchiveReport]:
        """Move events older than ``hot_days`` (``CREDITS_HOT_DAYS``, 90) to the archive.

        Copy, then trim, in batches of ``batch_events``: an event leaves Redis only
        once the archive has committed it and a verified checkpoint covers it, so
        a crash in between loses nothing and counts nothing twice. Users whose
        cache disagrees with the log are left alone and listed. Raises
        :class:`~credits.errors.ArchiveUnavailableError` (nothing trimmed) when
        the archive is down or not configured.
        """
        days = self.options.hot_days if hot_days is None else hot_days
        return archiver.archive_events(
            self._now(), hot_days=days, batch_events=batch_events, users=users
        )

    def check_store(self) -> Steps[list[str]]:
        """Warnings about the server's eviction and persistence settings (empty: fit for money)."""
        return store_warnings()
