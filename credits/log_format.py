"""The fields of a log event, named once.

Each event of a user's log is a Redis Stream entry whose fields have one-letter
names (memory per event is the deciding cost of a log that is kept for years).
This table is the only place those letters are written: Python reads events
through it, and :mod:`credits.scripts` writes it into the Lua scripts as the
table ``F``, so ``F.balance_delta`` in Lua and ``FIELDS["balance_delta"]`` in
Python are the same field by construction.
"""

from __future__ import annotations

from typing import Final

FIELDS: Final[dict[str, str]] = {
    # initialize, deduct, add, reserve, settle, release, expire, lot_start, lot_expire,
    # lot_void, allowance, rollover
    "type": "t",
    "amount": "a",  # positive magnitude
    "balance_delta": "b",
    "held_delta": "h",
    "balance_after": "B",
    "held_after": "H",  # absent from events written before it existed
    "action": "c",
    "metadata": "m",  # compact JSON, "" for none
    "hold": "r",  # hold id within the user, "" for none
    "extra": "x",  # settle: "<shortfall>" or "<shortfall>:late"; lot events: the lot id
    # each lot's balance delta, "<lot id>:<delta>,..." (absent before lots existed: the
    # legacy lot's); the deltas sum to the balance delta
    "lots": "L",
}

# Written only when they apply (after the fields above).
OPTIONAL_FIELDS: Final[dict[str, str]] = {
    "terms": "T",  # a created lot's terms (JSON): i c p a f e s st
    "forfeited": "f",  # credits that left because the lot they came back to had expired/voided
}

TYPE: Final = FIELDS["type"]
AMOUNT: Final = FIELDS["amount"]
BALANCE_DELTA: Final = FIELDS["balance_delta"]
HELD_DELTA: Final = FIELDS["held_delta"]
BALANCE_AFTER: Final = FIELDS["balance_after"]
HELD_AFTER: Final = FIELDS["held_after"]
ACTION: Final = FIELDS["action"]
METADATA: Final = FIELDS["metadata"]
HOLD: Final = FIELDS["hold"]
EXTRA: Final = FIELDS["extra"]
LOTS: Final = FIELDS["lots"]
TERMS: Final = OPTIONAL_FIELDS["terms"]
FORFEITED: Final = OPTIONAL_FIELDS["forfeited"]


def lua_table() -> str:
    """The fields as a Lua table literal, ``{type='t', amount='a', ...}``."""
    every = {**FIELDS, **OPTIONAL_FIELDS}
    return "{" + ", ".join(f"{name}='{letter}'" for name, letter in every.items()) + "}"


def parse_lot_deltas(encoded: str) -> dict[str, int]:
    """An event's lots field as {lot id within the user: balance delta}."""
    deltas: dict[str, int] = {}
    for part in encoded.split(","):
        if part:
            lot, _, delta = part.partition(":")
            deltas[lot] = int(delta)
    return deltas
