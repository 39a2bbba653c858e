"""The ledger's moves of credits (initialize, deduct, add, bulk) and account reads, as steps.

Each function validates its input, builds the script call, and parses the
reply through :mod:`credits.replies`; no I/O here (see :mod:`credits.protocol`).
Input is checked before anything is yielded, so bad input never reaches Redis.
Every credit a move brings in is a lot (:mod:`credits.lots`); every credit it
takes out is drawn from the lots that apply to its action, in the script.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from credits import limits, replies
from credits.errors import CreditsError, InvalidInputError, StoreRefusedError
from credits.idempotency import fingerprint
from credits.keys import UserKeys, lot_id, new_lot_id, user_keys
from credits.lots.terms import LotTerms, check_terms
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

# The terms of a lot made by a plain add (and by every add of add_many).
DEFAULT_TERMS = LotTerms(
    category="paid",
    priority=limits.LOT_PRIORITY_DEFAULT,
    expires_at_ms=None,
    expires_in_ms=None,
    effective_at_ms=None,
    scope=None,
)


def parse_tx_result(encoded: str, user: UserKeys | None = None, lot: str = "") -> TxResult:
    tx_id, balance, timestamp = encoded.split(",")
    return TxResult(
        tx_id=tx_id,
        balance=int(balance),
        timestamp=int(timestamp),
        lot_id=lot_id(user, lot) if user is not None and lot else None,
    )


def _tx_reply(reply: replies.Reply, ctx: replies.Context, user: UserKeys) -> TxResult:
    checked = replies.check(reply, ctx)
    return parse_tx_result(checked[1], user, str(checked[2]) if len(checked) > 2 else "")


def initialize_user(
    now: Now, user_id: str, credits: int, metadata: dict[str, Any] | None
) -> Steps[TxResult]:
    """The welcome grant, once: a promotional lot that never expires."""
    user = user_keys(check_user_id(user_id))
    grant = check_amount(credits, "credits", minimum=0)
    meta = encode_metadata(metadata)
    keys, args = user.script_call(now)
    reply = yield from run_script(script("initialize"), keys, [*args, grant, meta, new_lot_id()])
    return _tx_reply(reply, replies.Context("initialize", user_id, grant), user)


@dataclass(frozen=True, slots=True)
class PlannedMove:
    """A validated deduct or add: the script's keys and arguments."""

    user: UserKeys
    keys: list[str]
    args: list[Arg]
    context: replies.Context


def plan_move(
    operation: str, now: Now, item: BulkItem, terms: LotTerms | None = None
) -> PlannedMove:
    """The script call of one deduct or add; an add carries its lot's terms."""
    user = user_keys(check_user_id(item.user_id))
    amount = check_amount(item.amount)
    action = check_action(item.action)
    meta = encode_metadata(item.metadata)
    key = check_idempotency_key(item.idempotency_key)
    keys, args = user.script_call(now, key)
    context = replies.Context(operation, user.user_id, amount, key)
    if operation == "add":
        lot_terms = terms or DEFAULT_TERMS
        digest = (
            fingerprint(operation, amount, action, meta, *lot_terms.fingerprint_parts())
            if key is not None
            else ""
        )
        lot_args: list[Arg] = [new_lot_id(), *lot_terms.script_args()]
        return PlannedMove(user, keys, [*args, amount, action, meta, digest, *lot_args], context)
    digest = fingerprint(operation, amount, action, meta) if key is not None else ""
    return PlannedMove(user, keys, [*args, amount, action, meta, digest], context)


def move_many(
    operation: str, now: Now, items: Iterable[BulkItem]
) -> Steps[list[TxResult | CreditsError]]:
    """Many deducts or adds in one pipeline: one round trip, each item atomic on its own.

    Every item is validated before anything is sent, so one bad item writes
    nothing at all. Each item then succeeds or fails alone (insufficient
    credits, idempotency conflict), in order; its result or error is at its
    index. An added item is a paid lot that never expires (give ``add`` the
    terms of any other). If the connection drops mid-pipeline the call raises
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
    moves = [plan_move(operation, now, item) for item in batch]
    answers = yield from run_scripts(script(operation), [(m.keys, m.args) for m in moves])
    results: list[TxResult | CreditsError] = []
    for move, reply in zip(moves, answers, strict=True):
        if isinstance(reply, CreditsError):
            results.append(reply)
        elif isinstance(reply, BaseException):
            results.append(StoreRefusedError(f"bulk item failed: {reply}"))
        else:
            try:
                results.append(_tx_reply(reply, move.context, move.user))
            except CreditsError as error:
                results.append(error)
    return results


def deduct(
    now: Now,
    user_id: str,
    amount: int,
    action: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Steps[TxResult]:
    move = plan_move("deduct", now, BulkItem(user_id, amount, action, metadata, idempotency_key))
    reply = yield from run_script(script("deduct"), move.keys, move.args)
    return _tx_reply(reply, move.context, move.user)


def add(
    now: Now,
    user_id: str,
    amount: int,
    action: str,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
    *,
    expires_at: object = None,
    expires_in: object = None,
    effective_at: object = None,
    priority: object = limits.LOT_PRIORITY_DEFAULT,
    category: object = "paid",
    scope: object = None,
) -> Steps[TxResult]:
    """A new lot of ``amount`` credits with its terms; ``TxResult.lot_id`` names it."""
    terms = check_terms(
        expires_at=expires_at,
        expires_in=expires_in,
        effective_at=effective_at,
        priority=priority,
        category=category,
        scope=scope,
    )
    move = plan_move(
        "add", now, BulkItem(user_id, amount, action, metadata, idempotency_key), terms
    )
    reply = yield from run_script(script("add"), move.keys, move.args)
    return _tx_reply(reply, move.context, move.user)


def get_account(now: Now, user_id: str) -> Steps[Account]:
    user = user_keys(check_user_id(user_id))
    keys, args = user.script_call(now)
    reply = yield from run_script(script("read_account"), keys, [*args, ""])
    _, balance, held, created, _ = replies.check(reply, replies.Context("get_account", user_id))
    return Account(
        user_id=user_id,
        balance=int(balance),
        held=int(held),
        created_at=int(created) if created else None,
    )


def get_balance(now: Now, user_id: str, action: str | None = None) -> Steps[int]:
    """Spendable now: over every lot in effect, or over the lots that apply to ``action``."""
    user = user_keys(check_user_id(user_id))
    for_action = "" if action is None else check_action(action)
    keys, args = user.script_call(now)
    reply = yield from run_script(script("read_account"), keys, [*args, for_action])
    checked = replies.check(reply, replies.Context("get_balance", user_id))
    return int(checked[1]) if action is None else int(checked[4])
