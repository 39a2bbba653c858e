"""Stored lots as :class:`~credits.models.Lot`.

An active lot's state lives in the account (``lots.lua``'s JSON array, every
number a string); its details (metadata, creation time, creating event) in the
user's lots hash. A finished lot's record in that hash holds both.
"""

from __future__ import annotations

import json
from typing import Any

from credits.keys import UserKeys, lot_id
from credits.models import Lot, LotStatus
from credits.validation import decode_metadata


def lot_status(state: dict[str, Any], now_ms: int) -> LotStatus:
    """The public status (a stored active lot with nothing left or held is exhausted)."""
    stored = str(state.get("st", "active"))
    if stored in ("pending", "expired", "voided", "exhausted"):
        return stored  # type: ignore[return-value]
    if int(state.get("r", 0)) == 0 and int(state.get("h", 0)) == 0:
        return "exhausted"
    return "active"


def parse_lot(user: UserKeys, state: dict[str, Any], details: dict[str, Any], now_ms: int) -> Lot:
    merged = {**details, **state}
    scope = merged.get("s")
    expires = merged.get("e", "")
    return Lot(
        id=lot_id(user, str(merged["i"])),
        user_id=user.user_id,
        category=merged["c"],
        priority=int(merged["p"]),
        amount=int(merged["a"]),
        remaining=int(merged["r"]),
        held=int(merged["h"]),
        effective_at=int(merged["f"]),
        expires_at=int(expires) if expires not in ("", None) else None,
        scope=sorted(scope) if isinstance(scope, dict) else None,
        status=lot_status(merged, now_ms),
        action=str(merged.get("x", "")),
        metadata=decode_metadata(str(merged.get("m", "") or "")),
        created_at=int(merged.get("t", merged["f"])),
    )


def parse_lot_pairs(user: UserKeys, reply: list[Any]) -> list[Lot]:
    """read_lots.lua's reply: {"ok", now, state, details, state, details, ...}."""
    now_ms = int(reply[1])
    return [
        parse_lot(user, json.loads(reply[i]), json.loads(reply[i + 1]), now_ms)
        for i in range(2, len(reply) - 1, 2)
    ]


def active_lots(encoded: str) -> list[dict[str, Any]]:
    """The account's active lots; Redis's cjson writes an empty array as ``{}``."""
    value = json.loads(encoded) if encoded else []
    return value if isinstance(value, list) else []
