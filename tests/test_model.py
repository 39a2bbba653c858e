"""A Hypothesis state machine runs the whole API against a small Python model.

After every step: balance >= 0, held equals the sum of open holds, balance +
held + charged is conserved against what was granted, the cached balance
verifies against the log, and the ledger agrees with the model. The settle
arithmetic of the model is :func:`credits.reservations.rules.settle_outcome`,
so the Lua script is checked against the documented rules too.

The clock stands for the server's: it moves forward and, now and then, steps
back (as a server's clock can); the ledger's timestamps must only grow. Bursts
of holds expiring in the same instant outnumber what one call may close, so
every decision must still see them all expired. Paging the whole history
back with ``before`` cursors must reach every event the model counted, and
``balance_at`` must agree with the account.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from ledger_fixtures import Clock, make_ledger

from credits.errors import (
    InsufficientCreditsError,
    LimitExceededError,
    ReservationClosedError,
)
from credits.limits import OPEN_HOLDS_PER_USER_MAX
from credits.reservations.rules import settle_outcome

SLOW = os.environ.get("CREDITS_SLOW_TESTS") == "1"
EXAMPLES = 500 if SLOW else 50
STEPS = 80 if SLOW else 40

PAGE = 50
BURST_OPEN_HOLDS_MAX = 150  # bursts keep coming until this many holds are open
LATER_THAN_EVERYTHING_MS = 2**52
amounts = st.integers(min_value=1, max_value=400)
ttls_s = st.integers(min_value=1, max_value=300)


@dataclass
class ModelHold:
    amount: int
    expires_ms: int
    status: str = "open"
    first_result: Any = None


class LedgerMachine(RuleBasedStateMachine):
    """One user, the real ledger and a model of it, moved by the same steps."""

    client_kind = "sync"
    redis_url = ""

    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.ledger, self._close = make_ledger(self.client_kind, self.redis_url, clock=self.clock)
        self.user = f"model-{uuid.uuid4().hex}"
        self.balance = 0
        self.granted = 0
        self.charged = 0
        self.model_holds: dict[str, ModelHold] = {}
        self.events = 0  # what the log must hold
        self.last_timestamp = 0

    def teardown(self) -> None:
        self._close()

    # The model's lazy expiry: what every script does first.
    def _expire_due(self) -> None:
        for hold in self.model_holds.values():
            if hold.status == "open" and hold.expires_ms <= self.clock.now_ms:
                hold.status = "expired"
                self.balance += hold.amount
                self.events += 1

    def _stamped(self, timestamp: int) -> None:
        """Timestamps only grow per user, whatever the clock did."""
        assert timestamp >= self.last_timestamp
        self.last_timestamp = timestamp
        self.events += 1

    @property
    def held(self) -> int:
        return sum(h.amount for h in self.model_holds.values() if h.status == "open")

    @initialize(credits=st.integers(min_value=0, max_value=2000))
    def start(self, credits: int) -> None:
        result = self.ledger.initialize_user(self.user, credits)
        self.balance = self.granted = credits
        assert result.balance == credits
        self._stamped(result.timestamp)

    @rule(amount=amounts)
    def deduct(self, amount: int) -> None:
        self._expire_due()
        if amount > self.balance:
            with pytest.raises(InsufficientCreditsError):
                self.ledger.deduct(self.user, amount, "chat_message")
            return
        result = self.ledger.deduct(self.user, amount, "chat_message")
        assert result.balance == self.balance - amount
        self._stamped(result.timestamp)
        self.balance -= amount
        self.charged += amount

    @rule(amount=amounts)
    def add(self, amount: int) -> None:
        self._expire_due()
        result = self.ledger.add(self.user, amount, "purchase")
        assert result.balance == self.balance + amount
        self._stamped(result.timestamp)
        self.balance += amount
        self.granted += amount

    def _open_count(self) -> int:
        return sum(1 for hold in self.model_holds.values() if hold.status == "open")

    @rule(target=holds, amount=amounts, ttl=ttls_s)
    def reserve(self, amount: int, ttl: int) -> str:
        self._expire_due()
        if self._open_count() >= OPEN_HOLDS_PER_USER_MAX:
            with pytest.raises(LimitExceededError):
                self.ledger.reserve(self.user, amount, "video_generation", ttl=ttl)
            return ""
        if amount > self.balance:
            with pytest.raises(InsufficientCreditsError):
                self.ledger.reserve(self.user, amount, "video_generation", ttl=ttl)
            return ""
        hold = self.ledger.reserve(self.user, amount, "video_generation", ttl=ttl)
        self.balance -= amount
        self.model_holds[hold.id] = ModelHold(amount, self.clock.now_ms + ttl * 1000)
        self._stamped(hold.created_at)
        return hold.id

    @precondition(lambda self: self._open_count() < BURST_OPEN_HOLDS_MAX)
    @rule(count=st.integers(min_value=65, max_value=80), ttl=ttls_s)
    def burst(self, count: int, ttl: int) -> None:
        """More holds expiring in one instant than one call may close."""
        self._expire_due()
        for _ in range(min(count, self.balance, OPEN_HOLDS_PER_USER_MAX - self._open_count())):
            hold = self.ledger.reserve(self.user, 1, "video_generation", ttl=ttl)
            self.balance -= 1
            self.model_holds[hold.id] = ModelHold(1, self.clock.now_ms + ttl * 1000)
            self._stamped(hold.created_at)

    @rule(rid=holds, actual=st.integers(min_value=0, max_value=800))
    def settle(self, rid: str, actual: int) -> None:
        if not rid:
            return
        self._expire_due()
        hold = self.model_holds[rid]
        if hold.status == "released":
            with pytest.raises(ReservationClosedError):
                self.ledger.settle(rid, actual)
            return
        result = self.ledger.settle(rid, actual)
        if hold.status == "settled":
            assert result == hold.first_result
            return
        outcome = settle_outcome(hold.amount, actual, self.balance, late=hold.status == "expired")
        assert (result.charged, result.released, result.shortfall, result.late) == (
            outcome.charged,
            outcome.released,
            outcome.shortfall,
            hold.status == "expired",
        )
        self.balance += outcome.balance_delta
        self.charged += outcome.charged
        assert result.balance == self.balance
        self.events += 1
        hold.status, hold.first_result = "settled", result

    @rule(rid=holds)
    def release(self, rid: str) -> None:
        if not rid:
            return
        self._expire_due()
        hold = self.model_holds[rid]
        if hold.status in ("settled", "expired"):
            with pytest.raises(ReservationClosedError):
                self.ledger.release(rid)
            return
        result = self.ledger.release(rid)
        if hold.status == "released":
            assert result == hold.first_result
            return
        self.balance += hold.amount
        assert (result.charged, result.released, result.balance) == (0, hold.amount, self.balance)
        self.events += 1
        hold.status, hold.first_result = "released", result

    @rule(rid=holds, ttl=ttls_s)
    def extend(self, rid: str, ttl: int) -> None:
        if not rid:
            return
        self._expire_due()
        hold = self.model_holds[rid]
        if hold.status != "open":
            with pytest.raises(ReservationClosedError):
                self.ledger.extend(rid, ttl)
            return
        hold.expires_ms = max(hold.expires_ms, self.clock.now_ms + ttl * 1000)
        assert self.ledger.extend(rid, ttl).expires_at == hold.expires_ms

    @rule(seconds=st.floats(min_value=0.001, max_value=400, allow_nan=False))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(seconds=st.floats(min_value=0.001, max_value=120, allow_nan=False))
    def clock_steps_back(self, seconds: float) -> None:
        """The server's clock is stepped back (NTP): nothing closed reopens, stamps still grow."""
        self.clock.advance(-seconds)

    @rule()
    def sweep(self) -> None:
        due = sum(
            1
            for h in self.model_holds.values()
            if h.status == "open" and h.expires_ms <= self.clock.now_ms
        )
        assert self.ledger.expire_reservations() >= due  # other tests' users may be due too
        self._expire_due()

    @invariant()
    def agrees_with_the_model(self) -> None:
        self._expire_due()
        account = self.ledger.get_account(self.user)
        assert account.balance >= 0 and account.held >= 0
        assert (account.balance, account.held) == (self.balance, self.held)
        assert account.balance + account.held + self.charged == self.granted
        verification = self.ledger.verify_balance(self.user)
        assert verification.valid, verification
        assert verification.events == self.events
        model_open = {rid for rid, hold in self.model_holds.items() if hold.status == "open"}
        listed = self.ledger.list_reservations(self.user, "open")
        assert {hold.id for hold in listed} == model_open

    @invariant()
    def balance_at_agrees(self) -> None:
        latest = self.ledger.balance_at(self.user, LATER_THAN_EVERYTHING_MS)
        assert (latest.balance, latest.held) == (self.balance, self.held)

    @rule()
    def every_event_is_reachable(self) -> None:
        """Paging back with before= cursors reaches every event the model counted."""
        self._expire_due()
        self.ledger.get_account(self.user)  # the ledger closes what the model just expired
        seen, deltas, cursor = 0, 0, None
        while True:
            page = self.ledger.get_transactions(self.user, limit=PAGE, before=cursor)
            if not page:
                break
            seen += len(page)
            deltas += sum(tx.balance_delta for tx in page)
            cursor = page[-1].tx_id
        assert (seen, deltas) == (self.events, self.balance)


@pytest.mark.parametrize("client_kind", ["sync", "async"])
def test_ledger_state_machine(redis_url: str, client_kind: str) -> None:
    machine = type(
        f"LedgerMachine_{client_kind}",
        (LedgerMachine,),
        {"client_kind": client_kind, "redis_url": redis_url},
    )
    machine.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    machine.TestCase().runTest()
