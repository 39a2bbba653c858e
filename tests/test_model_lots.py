"""A Hypothesis state machine runs lots through the API against a pure-Python model of them.

The model keeps every lot's remaining, held and status, and where each of its
credits went (spent, expired, voided, forfeited when a hold gave it back to a
lot that had ended), so each lot is conserved by construction; after every
step the ledger's lots must equal the model's, lot by lot, and the balance and
held their sums. Drawdown comes from :mod:`credits.lots.rules` (the Python
twin of ``lots.lua``), the settle arithmetic from the contract's rules. Time is
an explicit clock standing for the server's; the lazy upkeep is modelled in
the ledger's order: every due step (a hold expiring, a lot starting or
expiring) in the order it fell due, holds first at the same moment.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule
from ledger_fixtures import Clock, make_ledger

from credits.errors import (
    InsufficientCreditsError,
    LotClosedError,
    ReservationClosedError,
)
from credits.lots.rules import DrawableLot, drawdown_key
from credits.lots.rules import draw as rules_draw

SLOW = os.environ.get("CREDITS_SLOW_TESTS") == "1"
EXAMPLES = 300 if SLOW else 20
STEPS = 60 if SLOW else 30

ACTIONS = ("chat", "video")
actions = st.sampled_from(ACTIONS)
scopes = st.sampled_from([None, None, ("video",), ("chat",)])
amounts = st.integers(min_value=1, max_value=200)


@dataclass
class ModelLot:
    id: str
    priority: int
    expires_at: int | None
    effective_at: int
    seq: int
    scope: frozenset[str] | None
    amount: int
    remaining: int
    status: str  # pending, active, expired, voided
    held: int = 0
    spent: int = 0
    expired: int = 0
    voided: int = 0
    forfeited: int = 0
    void_result: Any = None

    def drawable(self) -> DrawableLot:
        return DrawableLot(
            self.id, self.priority, self.expires_at, self.seq, self.remaining, self.scope, 0
        )

    def public_status(self) -> str:
        return self.status

    def finish_if_done(self) -> None:
        """Nothing left, nothing held: finished (exhausted), and nothing can change it again."""
        if self.status == "active" and self.remaining == 0 and self.held == 0:
            self.status = "exhausted"

    def conserved(self) -> bool:
        gone = self.spent + self.expired + self.voided + self.forfeited
        return self.amount == self.remaining + self.held + gone


@dataclass
class ModelHold:
    amount: int
    action: str
    expires_ms: int
    pins: dict[str, int]
    status: str = "open"
    first_result: Any = None


Step = tuple[int, int, str, Callable[[], None]]


@dataclass
class Model:
    lots: dict[str, ModelLot] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)
    seq: int = 0  # the ledger's lot sequence: every lot made, in order

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def finish_done(self) -> None:
        for lot in self.lots.values():
            lot.finish_if_done()

    def active(self, action: str) -> list[ModelLot]:
        return [
            lot
            for lot in self.lots.values()
            if lot.status == "active" and (lot.scope is None or action in lot.scope)
        ]

    def available(self, action: str) -> int:
        return sum(lot.remaining for lot in self.active(action))

    def draw(self, action: str, amount: int, now_ms: int) -> dict[str, int] | None:
        return rules_draw([lot.drawable() for lot in self.active(action)], action, amount, now_ms)

    def give_back(self, pins: dict[str, int], charge: int) -> tuple[int, int]:
        """Charge from the pins in drawdown order, the rest back (forfeited to an ended lot)."""
        left, returned, forfeited = charge, 0, 0
        for lot_id in sorted(pins, key=lambda i: drawdown_key(self.lots[i].drawable())):
            lot, pinned = self.lots[lot_id], pins[lot_id]
            charged = min(pinned, left)
            left -= charged
            lot.held -= pinned
            lot.spent += charged
            back = pinned - charged
            if lot.status == "active":
                lot.remaining += back
                returned += back
            else:
                lot.forfeited += back
                forfeited += back
        self.finish_done()
        return returned, forfeited

    def expire_hold(self, hold: ModelHold) -> None:
        hold.status = "expired"
        self.give_back(hold.pins, 0)

    def lot_transition(self, lot: ModelLot, kind: str) -> None:
        if kind == "start":
            lot.status = "active"
        else:
            lot.expired += lot.remaining
            lot.remaining = 0
            lot.status = "expired"
        self.finish_done()

    def due_steps(self, now_ms: int) -> list[Step]:
        """What is due by now: (due time, class, tie-break, apply). Holds come before lots
        at the same moment, as in the ledger."""
        steps: list[Step] = []
        for rid, hold in self.holds.items():
            if hold.status == "open" and hold.expires_ms <= now_ms:
                steps.append((hold.expires_ms, 0, rid, partial(self.expire_hold, hold)))
        for lot in self.lots.values():
            if lot.status == "pending" and lot.effective_at <= now_ms:
                steps.append(
                    (lot.effective_at, 2, str(lot.seq), partial(self.lot_transition, lot, "start"))
                )
            elif lot.status == "active" and lot.expires_at is not None and lot.expires_at <= now_ms:
                steps.append(
                    (lot.expires_at, 2, str(lot.seq), partial(self.lot_transition, lot, "expire"))
                )
        return steps

    def upkeep(self, now_ms: int) -> None:
        """Everything due, in the order it fell due: the ledger's upkeep, lazily or by a sweep."""
        while steps := self.due_steps(now_ms):
            min(steps, key=lambda step: step[:3])[3]()


