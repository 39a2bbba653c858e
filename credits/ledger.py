"""The ledger operations as steps: validate, build the script call, parse the reply.

No I/O here (see :mod:`credits.protocol`). Each function checks its input before
it yields anything, so bad input never reaches Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from credits import limits, log_format, replies
from credits.errors import CreditsError, InvalidInputError, StoreRefusedError
from credits.idempotency import fingerprint
from credits.keys import UserKeys, reservation_id, user_keys
from credits.models import Account, BalanceVerification, BulkItem, Transaction, TxResult
from credits.protocol import Arg, Command, Steps, run_script, run_scripts
from credits.scripts import script
from credits.validation import (
    check_action,
    check_amount,
    check_idempotency_key,
    check_limit,
    check_time_ms,
    check_user_id,
    decode_metadata,
    encode_metadata,
)


def parse_tx_result(encoded: str) -> TxResult:
    tx_id, balance, timestamp = encoded.split(",")
    return TxResult(tx_id=tx_id, balance=int(balance), timestamp=int(timestamp))


def _tx_reply(reply: replies.Reply, ctx: replies.Context) -> TxResult:
    return parse_tx_result(replies.check(reply, ctx)[1])


def initialize_user(
    now_ms: int, user_id: str, credits: int, metadata: dict[str, Any] | None
) -> Steps[TxResult]:
    user = user_keys(check_user_id(user_id))
    grant = check_amount(credits, "credits", minimum=0)
    meta = encode_metadata(metadata)
    keys, args = user.script_call(now_ms)
    reply = yield from run_script(script("initialize"), keys, [*args, grant, meta])
    return _tx_reply(reply, replies.Context("initialize", user_id, grant))


@dataclass(frozen=True, slots=True)
class PlannedMove:
    """A validated deduct or add: the script's keys and arguments."""

    keys: list[str]
    args: list[Arg]
    context: replies.Context


def plan_move(operation: str, now_ms: int, item: BulkItem) -> PlannedMove:
    user = user_keys(check_user_id(item.user_id))
    amount = check_amount(item.amount)
    action = check_action(item.action)
    meta = encode_metadata(item.metadata)
    key = check_idempotency_key(item.idempotency_key)
    keys, args = user.script_call(now_ms, key)
    digest = fingerprint(operation, amount, action, meta) if key is not None else ""
    context = replies.Context(operation, user.user_id, amount, key)
    return PlannedMove(keys, [*args, amount, action, meta, digest], context)


