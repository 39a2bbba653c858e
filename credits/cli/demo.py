"""The four-app demo: one balance per user, shared by a chat, a canvas, a video and a training app.

:func:`run_story` plays the story against a Redis and a running worker and
returns one :class:`Check` per thing it verified; ``credits demo`` prints them
and exits 0 only when every check held. The story:

1. Chat and canvas (fixed prices) deduct at once.
2. Video: reserve an estimate, the provider's completion webhook enqueues
   ``settle_reservation(usage=seconds)``; the webhook arrives twice and is
   charged once.
3. Training: reserve 2 GPU hours, heartbeat (``extend``), finish at 2.5 hours:
   settled with overage, the part the balance cannot cover reported as shortfall;
   then a chat message is refused (what an app turns into HTTP 402).
4. Video whose webhook never comes: the hold expires and the sweep task
   (what beat runs every minute) gives the credits back. No waiting: the hold
   is made by a client whose clock runs two minutes behind, so it is already
   due by the worker's real clock.
5. Lots: a promotional grant is spent first; an expired trial is gone at once.
6. Plans: cara subscribes to 1,000 credits a month with up to 500 rolling
   over, spends 300, and a month later her first call renews the plan: a new
   1,000 and a 500 rollover (the 200 past the cap end with the old period).
   A daily limit of 200 then refuses a request that would pass it (what an
   app turns into HTTP 429). No waiting: her month-later calls go through a
   client whose clock runs 32 days ahead.
7. Reconcile: every user's cached balance against its log.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from credits.client import Credits
from credits.errors import InsufficientCreditsError, LimitExceededError
from credits.pricing import PricingEngine

TASK_TIMEOUT_S: Final = 30.0
BEHIND_S: Final = 120  # the "webhook never came" hold was made this long ago
EXPIRED_HOLD_TTL_S: Final = 60
HOLD_TTL_S: Final = 15 * 60
HEARTBEAT_TTL_S: Final = 60 * 60
PROMO_TTL_S: Final = 30 * 24 * 60 * 60  # a promotional grant good for 30 days
AHEAD_S: Final = 32 * 24 * 60 * 60  # past one month boundary, never two (months are 28-31 days)

PLAN_MONTHLY: Final = 1000
PLAN_ROLLOVER_MAX: Final = 500
DAILY_LIMIT: Final = 200

ANA_CREDITS: Final = 2000  # chat, canvas and video
BEN_CREDITS: Final = 2400  # training


class TaskRunner(Protocol):
    """Sends a task to the worker and waits for its result."""

    def settle(self, reservation_id: str, **kwargs: Any) -> dict[str, Any]: ...
    def sweep(self) -> dict[str, int]: ...
    def reconcile(self, *, fix: bool) -> dict[str, int]: ...


class CeleryTasks:
    """:class:`TaskRunner` over ``credits.tasks``, on ``queue`` (None: the default one)."""

    def __init__(self, queue: str | None = None, timeout_s: float = TASK_TIMEOUT_S) -> None:
        self._options: dict[str, Any] = {"queue": queue} if queue else {}
        self._timeout_s = timeout_s

    def settle(self, reservation_id: str, **kwargs: Any) -> dict[str, Any]:
        from credits.tasks import settle_reservation

        result = settle_reservation.apply_async((reservation_id,), kwargs, **self._options)
        value: dict[str, Any] = result.get(timeout=self._timeout_s)
        return value

    def sweep(self) -> dict[str, int]:
        from credits.tasks import expire_reservations

        value: dict[str, int] = expire_reservations.apply_async(**self._options).get(
            timeout=self._timeout_s
        )
        return value

    def reconcile(self, *, fix: bool) -> dict[str, int]:
        from credits.tasks import reconcile_balances

        value: dict[str, int] = reconcile_balances.apply_async(
            kwargs={"fix": fix}, **self._options
        ).get(timeout=self._timeout_s * 10)
        return value


@dataclass(frozen=True)
class Check:
    app: str
    step: str
    expected: str
    got: str
    ok: bool


class _Story:
    def __init__(self, redis_url: str, tasks: TaskRunner, run_id: str) -> None:
        self.url = redis_url
        self.tasks = tasks
        self.ana = f"demo-{run_id}-ana"
        self.ben = f"demo-{run_id}-ben"
        self.cara = f"demo-{run_id}-cara"
        self.prices = PricingEngine()
        self.checks: list[Check] = []

    def check(self, app: str, step: str, expected: object, got: object) -> None:
        self.checks.append(Check(app, step, _show(expected), _show(got), expected == got))

    def play(self, ledger: Credits, behind: Credits, ahead: Credits) -> None:
        ana, ben = self.ana, self.ben
        ledger.initialize_user(ana, ANA_CREDITS)
        ledger.initialize_user(ben, BEN_CREDITS)
        self.check(
            "setup",
            "ana and ben get credits (balances)",
            (2000, 2400),
            (ledger.get_balance(ana), ledger.get_balance(ben)),
        )

        # Chat and canvas: fixed prices, charged at once.
        chat = self.prices.calculate_cost("chat_message")
        for i in range(3):
            ledger.deduct(ana, chat, "chat_message", {"message": i}, idempotency_key=f"{ana}-c{i}")
        self.check("chat", "ana sends 3 messages at 10 (balance)", 1970, ledger.get_balance(ana))
        for action in ("canvas_generation_simple", "canvas_generation_complex"):
            ledger.deduct(ana, self.prices.calculate_cost(action), action)
        self.check(
            "canvas",
            "a simple (50) and a complex (75) canvas (balance)",
            1845,
            ledger.get_balance(ana),
        )

        # Video: reserve 30 s, the provider reports 24 s in its completion webhook.
        estimate = self.prices.calculate_cost("video_generation", 30)
        video = ledger.reserve(ana, estimate, "video_generation", ttl=HOLD_TTL_S)
        account = ledger.get_account(ana)
        self.check(
            "video",
            "hold a 30 s estimate at 10/s (balance / held)",
            (1545, 300),
            (account.balance, account.held),
        )
        first = self.tasks.settle(video.id, usage=24, metadata={"webhook": "video.completed"})
        self.check(
            "video",
            "webhook: 24 s made -> settle task (charged / back)",
            (240, 60),
            (first["charged"], first["released"]),
        )
        again = self.tasks.settle(video.id, usage=24, metadata={"webhook": "video.completed"})
        settles = [
            t
            for t in ledger.get_transactions(ana)
            if t.type == "settle" and t.reservation_id == video.id
        ]
        self.check(
            "video",
            "same webhook again (same result / settles / balance)",
            ("yes", 1, 1605),
            ("yes" if again == first else "no", len(settles), ledger.get_balance(ana)),
        )

        # Training: reserve 2 GPU hours, heartbeat, finish at 2.5 hours.
        estimate = self.prices.calculate_cost("training_job", 2)
        job = ledger.reserve(ben, estimate, "training_job", ttl=HOLD_TTL_S)
        extended = ledger.extend(job.id, HEARTBEAT_TTL_S)
        self.check(
            "training",
            "ben holds 2 GPU-h (2000); heartbeat extends it",
            True,
            extended.expires_at > job.expires_at,
        )
        done = self.tasks.settle(job.id, usage=2.5, metadata={"webhook": "job.finished"})
        self.check(
            "training",
            "2.5 GPU-h used: overage (charged / short / balance)",
            (2400, 100, 0),
            (done["charged"], done["shortfall"], done["balance"]),
        )
        try:
            ledger.deduct(ben, chat, "chat_message")
            refused = "charged"
        except InsufficientCreditsError as exc:
            refused = f"402: required {exc.required}, available {exc.available}"
        self.check(
            "chat",
            "ben, at 0, sends a chat message",
            "402: required 10, available 0",
            refused,
        )

        # Video whose webhook never comes: made two minutes ago with a 60 s hold.
        lost = behind.reserve(ana, 100, "video_generation", ttl=EXPIRED_HOLD_TTL_S)
        swept = self.tasks.sweep()
        hold = ledger.get_reservation(lost.id)
        account = ledger.get_account(ana)
        self.check(
            "video",
            "webhook never came: sweep task (hold / balance / held)",
            ("expired", 1605, 0),
            (hold.status, account.balance, account.held),
        )
        self.check("beat", "the sweep reports what it expired", True, swept["expired"] >= 1)

        # Lots: a promotional grant is drawn before the paid credits; a lot past its
        # expiry is gone from the balance the moment it expires, no sweep needed.
        promo = ledger.add(
            ana, 50, "welcome_back", category="promotional", priority=10, expires_in=PROMO_TTL_S
        )
        ledger.deduct(ana, chat, "chat_message")
        drawn = ledger.get_transactions(ana, limit=1)[0].lots
        self.check(
            "lots", "a promotional lot is spent before paid ones (lot: delta)",
            {promo.lot_id: -chat}, drawn,
        )  # fmt: skip
        trial = behind.add(ana, 30, "trial", category="promotional", expires_in=60).lot_id or ""
        self.check(
            "lots",
            "a trial lot made 2 min ago for 1 min (status / balance)",
            ("expired", 1645),
            (ledger.get_lot(trial).status, ledger.get_balance(ana)),
        )

        self.plans(ledger, ahead)

        # Reconcile: the cached balances against the logs.
        report = self.tasks.reconcile(fix=False)
        ours = [ledger.verify_balance(user).valid for user in (ana, ben)]
        ours.append(ahead.verify_balance(self.cara).valid)
        self.check("beat", "the reconcile task checks every user", True, report["checked"] >= 3)
        self.check("ledger", "every demo user's balance equals its log", [True] * 3, ours)

    def plans(self, ledger: Credits, ahead: Credits) -> None:
        """A month boundary with rollover, then a daily limit refusing, on cara's plan."""
        cara = self.cara
        ledger.set_allowance(
            cara, "monthly", PLAN_MONTHLY, every="month", rollover_max=PLAN_ROLLOVER_MAX
        )
        ledger.deduct(cara, 300, "video_generation")
        self.check(
            "plans",
            "cara: 1000 a month, 500 may roll over; spends 300 (balance)",
            700,
            ledger.get_balance(cara),
        )
        # A month later: her first call renews the plan (the beat would, had it run first).
        lots = ahead.list_lots(cara, status="active")
        renewed = " + ".join(sorted(f"{lot.category} {lot.remaining}" for lot in lots))
        self.check(
            "plans",
            "a month later: new period + capped rollover (lots / balance)",
            ("allowance 1000 + rollover 500", 1500),
            (renewed, ahead.get_balance(cara)),
        )
        ahead.set_limit(cara, "daily", DAILY_LIMIT, every="day")
        ahead.deduct(cara, 150, "video_generation")
        try:
            ahead.deduct(cara, 100, "video_generation")
            refused = "charged"
        except LimitExceededError as exc:
            refused = f"429: {exc.limit} {exc.amount}, used {exc.used}, requested {exc.requested}"
        self.check(
            "plans",
            "daily limit 200: 150 spent, then 100 more is refused",
            "429: daily 200, used 150, requested 100",
            refused,
        )


def _show(value: object) -> str:
    if isinstance(value, tuple | list):
        return " / ".join(_show(item) for item in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def run_story(
    redis_url: str,
    tasks: TaskRunner,
    *,
    run_id: str | None = None,
    clock: Callable[[], float] = time.time,
    cluster: bool = False,
) -> list[Check]:
    """Play the demo; every check it made, the last one failed if the story broke off."""
    story = _Story(redis_url, tasks, run_id or uuid.uuid4().hex[:8])
    with (
        Credits(redis_url, cluster=cluster, clock=clock) as ledger,
        Credits(redis_url, cluster=cluster, clock=lambda: clock() - BEHIND_S) as behind,
        Credits(redis_url, cluster=cluster, clock=lambda: clock() + AHEAD_S) as ahead,
    ):
        try:
            story.play(ledger, behind, ahead)
        except Exception as exc:  # reported as a failed check, not swallowed
            story.checks.append(
                Check("demo", "the story ran to the end", "no error", repr(exc), False)
            )
    return story.checks