class LotMachine(RuleBasedStateMachine):
    """One user with lots of mixed terms; the ledger and the model move together."""

    client_kind = "sync"
    redis_url = ""

    holds = Bundle("holds")
    lots = Bundle("lots")

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.ledger, self._close = make_ledger(self.client_kind, self.redis_url, clock=self.clock)
        self.user = f"lots-{uuid.uuid4().hex}"
        self.model = Model()

    def teardown(self) -> None:
        self._close()

    def _upkeep(self) -> None:
        self.model.upkeep(self.clock.now_ms)

    @rule(
        target=lots,
        amount=amounts,
        priority=st.integers(min_value=0, max_value=100),
        expires_in=st.one_of(st.none(), st.integers(min_value=1, max_value=600)),
        delay=st.one_of(st.none(), st.integers(min_value=1, max_value=300)),
        scope=scopes,
    )
    def grant(
        self,
        amount: int,
        priority: int,
        expires_in: int | None,
        delay: int | None,
        scope: tuple[str, ...] | None,
    ) -> str:
        self._upkeep()
        now = self.clock.now_ms
        effective = now + delay * 1000 if delay is not None else None
        expires = now + expires_in * 1000 if expires_in is not None else None
        if effective is not None and expires is not None and effective >= expires:
            expires = None
        result = self.ledger.add(
            self.user,
            amount,
            "grant",
            priority=priority,
            expires_at=expires,
            effective_at=effective,
            scope=list(scope) if scope else None,
        )
        seq = self.model.next_seq()
        pending = effective is not None and effective > now
        self.model.lots[result.lot_id] = ModelLot(
            id=result.lot_id,
            priority=priority,
            expires_at=expires,
            effective_at=effective or now,
            seq=seq,
            scope=frozenset(scope) if scope else None,
            amount=amount,
            remaining=amount,
            status="pending" if pending else "active",
        )
        return result.lot_id

    @rule(action=actions, amount=amounts)
    def deduct(self, action: str, amount: int) -> None:
        self._upkeep()
        takes = self.model.draw(action, amount, self.clock.now_ms)
        if takes is None:
            with pytest.raises(InsufficientCreditsError) as refused:
                self.ledger.deduct(self.user, amount, action)
            assert refused.value.available == self.model.available(action)
            return
        self.ledger.deduct(self.user, amount, action)
        assert self.ledger.get_transactions(self.user, limit=1)[0].lots == {
            lot_id: -n for lot_id, n in takes.items()
        }
        for lot_id, n in takes.items():
            self.model.lots[lot_id].remaining -= n
            self.model.lots[lot_id].spent += n
        self.model.finish_done()

    @rule(target=holds, action=actions, amount=amounts, ttl=st.integers(min_value=1, max_value=400))
    def reserve(self, action: str, amount: int, ttl: int) -> str:
        self._upkeep()
        takes = self.model.draw(action, amount, self.clock.now_ms)
        if takes is None:
            with pytest.raises(InsufficientCreditsError):
                self.ledger.reserve(self.user, amount, action, ttl=ttl)
            return ""
        hold = self.ledger.reserve(self.user, amount, action, ttl=ttl)
        assert hold.lots == takes
        for lot_id, n in takes.items():
            self.model.lots[lot_id].remaining -= n
            self.model.lots[lot_id].held += n
        self.model.holds[hold.id] = ModelHold(
            amount, action, self.clock.now_ms + ttl * 1000, dict(takes)
        )
        return hold.id

    @rule(rid=holds, actual=st.integers(min_value=0, max_value=300))
    def settle(self, rid: str, actual: int) -> None:
        if not rid:
            return
        self._upkeep()
        hold = self.model.holds[rid]
        if hold.status == "released":
            with pytest.raises(ReservationClosedError):
                self.ledger.settle(rid, actual)
            return
        result = self.ledger.settle(rid, actual)
        if hold.status == "settled":
            assert result == hold.first_result
            return
        late = hold.status == "expired"
        from_hold = 0 if late else min(actual, hold.amount)
        returned, forfeited = (0, 0) if late else self.model.give_back(hold.pins, from_hold)
        excess = actual - from_hold
        cover = min(excess, self.model.available(hold.action))
        takes = self.model.draw(hold.action, cover, self.clock.now_ms) if cover else {}
        assert takes is not None
        for lot_id, n in takes.items():
            self.model.lots[lot_id].remaining -= n
            self.model.lots[lot_id].spent += n
        self.model.finish_done()
        assert (result.charged, result.released, result.shortfall, result.late) == (
            from_hold + cover,
            returned,
            excess - cover,
            late,
        )
        assert result.forfeited == forfeited
        hold.status, hold.first_result = "settled", result

    @rule(rid=holds)
    def release(self, rid: str) -> None:
        if not rid:
            return
        self._upkeep()
        hold = self.model.holds[rid]
        if hold.status in ("settled", "expired"):
            with pytest.raises(ReservationClosedError):
                self.ledger.release(rid)
            return
        result = self.ledger.release(rid)
        if hold.status == "released":
            assert result == hold.first_result
            return
        returned, forfeited = self.model.give_back(hold.pins, 0)
        assert (result.released, result.forfeited) == (returned, forfeited)
        hold.status, hold.first_result = "released", result

    @rule(lot_id=lots)
    def void(self, lot_id: str) -> None:
        self._upkeep()
        lot = self.model.lots[lot_id]
        if lot.public_status() in ("exhausted", "expired"):
            with pytest.raises(LotClosedError):
                self.ledger.void_lot(lot_id)
            return
        result = self.ledger.void_lot(lot_id)
        if lot.status == "voided":
            assert result == lot.void_result
            return
        lot.voided += lot.remaining
        lot.remaining = 0
        lot.status, lot.void_result = "voided", result
        self.model.finish_done()

    @rule(seconds=st.floats(min_value=0.001, max_value=300, allow_nan=False))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def sweeps(self) -> None:
        """The beat's sweeps for holds and lots do what the lazy upkeep would have."""
        self.ledger.expire_reservations()
        self.ledger.expire_lots()
        self._upkeep()

    @invariant()
    def every_lot_agrees_with_the_model(self) -> None:
        self._upkeep()
        account = self.ledger.get_account(self.user) if self.model.lots else None
        if account is None:
            return
        balance = sum(lot.remaining for lot in self.model.lots.values() if lot.status == "active")
        held = sum(lot.held for lot in self.model.lots.values())
        assert (account.balance, account.held) == (balance, held)
        ledger_lots = {lot.id: lot for lot in self.ledger.list_lots(self.user)}
        for lot_id, lot in self.model.lots.items():
            assert lot.conserved(), lot
            seen = ledger_lots[lot_id]
            assert (seen.remaining, seen.held, seen.status) == (
                lot.remaining,
                lot.held,
                lot.public_status(),
            ), (lot, seen)
        verification = self.ledger.verify_balance(self.user)
        assert verification.valid, verification


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_lot_state_machine(redis_url: str, client_kind: str) -> None:
    machine = type(
        f"LotMachine_{client_kind}",
        (LotMachine,),
        {"client_kind": client_kind, "redis_url": redis_url},
    )
    machine.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine.TestCase().runTest()
