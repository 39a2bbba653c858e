"""The settle rules (docs/CONTRACT.md, "Settle") as a pure function.

``settle.lua`` applies these rules inside Redis; this is the same arithmetic in
Python, the reference the tests (and the stateful model) check the script
against, and the place to read the rules without reading Lua.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SettleOutcome:
    charged: int
    released: int
    shortfall: int
    balance_delta: int
    held_delta: int


def settle_outcome(held_amount: int, actual: int, balance: int, *, late: bool) -> SettleOutcome:
    """What settling a hold of ``held_amount`` at ``actual`` does to a ``balance``.

    * on time, ``actual <= held``: charge ``actual``, return the rest;
    * on time, overage: charge the hold plus as much of the excess as the
      balance covers; the rest is the shortfall (settle never fails: the work
      was done);
    * late (the hold expired and its credits already came back): charge
      ``actual`` from the balance by the same overage rule.
    """
    from_hold = 0 if late else min(actual, held_amount)
    released = 0 if late else held_amount - from_hold
    excess = actual - from_hold
    from_balance = min(excess, balance)
    return SettleOutcome(
        charged=from_hold + from_balance,
        released=released,
        shortfall=excess - from_balance,
        balance_delta=released - from_balance,
        held_delta=0 if late else -held_amount,
    )
