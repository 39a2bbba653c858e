"""The lot state machine, with periods and limits: allowances and spend limits join the model.

:class:`PlanMachine` runs everything :class:`~test_model_lots.LotMachine` does
(grants, deducts, holds, voids, sweeps) on a user who also has a recurring
allowance (with rollover) and spend limits, and time that crosses periods and
windows. The model renews the allowance in the ledger's order (every due step
in the order it fell due: holds, then the allowance, then lots at the same
moment), derives the period lots' ids as the scripts do, and counts the limits
by the contract's rules: a deduct or reserve that would pass one is refused,
a settle counts, credits a hold gives back stop counting in the window that
counted them while it is current. After every step the ledger's lots, limits
and allowance must equal the model's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule
from test_model_lots import (
    EXAMPLES,
    STEPS,
    LotMachine,
    Model,
    ModelHold,
    ModelLot,
    Step,
    actions,
    amounts,
)

from credits.errors import InsufficientCreditsError, LimitExceededError
from credits.keys import lot_id, user_keys
from credits.plans.calendar import period_of, window_of

ALLOWANCE = "plan"
HOUR_S = 3600


@dataclass
class ModelAllowance:
    amount: int
    every: str
    anchor: int
    rollover_max: int
    period_start: int | None = None
    period_end: int | None = None
    lots: list[str] = field(default_factory=list)
    granted: int = 0
    next_terms: tuple[int, int] | None = None  # (amount, rollover_max) from the next period

    def due(self) -> int:
        return self.period_end if self.period_end is not None else self.anchor


@dataclass
class ModelLimit:
    amount: int
    every: str
    scope: frozenset[str] | None
    used: int = 0
    window_start: int = 0

    def counts(self, action: str) -> bool:
        return self.scope is None or action in self.scope

    def used_at(self, now_ms: int) -> int:
        return self.used if self.window_start == window_of(self.every, now_ms)[0] else 0  # type: ignore[arg-type]


@dataclass
class PlanModel(Model):
    escaped: str = ""
    user_id: str = ""
    allowance: ModelAllowance | None = None
    limits: dict[str, ModelLimit] = field(default_factory=dict)
    counted: dict[str, dict[str, int]] = field(default_factory=dict)  # hold -> limit -> window
    now_ms: int = 0
    categories: dict[str, str] = field(default_factory=dict)  # lot id -> category

    # ----------------------------------------------------------------- lots of a period

    def new_lot(self, category: str, amount: int, start: int, end: int) -> str:
        """A lot the ledger makes for a period; its id derives from the lot sequence."""
        seq = self.next_seq()
        local = hashlib.sha1(f"{self.escaped}:{seq}".encode()).hexdigest()[:10]
        public = lot_id(user_keys(self.user_id), local)
        self.lots[public] = ModelLot(
            id=public,
            priority=40,
            expires_at=end,
            effective_at=start,
            seq=seq,
            scope=None,
            amount=amount,
            remaining=amount,
            status="active",
        )
        self.categories[public] = category
        return public

    def renew(self) -> None:
        a = self.allowance
        assert a is not None
        if a.next_terms is not None and a.period_end is not None and a.period_end <= self.now_ms:
            (a.amount, a.rollover_max), a.next_terms = a.next_terms, None
        found = period_of(a.every, a.anchor, self.now_ms)  # type: ignore[arg-type]
        if found is None:
            a.period_start = a.period_end = None
            return
        start, end = found
        if a.period_start == start:
            a.period_end = end
            return
        if a.period_end == start and a.rollover_max > 0:
            room, moves = a.rollover_max, []
            for public in a.lots:
                lot = self.lots.get(public)
                if lot is not None and lot.status == "active" and lot.remaining > 0 and room > 0:
                    n = min(lot.remaining, room)
                    moves.append((lot, n))
                    room -= n
            if moves:
                total = sum(n for _, n in moves)
                for lot, n in moves:
                    lot.remaining -= n
                    lot.amount -= n  # moved, not spent: the model's conservation follows it
                self.new_lot("rollover", total, start, end)
                self.finish_done()
        a.period_start, a.period_end, a.lots, a.granted = start, end, [], 0
        self.grant(start, end, a.amount)

    def grant(self, start: int, end: int, amount: int) -> None:
        a = self.allowance
        assert a is not None
        a.lots.append(self.new_lot("allowance", amount, start, end))
        a.granted += amount

    # ----------------------------------------------------------------- limits

    def refusal(self, action: str, amount: int) -> tuple[str, int, int] | None:
        for name in sorted(self.limits):
            limit = self.limits[name]
            if limit.counts(action) and limit.used_at(self.now_ms) + amount > limit.amount:
                return name, limit.amount, limit.used_at(self.now_ms)
        return None

    def count(self, action: str, n: int, hold: str | None = None) -> None:
        if n <= 0:
            return
        for name, limit in self.limits.items():
            if limit.counts(action):
                start = window_of(limit.every, self.now_ms)[0]  # type: ignore[arg-type]
                if limit.window_start != start:
                    limit.window_start, limit.used = start, 0
                limit.used += n
                if hold is not None:
                    self.counted.setdefault(hold, {})[name] = start

    def uncount(self, hold: str, n: int) -> None:
        for name, start in self.counted.pop(hold, {}).items():
            limit = self.limits.get(name)
            if (
                n > 0
                and limit is not None
                and limit.window_start == start
                and window_of(limit.every, self.now_ms)[0] == start  # type: ignore[arg-type]
            ):
                limit.used = max(0, limit.used - n)

    # ----------------------------------------------------------------- upkeep

    def expire_hold(self, hold: ModelHold) -> None:
        super().expire_hold(hold)
        rid = next(r for r, h in self.holds.items() if h is hold)
        self.uncount(rid, hold.amount)

    def due_steps(self, now_ms: int) -> list[Step]:
        self.now_ms = now_ms
        steps = super().due_steps(now_ms)
        if self.allowance is not None and self.allowance.due() <= now_ms:
            steps.append((self.allowance.due(), 1, ALLOWANCE, self.renew))
        return steps


class PlanMachine(LotMachine):
    """A user with lots, a recurring allowance and spend limits; time crosses periods."""

    def __init__(self) -> None:
        super().__init__()
        self.model = PlanModel(escaped=user_keys(self.user).escaped, user_id=self.user)

    def _upkeep(self) -> None:
        super()._upkeep()
        assert isinstance(self.model, PlanModel)
        self.model.now_ms = self.clock.now_ms

    @property
    def plan(self) -> PlanModel:
        assert isinstance(self.model, PlanModel)
        return self.model

    @initialize(target=LotMachine.lots)
    def starting_balance(self) -> str:
        """A lasting grant, so deducts mostly pass the balance and meet the limits instead."""
        return self.grant(5000, 0, None, None, None)

    @initialize()
    def starting_limit(self) -> None:
        """A daily limit from the first step, so refusals and window turns are common."""
        self.set_limit("daily", 500, None)

    @rule(
        amount=st.integers(min_value=1, max_value=300),
        every=st.sampled_from(["day", "week"]),
        rollover_max=st.sampled_from([0, 50, 1000]),
        effective=st.sampled_from(["next_period", "now"]),
    )
    def set_allowance(self, amount: int, every: str, rollover_max: int, effective: str) -> None:
        self._upkeep()
        plan, now = self.plan, self.clock.now_ms
        if plan.allowance is not None:
            every = plan.allowance.every  # a new schedule is tested in test_allowances.py
        self.ledger.set_allowance(
            self.user, ALLOWANCE, amount, every=every, rollover_max=rollover_max,
            effective=effective,
        )  # fmt: skip
        a = plan.allowance
        if a is None:
            plan.allowance = ModelAllowance(amount, every, now, rollover_max)
            plan.renew()
        elif effective == "now":
            a.amount, a.rollover_max, a.next_terms = amount, rollover_max, None
            raise_by = amount - a.granted
            assert a.period_end is not None
            if raise_by > 0 and a.period_start is not None and a.period_end > now:
                plan.grant(a.period_start, a.period_end, raise_by)
        elif (amount, rollover_max) != (a.amount, a.rollover_max):
            a.next_terms = (amount, rollover_max)
        else:
            a.next_terms = None

    @rule()
    def remove_allowance(self) -> None:
        self._upkeep()
        assert self.ledger.remove_allowance(self.user, ALLOWANCE) == (
            self.plan.allowance is not None
        )
        self.plan.allowance = None  # its lots stay, to expire

    @rule(
        name=st.sampled_from(["hourly", "daily"]),
        amount=st.integers(min_value=1, max_value=400),
        scope=st.sampled_from([None, ("video",)]),
    )
    def set_limit(self, name: str, amount: int, scope: tuple[str, ...] | None) -> None:
        self._upkeep()
        every = "hour" if name == "hourly" else "day"
        self.ledger.set_limit(
            self.user, name, amount, every=every, scope=list(scope) if scope else None
        )
        old = self.plan.limits.get(name)
        limit = ModelLimit(amount, every, frozenset(scope) if scope else None)
        if old is not None:
            limit.used, limit.window_start = old.used, old.window_start
        self.plan.limits[name] = limit

    @rule(name=st.sampled_from(["hourly", "daily"]))
    def remove_limit(self, name: str) -> None:
        self._upkeep()
        assert self.ledger.remove_limit(self.user, name) == (name in self.plan.limits)
        self.plan.limits.pop(name, None)

    @rule(hours=st.integers(min_value=1, max_value=50))
    def advance_hours(self, hours: int) -> None:
        self.clock.advance(hours * HOUR_S)

    @rule()
    def renewal_sweep(self) -> None:
        self.ledger.renew_allowances()
        self._upkeep()

    # ----------------------------------------------------------------- the lot rules, with limits

    @rule(action=actions, amount=amounts)
    def deduct(self, action: str, amount: int) -> None:
        self._upkeep()
        if self.plan.draw(action, amount, self.clock.now_ms) is not None:
            refused = self.plan.refusal(action, amount)
            if refused is not None:
                with pytest.raises(LimitExceededError) as error:
                    self.ledger.deduct(self.user, amount, action)
                assert (error.value.limit, error.value.amount, error.value.used) == refused
                return
            self.plan.count(action, amount)
        super().deduct(action, amount)

    @rule(action=actions, amount=amounts, ttl=st.integers(min_value=1, max_value=7200))
    def reserve_plan(self, action: str, amount: int, ttl: int) -> None:
        self._upkeep()
        takes = self.plan.draw(action, amount, self.clock.now_ms)
        if takes is None:
            with pytest.raises(InsufficientCreditsError):
                self.ledger.reserve(self.user, amount, action, ttl=ttl)
            return
        refused = self.plan.refusal(action, amount)
        if refused is not None:
            with pytest.raises(LimitExceededError):
                self.ledger.reserve(self.user, amount, action, ttl=ttl)
            return
        hold = self.ledger.reserve(self.user, amount, action, ttl=ttl)
        assert hold.lots == takes
        for lot_id_, n in takes.items():
            self.plan.lots[lot_id_].remaining -= n
            self.plan.lots[lot_id_].held += n
        self.plan.holds[hold.id] = ModelHold(
            amount, action, self.clock.now_ms + ttl * 1000, dict(takes)
        )
        self.plan.count(action, amount, hold.id)
        self.plan_holds.append(hold.id)

    @rule(index=st.integers(min_value=0, max_value=50), actual=st.integers(0, 400))
    def settle_plan(self, index: int, actual: int) -> None:
        if not self.plan_holds:
            return
        rid = self.plan_holds[index % len(self.plan_holds)]
        self._upkeep()
        hold = self.plan.holds[rid]
        before = hold.status
        available = self.plan.available(hold.action)
        self.settle(rid, actual)
        if before == "open":
            from_hold = min(actual, hold.amount)
            self.plan.uncount(rid, hold.amount - from_hold)
            self.plan.count(hold.action, min(actual - from_hold, available))
        elif before == "expired":
            self.plan.count(hold.action, min(actual, available))

    @rule(index=st.integers(min_value=0, max_value=50))
    def release_plan(self, index: int) -> None:
        if not self.plan_holds:
            return
        rid = self.plan_holds[index % len(self.plan_holds)]
        self._upkeep()
        before = self.plan.holds[rid].status
        self.release(rid)
        if before == "open":
            self.plan.uncount(rid, self.plan.holds[rid].amount)

    # The lot machine's own hold rules know nothing of limits: here the plan rules make
    # and close every hold (its settle and release rules never run: no hold in their bundle).
    reserve = None  # type: ignore[assignment]
    plan_holds: list[str]

    @invariant()
    def limits_and_allowance_agree_with_the_model(self) -> None:
        self._upkeep()
        now = self.clock.now_ms
        limits = {limit.name: limit for limit in self.ledger.list_limits(self.user)}
        assert set(limits) == set(self.plan.limits)
        for name, limit in self.plan.limits.items():
            assert limits[name].used == limit.used_at(now), (name, limits[name], limit)
        a = self.plan.allowance
        listed = self.ledger.list_allowances(self.user)
        if a is None:
            assert listed == []
            return
        [seen] = listed
        assert (seen.period_start, seen.period_end, seen.granted) == (
            a.period_start, a.period_end, a.granted,
        )  # fmt: skip
        categories = {lot.id: lot.category for lot in self.ledger.list_lots(self.user)}
        for public, category in self.plan.categories.items():
            if public in categories:
                assert categories[public] == category


def _machine(client_kind: str, redis_url: str) -> type[PlanMachine]:
    def init(self: PlanMachine) -> None:
        PlanMachine.__init__(self)
        self.plan_holds = []

    return type(
        f"PlanMachine_{client_kind}",
        (PlanMachine,),
        {"client_kind": client_kind, "redis_url": redis_url, "__init__": init},
    )


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_plan_state_machine(redis_url: str, client_kind: str) -> None:
    machine = _machine(client_kind, redis_url)
    machine.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine.TestCase().runTest()
