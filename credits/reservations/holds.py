"""Reservation operations as steps (see :mod:`credits.protocol`).

A reservation id carries the user's bucket tag and escaped id, so settle,
release, extend and reads need nothing but the id: no global lookup, and the
same on a Redis Cluster.
"""

from __future__ import annotations

import json
from typing import Any

from credits import limits, replies
from credits.errors import InvalidInputError, ReservationNotFoundError, StoreRefusedError
from credits.idempotency import fingerprint
from credits.keys import (
    LEGACY_LOT_ID,
    UserKeys,
    lot_id,
    new_hold_id,
    parse_reservation_id,
    reservation_id,
    user_keys,
)
from credits.models import Reservation, ReservationStatus, Settlement
from credits.protocol import Now, Steps, run_script
from credits.scripts import script
from credits.validation import (
    check_action,
    check_amount,
    check_encodable,
    check_idempotency_key,
    check_limit,
    check_reason,
    check_user_id,
    decode_metadata,
    encode_metadata,
    ttl_ms,
)

STATUSES: tuple[ReservationStatus, ...] = ("open", "settled", "released", "expired")


def parse_hold(user: UserKeys, hold_id: str, raw: str) -> Reservation:
    record = json.loads(raw)
    pins = record.get("l") or {LEGACY_LOT_ID: record["a"]}  # a hold made before lots
    return Reservation(
        id=reservation_id(user, hold_id),
        user_id=user.user_id,
        amount=int(record["a"]),
        action=record["c"],
        status=record["s"],
        created_at=int(record["t"]),
        expires_at=int(record["e"]),
        metadata=decode_metadata(record.get("m", "")),
        closed_at=int(record["z"]) if "z" in record else None,
        tx_id=record["x"],
        lots={lot_id(user, lot): int(n) for lot, n in pins.items()},
    )


def parse_settlement(rid: str, encoded: str) -> Settlement:
    tx_id, charged, released, shortfall, balance, late, *rest = encoded.split(",")
    return Settlement(
        tx_id=tx_id,
        reservation_id=rid,
        charged=int(charged),
        released=int(released),
        shortfall=int(shortfall),
        balance=int(balance),
        late=late == "1",
        forfeited=int(rest[0]) if rest else 0,
    )


def _hold_keys(rid: object) -> tuple[UserKeys, str]:
    if not isinstance(rid, str):
        raise InvalidInputError(f"reservation_id must be a str, got {type(rid).__name__}")
    parsed = parse_reservation_id(check_encodable("reservation_id", rid))
    if parsed is None:
        raise InvalidInputError(f"malformed reservation id {rid[:300]!r}")
    return user_keys(parsed.user_id), parsed.hold_id


def reserve(
    now: Now,
    user_id: str,
    amount: int,
    action: str,
    ttl: object,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Steps[Reservation]:
    user = user_keys(check_user_id(user_id))
    amount = check_amount(amount)
    action = check_action(action)
    hold_ttl_ms = ttl_ms(ttl)
    meta = encode_metadata(metadata)
    key = check_idempotency_key(idempotency_key)
    digest = fingerprint("reserve", amount, action, hold_ttl_ms, meta) if key is not None else ""
    keys, args = user.script_call(now, key)
    reply = yield from run_script(
        script("reserve"), keys, [*args, amount, action, meta, digest, new_hold_id(), hold_ttl_ms]
    )
    _, hold_id, record = replies.check(reply, replies.Context("reserve", user_id, amount, key))
    if record is None:  # the key outlived its hold's record: only damaged data does that
        raise StoreRefusedError(f"idempotency key {key!r} points at a hold that is gone")
    return parse_hold(user, hold_id, record)


def _closing_reply(rid: str, operation: str, reply: Any) -> Settlement:
    return parse_settlement(rid, replies.check(reply, replies.Context(operation, rid))[1])


def settle(
    now: Now, rid: str, actual_amount: int, metadata: dict[str, Any] | None
) -> Steps[Settlement]:
    user, hold_id = _hold_keys(rid)
    actual = check_amount(actual_amount, "actual_amount", minimum=0)
    meta = encode_metadata(metadata)
    keys, args = user.script_call(now)
    reply = yield from run_script(script("settle"), keys, [*args, hold_id, actual, meta])
    return _closing_reply(rid, "settle", reply)


def release(now: Now, rid: str, reason: str | None) -> Steps[Settlement]:
    user, hold_id = _hold_keys(rid)
    why = check_reason(reason)
    meta = encode_metadata({"reason": why} if why else None)
    keys, args = user.script_call(now)
    reply = yield from run_script(script("release"), keys, [*args, hold_id, meta])
    return _closing_reply(rid, "release", reply)


def extend(now: Now, rid: str, ttl: object) -> Steps[Reservation]:
    user, hold_id = _hold_keys(rid)
    hold_ttl_ms = ttl_ms(ttl)
    keys, args = user.script_call(now)
    reply = yield from run_script(script("extend"), keys, [*args, hold_id, hold_ttl_ms])
    return parse_hold(user, hold_id, replies.check(reply, replies.Context("extend", rid))[1])


def get_reservation(now: Now, rid: str) -> Steps[Reservation]:
    user, hold_id = _hold_keys(rid)
    keys, args = user.script_call(now)
    reply = yield from run_script(script("read_holds"), keys, [*args, "one", hold_id])
    replies.check(reply, replies.Context("get_reservation", rid))
    if len(reply) < 3:
        raise ReservationNotFoundError(rid)
    return parse_hold(user, reply[1], reply[2])


def list_reservations(
    now: Now, user_id: str, status: str | None, limit: int
) -> Steps[list[Reservation]]:
    """Open holds soonest-expiring first, then closed holds most recently closed first."""
    user = user_keys(check_user_id(user_id))
    if status is not None and status not in STATUSES:
        raise InvalidInputError(f"status must be one of {STATUSES} or None, got {status!r}")
    count = check_limit(limit, limits.RESERVATIONS_LIST_LIMIT_MAX)
    keys, args = user.script_call(now)
    context = replies.Context("list_reservations", user_id)
    found: list[Reservation] = []
    for which in ("open", "closed"):
        if status is not None and (status == "open") != (which == "open"):
            continue
        offset = 0
        while len(found) < count:
            page = min(limits.HOLDS_READ_PER_CALL_MAX, count - len(found))
            if status is not None:
                page = limits.HOLDS_READ_PER_CALL_MAX  # a filter may skip some of each page
            reply = replies.check(
                (yield from run_script(
                    script("read_holds"), keys, [*args, which, offset, page]
                )),
                context,
            )  # fmt: skip
            for i in range(1, len(reply), 2):
                hold = parse_hold(user, reply[i], reply[i + 1])
                if status is None or hold.status == status:
                    found.append(hold)
            if (len(reply) - 1) // 2 < page:
                break
            offset += page
    return found[:count]
