"""The ledger operations as steps: validate, build the script call, parse the reply.

No I/O here (see :mod:`credits.protocol`). Each function checks its input before
it yields anything, so bad input never reaches Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from credits import limits, replies
from credits.errors import CreditsError, InvalidInputError, StoreRefusedError
from credits.idempotency import fingerprint
from credits.keys import user_keys
from credits.models import Account, BulkItem, TxResult
from credits.protocol import Arg, Now, Steps, run_script, run_scripts
from credits.scripts import script
from credits.validation import (
    check_action,
    check_amount,
    check_idempotency_key,
    check_user_id,
    encode_metadata,
)


def parse_tx_result(encoded: str) -> TxResult:
    tx_id, balance, timestamp = encoded.split(",")
    return TxResult(tx_id=tx_id, balance=int(balance), timestamp=int(timestamp))


def _tx_reply(reply: replies.Reply, ctx: replies.Context) -> TxResult:
    return parse_tx_result(replies.check(reply, ctx)[1])


def initialize_user(
    now_ms: Now, user_id: str, credits: int, metadata: dict[str, Any] | None
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


def plan_move(operation: str, now_ms: Now, item: BulkItem) -> PlannedMove:
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
    now_ms: Now,
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
    operation: str, now_ms: Now, items: Iterable[BulkItem]
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
    now_ms: Now,
    user_id: str,
    amount: int,
    action: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Steps[TxResult]:
    return _move("deduct", now_ms, user_id, amount, action, metadata, idempotency_key)


def add(
    now_ms: Now,
    user_id: str,
    amount: int,
    action: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Steps[TxResult]:
    return _move("add", now_ms, user_id, amount, action, metadata, idempotency_key)


def get_account(now_ms: Now, user_id: str) -> Steps[Account]:
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


def get_balance(now_ms: Now, user_id: str) -> Steps[int]:
    account = yield from get_account(now_ms, user_id)
    return account.balance
