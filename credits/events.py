"""The ledger's events as apps see them: types, ids, and entries of the outbox parsed.

The scripts write each event into the outbox of the user's bucket
(``credits:{b<n>}:outbox``, see ``lua/include/events.lua``) in the same call as
the change that causes it. An entry has three fields: ``t`` (the type), ``u``
(the escaped user id) and ``d`` (JSON data, always with ``at``, the ledger's
time in ms). This module turns an entry into a :class:`~credits.models.LedgerEvent`:

* ``id`` is ``evt_<bucket>_<stream id>``: the stream id is unique in its bucket
  and never reused (Redis keeps a stream's last id even when entries are
  trimmed), so the id is unique across the ledger and the same for every read
  and every delivery of the event;
* ``created_at`` is ``at``; ``user_id`` is ``u`` unescaped;
* ``data`` is ``d`` without ``at``, with the in-user ids turned public (``hold``
  into ``reservation_id``, ``lot`` into ``lot_id``, ``topup`` into ``topup_id``)
  and the log's ``tx`` named ``tx_id``; credit amounts and times, which the
  scripts write as strings of digits (Redis's cjson rounds numbers past 14
  digits), are ints again (:data:`INTEGER_FIELDS`); every other field passes
  through as the script wrote it.

Every type a script may write is listed in :data:`EVENT_TYPES` (a test reads
the scripts and fails on an ``emit`` of a type missing here), so a webhook's
filter can refuse a misspelt type instead of silently never matching.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from credits import limits
from credits.errors import InvalidInputError
from credits.keys import lot_id, reservation_id, topup_id, unescape_user_id, user_keys
from credits.models import LedgerEvent

logger = logging.getLogger(__name__)

# Every event type the scripts write. When a script starts writing a new type, add it
# here (tests/test_events.py fails until then) and to the table in docs/CONTRACT.md.
EVENT_TYPES: Final = frozenset(
    {
        "reservation.expired",  # a hold reached its expiry unsettled; its credits came back
        "settlement.shortfall",  # a settle charged less than the actual cost
        "balance.below",  # the balance fell below a user's alert threshold
        "balance.recovered",  # it came back above it
        "balance.depleted",  # it reached zero
        "lot.expiring",  # a lot of credits expires soon
        "lot.expired",  # a lot reached its expiry (what was left of it, and held, in data)
        "allowance.renewed",  # a periodic allowance was granted again
        "limit.reached",  # a spend limit's window has used all of it
        "topup.requested",  # auto top-up asks the app to charge the user
        "topup.disabled",  # auto top-up stopped (failures, or turned off)
    }
)

EVENT_ID_PREFIX: Final = "evt_"
_EVENT_ID: Final = re.compile(
    r"^evt_(0|[1-9][0-9]{0,3})_((?:0|[1-9][0-9]{0,15})-(?:0|[1-9][0-9]{0,19}))$"
)
_TYPE_NAME: Final = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_PREFIX_FILTER: Final = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.\*)$")
SEQUENCE_MAX: Final = 2**64 - 1
_DIGITS: Final = re.compile(r"^-?[0-9]{1,16}$")

# Field renames from the outbox's short names to the public ones.
_HOLD: Final = "hold"
_LOT: Final = "lot"
_TOPUP: Final = "topup"
_TX: Final = "tx"
# Data fields that hold credits or Unix ms: ints in every event, whatever the script wrote.
INTEGER_FIELDS: Final = frozenset(
    {
        "amount", "balance", "below", "used", "expired", "held", "remaining", "charged",
        "shortfall", "expires_at", "window_start", "period_start", "period_end", "rolled_over",
        "failures",
    }
)  # fmt: skip
_AT: Final = "at"
UNDECODABLE_DATA_KEY: Final = "undecodable_data"

StreamId = tuple[int, int]
"""A stream id as (ms, sequence), which orders like the stream does."""


def parse_stream_id(value: str) -> StreamId:
    """``"<ms>-<seq>"`` as a tuple (for ids Redis itself returned)."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


def format_stream_id(value: StreamId) -> str:
    return f"{value[0]}-{value[1]}"


def event_id(bucket: int, stream_id: str) -> str:
    return f"{EVENT_ID_PREFIX}{bucket}_{stream_id}"


