"""The drawdown order in Python: the twin of ``draws_before`` and ``draw`` in ``lots.lua``.

``lots.lua`` applies these rules inside Redis, in the same script as the deduct,
reserve or settle; this is the same order and arithmetic, pure, for the tests
(and the stateful model) to check the script against, and for a reader who
wants the rules without reading Lua.

The order, among the lots that apply to the action (scope None or naming it),
are in effect (``effective_at <= now``) and not expired (``now < expires_at``):

1. ``priority`` ascending (lower is drawn first),
2. then ``expires_at`` ascending, never-expiring last,
3. then creation order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

NEVER = float("inf")


@dataclass(frozen=True, slots=True)
class DrawableLot:
    """What the order needs to know of a lot."""

    id: str
    priority: int
    expires_at: int | None
    seq: int
    remaining: int
    scope: frozenset[str] | None = None
    effective_at: int = 0

    def applies_to(self, action: str) -> bool:
        return self.scope is None or action in self.scope

    def spendable(self, now_ms: int) -> bool:
        expired = self.expires_at is not None and self.expires_at <= now_ms
        return self.effective_at <= now_ms and not expired


def drawdown_key(lot: DrawableLot) -> tuple[int, float, int]:
    return (lot.priority, NEVER if lot.expires_at is None else lot.expires_at, lot.seq)


def drawdown_order(lots: Iterable[DrawableLot], action: str, now_ms: int) -> list[DrawableLot]:
    """The lots ``action`` may draw from at ``now_ms``, in the order it draws them."""
    usable = [lot for lot in lots if lot.applies_to(action) and lot.spendable(now_ms)]
    return sorted(usable, key=drawdown_key)


def available(lots: Iterable[DrawableLot], action: str, now_ms: int) -> int:
    return sum(lot.remaining for lot in drawdown_order(lots, action, now_ms))


def draw(
    lots: Sequence[DrawableLot], action: str, amount: int, now_ms: int
) -> dict[str, int] | None:
    """{lot id: credits} that ``amount`` takes, or None when the lots cannot cover it."""
    takes: dict[str, int] = {}
    need = amount
    for lot in drawdown_order(lots, action, now_ms):
        if need == 0:
            break
        take = min(lot.remaining, need)
        if take:
            takes[lot.id] = take
            need -= take
    return takes if need == 0 else None
