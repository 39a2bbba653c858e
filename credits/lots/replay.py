"""Every lot rebuilt from the log alone: what verify checks and rebuild writes.

The log says, for every event, the balance delta each lot took (``L``), the
terms of each lot an event created (``T``), which lot a lot event is about
(``x``), and, through the hold id, which lots each hold pinned (its reserve
event's deltas) until the event that closed it. Replaying it in order gives
each lot's remaining, held and status, the same as ``lots.lua`` keeps them:

* a created lot is pending (its remaining is its amount, outside the balance)
  or active; ``lot_start`` puts a pending lot's amount into the balance;
  ``lot_expire`` and ``lot_void`` end it;
* a lot with nothing remaining and nothing held (and not pending) is finished
  and leaves the active set;
* events written before lots existed have no ``L``: they move the legacy lot,
  which becomes a paid lot of what the account held when its first lot event
  came (as ``lots.lua`` migrates a legacy account).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from credits import log_format
from credits.keys import LEGACY_LOT_ID

CLOSING_TYPES = frozenset({"settle", "release", "expire"})
LOT_CREATING_TYPES = frozenset({"initialize", "add", "allowance", "rollover"})
LOT_FIELDS_COMPARED = ("r", "h", "st")


@dataclass
class LogReplay:
    """The account the log adds up to, fed one event at a time in log order."""

    balance: int = 0
    held: int = 0
    events: int = 0
    first_ms: str = ""  # the first event's millisecond: the account's creation time
    init_result: str = ""  # what the account's "init" field holds
    end: str = ""  # the last event replayed
    lot_seq: int = 0
    lots: dict[str, dict[str, Any]] = field(default_factory=dict)  # the active lots
    pins: dict[str, dict[str, int]] = field(default_factory=dict)  # open hold -> lot -> n
    in_legacy_prefix: bool = True

    def feed(self, entries: Iterable[tuple[str, dict[str, str]]]) -> None:
        for entry_id, fields in entries:
            self.apply(entry_id, fields)

    def apply(self, entry_id: str, fields: dict[str, str]) -> None:
        kind = fields[log_format.TYPE]
        balance_delta = int(fields[log_format.BALANCE_DELTA])
        held_delta = int(fields[log_format.HELD_DELTA])
        ms = entry_id.partition("-")[0]
        self.first_ms = self.first_ms or ms
        self.balance += balance_delta
        self.held += held_delta
        self.events += 1
        self.end = entry_id
        encoded = fields.get(log_format.LOTS)
        if encoded is None:
            deltas = {LEGACY_LOT_ID: balance_delta} if balance_delta else {}
            self._legacy_lot()
        else:
            self._end_legacy_prefix()
            deltas = log_format.parse_lot_deltas(encoded)
        if kind == "initialize" and not self.init_result:
            created = ""
            if log_format.TERMS in fields:
                created = str(json.loads(fields[log_format.TERMS])["i"])
            self.init_result = f"{entry_id},{fields[log_format.BALANCE_AFTER]},{ms}|{created}"
        if kind in LOT_CREATING_TYPES and log_format.TERMS in fields:
            self._create(json.loads(fields[log_format.TERMS]), fields[log_format.ACTION])
        subject = self.lots.get(fields.get(log_format.EXTRA, ""))
        if kind == "lot_start" and subject is not None:
            subject["st"], subject["r"] = "active", "0"
        if kind == "lot_void" and subject is not None and subject["st"] == "pending":
            subject["r"] = "0"
        for lot_id, delta in deltas.items():
            moved = self.lots.setdefault(lot_id, self._orphan(lot_id))
            moved["r"] = str(int(moved["r"]) + delta)
        hold = fields.get(log_format.HOLD, "")
        if kind == "reserve" and hold:
            pins = {lot: -delta for lot, delta in deltas.items() if delta < 0}
            self.pins[hold] = pins
            for lot_id, n in pins.items():
                self.lots[lot_id]["h"] = str(int(self.lots[lot_id]["h"]) + n)
        elif kind in CLOSING_TYPES and hold in self.pins:
            for lot_id, n in self.pins.pop(hold).items():
                pinned = self.lots.setdefault(lot_id, self._orphan(lot_id))
                pinned["h"] = str(int(pinned["h"]) - n)
        if subject is not None and kind == "lot_expire":
            subject["st"] = "expired"
        if subject is not None and kind == "lot_void":
            subject["st"] = "voided"
            subject["vr"] = f"{entry_id},{fields[log_format.BALANCE_AFTER]},{ms}"
        if not self.in_legacy_prefix:
            self._finish_done()

    def _create(self, terms: dict[str, Any], action: str) -> None:
        self.lot_seq += 1
        pending = terms.get("st") == "pending"
        lot = {
            "i": str(terms["i"]),
            "c": str(terms["c"]),
            "p": str(terms["p"]),
            "a": str(terms["a"]),
            "r": str(terms["a"]) if pending else "0",
            "h": "0",
            "f": str(terms["f"]),
            "e": str(terms.get("e", "")),
            "n": str(self.lot_seq),
            "st": "pending" if pending else "active",
            "x": action,
        }
        if isinstance(terms.get("s"), dict):
            lot["s"] = terms["s"]
        if terms.get("w"):
            lot["w"] = "1"  # made without an expiring notice (allowance and rollover lots)
        self.lots[lot["i"]] = lot

    def _legacy_lot(self) -> None:
        if LEGACY_LOT_ID not in self.lots:
            self.lots[LEGACY_LOT_ID] = {
                "i": LEGACY_LOT_ID, "c": "paid", "p": "50", "a": "0", "r": "0", "h": "0",
                "f": self.first_ms, "e": "", "n": "0", "st": "active", "x": "legacy",
            }  # fmt: skip

    def _end_legacy_prefix(self) -> None:
        """The first event written with lots: the legacy lot is what the account held."""
        if not self.in_legacy_prefix:
            return
        self.in_legacy_prefix = False
        legacy = self.lots.get(LEGACY_LOT_ID)
        if legacy is not None:
            legacy["a"] = str(int(legacy["r"]) + int(legacy["h"]))
        self._finish_done()

    def _orphan(self, lot_id: str) -> dict[str, Any]:
        """A lot the log moves but never created: only damaged data has one."""
        return {"i": lot_id, "c": "paid", "p": "50", "a": "0", "r": "0", "h": "0", "f": "0",
                "e": "", "n": "0", "st": "active", "x": "unknown"}  # fmt: skip

    def _finish_done(self) -> None:
        for lot_id in [i for i, lot in self.lots.items() if _done(lot)]:
            del self.lots[lot_id]

    def finish(self) -> None:
        """The log has been read to its end."""
        self._end_legacy_prefix()

    def active_lots(self, cached: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The active set as ``lots.lua`` stores it: in drawdown order, with what only the
        cache knows (whether a lot's expiring notice went out) kept from ``cached``."""
        notified = {str(lot.get("i")): lot.get("w") for lot in cached if lot.get("w")}
        lots = []
        for lot in self.lots.values():
            copy = dict(lot)
            if notified.get(copy["i"]):
                copy["w"] = "1"
            lots.append(copy)
        return sorted(lots, key=_drawdown_key)

    def lot_problems(self, cached: list[dict[str, Any]]) -> list[str]:
        """How the cached active lots differ from the log's, in words."""
        problems: list[str] = []
        by_id = {str(lot.get("i")): lot for lot in cached}
        for lot_id in sorted(set(by_id) | set(self.lots)):
            mine, theirs = self.lots.get(lot_id), by_id.get(lot_id)
            if mine is None:
                problems.append(f"lot {lot_id} is cached as active but the log finished it")
            elif theirs is None:
                problems.append(f"lot {lot_id} is active in the log but missing from the cache")
            else:
                for name in LOT_FIELDS_COMPARED:
                    if str(theirs.get(name)) != str(mine.get(name)):
                        problems.append(
                            f"lot {lot_id}: cached {name}={theirs.get(name)!r}, "
                            f"log {mine.get(name)!r}"
                        )
        return problems


def _done(lot: dict[str, Any]) -> bool:
    return lot["st"] != "pending" and int(lot["r"]) == 0 and int(lot["h"]) == 0


def _drawdown_key(lot: dict[str, Any]) -> tuple[int, int, int]:
    expires = int(lot["e"]) if lot.get("e") else 2**63
    return int(lot["p"]), expires, int(lot["n"])