def _move(
    operation: str,
    now_ms: int,
    user_id: str,
    amount: int,
    action: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Steps[TxResult]:
    move = plan_move(
        operation, now_ms, BulkItem(user_id, amount, action, metadata, idempotency_key)
    )
    reply = yield from run_script(script(operation), move.keys, move.args)
    return _tx_reply(reply, move.context)


def move_many(
    operation: str, now_ms: int, items: Iterable[BulkItem]
) -> Steps[list[TxResult | CreditsError]]:
    """Many deducts or adds in one pipeline: one round trip, each item atomic on its own.

    Every item is validated before anything is sent, so one bad item writes
    nothing at all. Each item then succeeds or fails alone (insufficient
    credits, idempotency conflict), in order; its result or error is at its
    index. If the connection drops mid-pipeline the call raises
    :class:`StoreUnavailableError` and some items may have applied: give items
    idempotency keys and repeat the call to apply each exactly once.
    """
    try:
        batch = list(items)
    except TypeError:
        raise InvalidInputError(
            f"bulk items must be an iterable of BulkItem, got {type(items).__name__}"
        ) from None
    if not 1 <= len(batch) <= limits.BULK_ITEMS_MAX:
        raise InvalidInputError(
            f"a bulk call takes 1 to {limits.BULK_ITEMS_MAX} items, got {len(batch)}"
        )
    for item in batch:
        if not isinstance(item, BulkItem):
            raise InvalidInputError(f"bulk items must be BulkItem, got {type(item).__name__}")
    moves = [plan_move(operation, now_ms, item) for item in batch]
    replies = yield from run_scripts(script(operation), [(m.keys, m.args) for m in moves])
    results: list[TxResult | CreditsError] = []
    for move, reply in zip(moves, replies, strict=True):
        if isinstance(reply, CreditsError):
            results.append(reply)
        elif isinstance(reply, BaseException):
            results.append(StoreRefusedError(f"bulk item failed: {reply}"))
        else:
            try:
                results.append(_tx_reply(reply, move.context))
            except CreditsError as error:
                results.append(error)
    return results


def deduct(
    now_ms: int,
    user_id: str,
    amount: int,
    action: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Steps[TxResult]:
    return _move("deduct", now_ms, user_id, amount, action, metadata, idempotency_key)


def add(
    now_ms: int,
    user_id: str,
    amount: int,
    action: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Steps[TxResult]:
    return _move("add", now_ms, user_id, amount, action, metadata, idempotency_key)


def get_account(now_ms: int, user_id: str) -> Steps[Account]:
    user = user_keys(check_user_id(user_id))
    keys, args = user.script_call(now_ms)
    reply = yield from run_script(script("read_account"), keys, args)
    _, balance, held, created = replies.check(reply, replies.Context("get_account", user_id))
    return Account(
        user_id=user_id,
        balance=int(balance),
        held=int(held),
        created_at=int(created) if created else None,
    )


def get_balance(now_ms: int, user_id: str) -> Steps[int]:
    account = yield from get_account(now_ms, user_id)
    return account.balance


def parse_transaction(user: UserKeys, entry_id: str, fields: dict[str, str]) -> Transaction:
    hold_id = fields.get(log_format.HOLD, "")
    shortfall, _, late = fields.get(log_format.EXTRA, "").partition(":")
    return Transaction(
        tx_id=entry_id,
        user_id=user.user_id,
        type=fields[log_format.TYPE],
        amount=int(fields[log_format.AMOUNT]),
        balance_delta=int(fields[log_format.BALANCE_DELTA]),
        held_delta=int(fields[log_format.HELD_DELTA]),
        balance_after=int(fields[log_format.BALANCE_AFTER]),
        action=fields[log_format.ACTION],
        metadata=decode_metadata(fields.get(log_format.METADATA, "")),
        timestamp=int(entry_id.partition("-")[0]),
        reservation_id=reservation_id(user, hold_id) if hold_id else None,
        shortfall=int(shortfall) if shortfall else 0,
        late=late == "late",
    )


def get_transactions(
    user_id: str, limit: int, start_time: int | None, end_time: int | None
) -> Steps[list[Transaction]]:
    user = user_keys(check_user_id(user_id))
    count = check_limit(limit, limits.TRANSACTIONS_LIMIT_MAX)
    start = check_time_ms(start_time, "start_time")
    end = check_time_ms(end_time, "end_time")
    if start is not None and end is not None and start > end:
        raise InvalidInputError(f"start_time {start} is after end_time {end}")
    high = "+" if end is None else str(end)
    low = "-" if start is None else str(start)
    entries = yield Command(("XREVRANGE", user.log, high, low, "COUNT", count))
    return [parse_transaction(user, entry_id, fields) for entry_id, fields in entries]


@dataclass(frozen=True, slots=True)
class LogSums:
    balance: int
    held: int
    events: int

    def __add__(self, other: LogSums) -> LogSums:
        return LogSums(
            self.balance + other.balance, self.held + other.held, self.events + other.events
        )


def sum_log(log_key: str, after: str, upto: str, chunk: int) -> Steps[LogSums]:
    """Sum the deltas of the events in (after, upto], reading ``chunk`` events a call.

    Each read is a plain XRANGE, not a script, so a user with millions of events
    never blocks other writers for more than one chunk's read.
    """
    balance = held = events = 0
    start = "-" if not after else f"({after}"
    while upto:
        entries = yield Command(("XRANGE", log_key, start, upto, "COUNT", chunk))
        for _, fields in entries:
            balance += int(fields[log_format.BALANCE_DELTA])
            held += int(fields[log_format.HELD_DELTA])
        events += len(entries)
        if len(entries) < chunk or entries[-1][0] == upto:
            break
        start = f"({entries[-1][0]}"
    return LogSums(balance, held, events)


@dataclass(frozen=True, slots=True)
class Snapshot:
    balance: int
    held: int
    marker: str  # last log id at that instant; "" for an empty log


def _snapshot(user: UserKeys, now_ms: int) -> Steps[Snapshot]:
    keys, args = user.script_call(now_ms)
    reply = yield from run_script(script("snapshot"), keys, args)
    _, balance, held, marker = replies.check(reply, replies.Context("snapshot", user.user_id))
    return Snapshot(int(balance), int(held), str(marker))


def verify_balance(
    now_ms: int, user_id: str, chunk: int = limits.LOG_CHUNK_EVENTS
) -> Steps[BalanceVerification]:
    """Compare the cached balance with the log, at one consistent point.

    The snapshot takes the cached values and the last log id in one atomic step;
    events up to that id never change, so summing them afterwards, in chunks,
    gives exactly what the cache should have held at the snapshot.
    """
    user = user_keys(check_user_id(user_id))
    chunk = check_limit(chunk, limits.LOG_CHUNK_EVENTS_MAX, "chunk")
    snap = yield from _snapshot(user, now_ms)
    sums = yield from sum_log(user.log, "", snap.marker, chunk)
    return BalanceVerification(
        valid=snap.balance == sums.balance and snap.held == sums.held,
        cached=snap.balance,
        calculated=sums.balance,
        difference=snap.balance - sums.balance,
        held_cached=snap.held,
        held_calculated=sums.held,
        events=sums.events,
    )


def rebuild_balance(now_ms: int, user_id: str, chunk: int = limits.LOG_CHUNK_EVENTS) -> Steps[int]:
    """Set the cached balance (and held) from the log without losing a racing write.

    The log is summed up to a marker outside any script; the final script adds
    the events written since the marker and writes the cache in one atomic step.
    When writers outpace it (more than REBUILD_TAIL_EVENTS_MAX new events), it
    reads further and tries again.
    """
    user = user_keys(check_user_id(user_id))
    chunk = check_limit(chunk, limits.LOG_CHUNK_EVENTS_MAX, "chunk")
    snap = yield from _snapshot(user, now_ms)
    marker = snap.marker
    sums = yield from sum_log(user.log, "", marker, chunk)
    keys, args = user.script_call(now_ms)
    context = replies.Context("rebuild", user_id)
    for _ in range(limits.REBUILD_ATTEMPTS_MAX):
        reply = yield from run_script(
            script("rebuild"),
            keys,
            [*args, marker, sums.balance, sums.held, limits.REBUILD_TAIL_EVENTS_MAX],
        )
        if replies.check(reply, context, accept=replies.SUCCESS | replies.CONTINUE)[0] == "ok":
            return int(reply[1])
        newest = yield Command(("XREVRANGE", user.log, "+", "-", "COUNT", 1))
        newer_marker = newest[0][0]
        sums = sums + (yield from sum_log(user.log, marker, newer_marker, chunk))
        marker = newer_marker
    raise StoreRefusedError(
        f"rebuild of {user_id!r} could not catch up with its writers after "
        f"{limits.REBUILD_ATTEMPTS_MAX} attempts; nothing was changed"
    )
