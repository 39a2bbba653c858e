"""Proving a cached account against its log: verify, and rebuild from the log.

The log is read in bounded chunks of plain ``XRANGE`` calls outside any
script, so a user with millions of events never blocks other writers for more
than one chunk's read, and replayed (:class:`~credits.lots.replay.LogReplay`):
balance, held and every lot. The consistent point both start from is the log's
*real* end, read from the stream itself: a lost or stale account hash shows as
a difference, and a rebuild writes the whole account back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from credits import limits, replies
from credits.keys import UserKeys, user_keys
from credits.lots.records import active_lots
from credits.lots.replay import LogReplay
from credits.models import BalanceVerification
from credits.protocol import Command, Now, Steps, run_script
from credits.scripts import script
from credits.validation import check_limit, check_user_id


def replay_log(log_key: str, after: str, upto: str, chunk: int, into: LogReplay) -> Steps[None]:
    """Feed the events in (after, upto] to ``into``, reading ``chunk`` events a call."""
    start = "-" if not after else f"({after}"
    while upto:
        entries = yield Command(("XRANGE", log_key, start, upto, "COUNT", chunk))
        into.feed(entries)
        if len(entries) < chunk or entries[-1][0] == upto:
            break
        start = f"({entries[-1][0]}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    balance: int
    held: int
    cached_end: str  # the log end the account hash records; "" for none
    log_end: str  # the log's real end, read from the stream; "" for an empty log
    account_exists: bool
    lots: list[dict[str, Any]]  # the cached active lots
    lot_seq: int  # the cached count of lots made


def _snapshot(user: UserKeys, now: Now) -> Steps[Snapshot]:
    keys, args = user.script_call(now)
    reply = yield from run_script(script("snapshot"), keys, args)
    _, balance, held, cached_end, log_end, exists, lots, lot_seq = replies.check(
        reply, replies.Context("snapshot", user.user_id)
    )
    return Snapshot(
        int(balance), int(held), str(cached_end), str(log_end), bool(int(exists)),
        active_lots(str(lots)), int(lot_seq),
    )  # fmt: skip


def verify_balance(
    now: Now, user_id: str, chunk: int = limits.LOG_CHUNK_EVENTS
) -> Steps[BalanceVerification]:
    """Compare the cached account with the log, at one consistent point; changes nothing.

    The snapshot takes the cached values and the log's real end in one atomic
    step; events up to that end never change, so summing them afterwards, in
    chunks, gives exactly what the cache should hold.
    """
    user = user_keys(check_user_id(user_id))
    chunk = check_limit(chunk, limits.LOG_CHUNK_EVENTS_MAX, "chunk")
    snap = yield from _snapshot(user, now)
    sums = LogReplay()
    yield from replay_log(user.log, "", snap.log_end, chunk, sums)
    sums.finish()
    problems = []
    if snap.log_end and not snap.account_exists:
        problems.append("the account hash is missing while its log exists")
    elif snap.cached_end != snap.log_end:
        problems.append(f"the account records log end {snap.cached_end!r}, the log ends at "
                        f"{snap.log_end!r}")  # fmt: skip
    if snap.balance != sums.balance:
        problems.append(f"cached balance {snap.balance} != log {sums.balance}")
    if snap.held != sums.held:
        problems.append(f"cached held {snap.held} != log {sums.held}")
    if snap.account_exists:
        problems += sums.lot_problems(snap.lots)
    return BalanceVerification(
        valid=not problems,
        cached=snap.balance,
        calculated=sums.balance,
        difference=snap.balance - sums.balance,
        held_cached=snap.held,
        held_calculated=sums.held,
        events=sums.events,
        problems=problems,
    )


def rebuild_balance(now: Now, user_id: str, chunk: int = limits.LOG_CHUNK_EVENTS) -> Steps[int]:
    """Set the cached account from the log without losing a racing write; returns the balance.

    The log is replayed up to the snapshot's end outside any script; the final
    script writes the log's state there plus what the cache moved since (writes
    after the snapshot moved it by exactly their own deltas), in one atomic step,
    so no writer waits and none is lost (the whole account, if its hash was lost).
    Raises :class:`~credits.errors.BalanceVerificationError` (and changes
    nothing) when the log sums to an impossible state.
    """
    user = user_keys(check_user_id(user_id))
    chunk = check_limit(chunk, limits.LOG_CHUNK_EVENTS_MAX, "chunk")
    snap = yield from _snapshot(user, now)
    sums = LogReplay()
    yield from replay_log(user.log, "", snap.log_end, chunk, sums)
    sums.finish()
    keys, args = user.script_call(now)
    reply = yield from run_script(
        script("rebuild"),
        keys,
        [*args, snap.log_end, sums.balance, sums.held, _json(sums.active_lots(snap.lots)),
         sums.lot_seq, snap.balance, snap.held, _json(snap.lots), snap.lot_seq,
         sums.first_ms, sums.init_result],
    )  # fmt: skip
    return int(replies.check(reply, replies.Context("rebuild", user_id))[1])


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