def parse_event_id(value: object) -> tuple[int, str]:
    """(bucket, stream id) of an event id; :class:`InvalidInputError` for anything else."""
    if not isinstance(value, str):
        raise InvalidInputError(f"an event id must be a str, got {type(value).__name__}")
    match = _EVENT_ID.match(value)
    if match is None or int(match[1]) >= limits.BUCKET_COUNT:
        raise InvalidInputError(f"not an event id (evt_<bucket>_<ms>-<seq>): {value[:80]!r}")
    ms, seq = parse_stream_id(match[2])
    if ms > limits.AMOUNT_MAX or seq > SEQUENCE_MAX:
        raise InvalidInputError(f"event id {value[:80]!r} is out of range")
    return int(match[1]), match[2]


def _public_data(user_id: str, raw: str) -> tuple[int | None, dict[str, Any]]:
    """(``at``, data with public names) from the entry's JSON."""
    try:
        decoded = json.loads(raw)
    except (ValueError, RecursionError):
        return None, {UNDECODABLE_DATA_KEY: raw}
    if not isinstance(decoded, dict):
        return None, {UNDECODABLE_DATA_KEY: raw}
    at = decoded.pop(_AT, None)
    data: dict[str, Any] = {}
    for name, value in decoded.items():
        if name == _HOLD and isinstance(value, str) and value:
            data["reservation_id"] = reservation_id(user_keys(user_id), value)
        elif name == _LOT and isinstance(value, str) and value:
            data["lot_id"] = lot_id(user_keys(user_id), value)
        elif name == _TOPUP and isinstance(value, str) and value:
            data["topup_id"] = topup_id(user_keys(user_id), value)
        elif name == _TX:
            data["tx_id"] = value
        elif name in INTEGER_FIELDS and isinstance(value, str) and _DIGITS.match(value):
            data[name] = int(value)
        else:
            data[name] = value
    created = at if isinstance(at, int) and not isinstance(at, bool) else None
    return created, data


def parse_entry(bucket: int, entry_id: str, fields: Mapping[str, str]) -> LedgerEvent | None:
    """The event of one outbox entry; None (logged) for an entry the scripts cannot have made."""
    kind, escaped = fields.get("t"), fields.get("u")
    if not kind or not escaped:
        logger.warning("outbox of bucket %d: entry %s has no type or user", bucket, entry_id)
        return None
    user_id = unescape_user_id(escaped)
    created, data = _public_data(user_id, fields.get("d", "{}"))
    return LedgerEvent(
        id=event_id(bucket, entry_id),
        type=kind,
        created_at=created if created is not None else parse_stream_id(entry_id)[0],
        user_id=user_id,
        data=data,
    )


def parse_entries(bucket: int, entries: Iterable[Any]) -> list[tuple[str, LedgerEvent | None]]:
    """Each ``(stream id, fields)`` of an XRANGE reply as (stream id, its event or None)."""
    return [(entry_id, parse_entry(bucket, entry_id, fields)) for entry_id, fields in entries]


# ---------------------------------------------------------------- filters


def check_event_filters(events: object) -> list[str] | None:
    """A webhook's filter: None (every type) or a sorted list of known types / ``prefix.*``.

    A name no script writes is refused, so a typo is an error now rather than
    an endpoint that never hears anything.
    """
    if events is None:
        return None
    if isinstance(events, str | bytes) or not isinstance(events, Iterable):
        raise InvalidInputError("events must be a list of event types (or None for all)")
    chosen: set[str] = set()
    for item in events:
        if not isinstance(item, str):
            raise InvalidInputError(f"an event type must be a str, got {type(item).__name__}")
        if len(item) > limits.WEBHOOK_EVENT_TYPE_CHARS_MAX:
            raise InvalidInputError(
                f"an event type is at most {limits.WEBHOOK_EVENT_TYPE_CHARS_MAX} characters"
            )
        if _PREFIX_FILTER.match(item):
            prefix = item[:-1]
            if not any(kind.startswith(prefix) for kind in EVENT_TYPES):
                raise InvalidInputError(f"no event type matches {item!r}")
        elif not _TYPE_NAME.match(item) or item not in EVENT_TYPES:
            raise InvalidInputError(
                f"unknown event type {item[:64]!r}; known: {', '.join(sorted(EVENT_TYPES))}"
            )
        chosen.add(item)
        if len(chosen) > limits.WEBHOOK_EVENT_FILTERS_MAX:
            raise InvalidInputError(
                f"at most {limits.WEBHOOK_EVENT_FILTERS_MAX} event filters per endpoint"
            )
    if not chosen:
        raise InvalidInputError("events must name at least one type (or be None for all)")
    return sorted(chosen)


def matches(filters: list[str] | None, kind: str) -> bool:
    """Whether an endpoint with ``filters`` receives events of type ``kind``."""
    if filters is None:
        return True
    for item in filters:
        if item == kind or item == "*" or (item.endswith(".*") and kind.startswith(item[:-1])):
            return True
    return False
