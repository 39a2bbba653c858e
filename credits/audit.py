"""Proving a cached account against its log: verify, and rebuild from the log.

The log is read in bounded chunks of plain ``XRANGE`` calls outside any
script, so a user with millions of events never blocks other writers for more
than one chunk's read. The consistent point both start from is the log's
*real* end, read from the stream itself: a lost or stale account hash shows as
a difference, and a rebuild writes the whole account back.
"""

from __future__ import annotations

from dataclasses import dataclass

from credits import limits, log_format, replies
from credits.errors import StoreRefusedError
from credits.keys import UserKeys, user_keys
from credits.models import BalanceVerification
from credits.protocol import Command, Now, Steps, run_script
from credits.scripts import script
from credits.validation import check_limit, check_user_id


@dataclass(frozen=True, slots=True)
class LogSums:
    """What a stretch of the log adds up to, and what a rebuild must restore from it."""

    balance: int = 0
    held: int = 0
    events: int = 0
    first_ms: str = ""  # the first event's millisecond: the account's creation time
    init_result: str = ""  # "<tx_id>,<balance after>,<ms>" of the initialize event

    def __add__(self, later: LogSums) -> LogSums:
        return LogSums(
            self.balance + later.balance,
            self.held + later.held,
            self.events + later.events,
            self.first_ms or later.first_ms,
            self.init_result or later.init_result,
        )


def sum_log(log_key: str, after: str, upto: str, chunk: int) -> Steps[LogSums]:
    """Sum the deltas of the events in (after, upto], reading ``chunk`` events a call."""
    balance = held = events = 0
    first_ms = init_result = ""
    start = "-" if not after else f"({after}"
    while upto:
        entries = yield Command(("XRANGE", log_key, start, upto, "COUNT", chunk))
        for entry_id, fields in entries:
            balance += int(fields[log_format.BALANCE_DELTA])
            held += int(fields[log_format.HELD_DELTA])
            ms = entry_id.partition("-")[0]
            first_ms = first_ms or ms
            if not init_result and fields[log_format.TYPE] == "initialize":
                init_result = f"{entry_id},{fields[log_format.BALANCE_AFTER]},{ms}"
        events += len(entries)
        if len(entries) < chunk or entries[-1][0] == upto:
            break
        start = f"({entries[-1][0]}"
    return LogSums(balance, held, events, first_ms, init_result)


@dataclass(frozen=True, slots=True)
class Snapshot:
    balance: int
    held: int
    cached_end: str  # the log end the account hash records; "" for none
    log_end: str  # the log's real end, read from the stream; "" for an empty log
    account_exists: bool


def _snapshot(user: UserKeys, now_ms: Now) -> Steps[Snapshot]:
    keys, args = user.script_call(now_ms)
    reply = yield from run_script(script("snapshot"), keys, args)
    _, balance, held, cached_end, log_end, exists = replies.check(
        reply, replies.Context("snapshot", user.user_id)
    )
    return Snapshot(int(balance), int(held), str(cached_end), str(log_end), bool(int(exists)))


def verify_balance(
    now_ms: Now, user_id: str, chunk: int = limits.LOG_CHUNK_EVENTS
) -> Steps[BalanceVerification]:
    """Compare the cached account with the log, at one consistent point; changes nothing.

    The snapshot takes the cached values and the log's real end in one atomic
    step; events up to that end never change, so summing them afterwards, in
    chunks, gives exactly what the cache should hold.
    """
    user = user_keys(check_user_id(user_id))
    chunk = check_limit(chunk, limits.LOG_CHUNK_EVENTS_MAX, "chunk")
    snap = yield from _snapshot(user, now_ms)
    sums = yield from sum_log(user.log, "", snap.log_end, chunk)
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


def rebuild_balance(now_ms: Now, user_id: str, chunk: int = limits.LOG_CHUNK_EVENTS) -> Steps[int]:
    """Set the cached account from the log without losing a racing write; returns the balance.

    The log is summed up to its end outside any script; the final script adds
    the events written since and writes the cache in one atomic step (the whole
    account, if its hash was lost). When writers outpace it (more than
    REBUILD_TAIL_EVENTS_MAX new events), it reads further and tries again.
    Raises :class:`~credits.errors.BalanceVerificationError` (and changes
    nothing) when the log sums to an impossible state.
    """
    user = user_keys(check_user_id(user_id))
    chunk = check_limit(chunk, limits.LOG_CHUNK_EVENTS_MAX, "chunk")
    snap = yield from _snapshot(user, now_ms)
    marker = snap.log_end
    sums = yield from sum_log(user.log, "", marker, chunk)
    keys, args = user.script_call(now_ms)
    context = replies.Context("rebuild", user_id)
    for _ in range(limits.REBUILD_ATTEMPTS_MAX):
        reply = yield from run_script(
            script("rebuild"),
            keys,
            [*args, marker, sums.balance, sums.held, limits.REBUILD_TAIL_EVENTS_MAX,
             sums.first_ms, sums.init_result],
        )  # fmt: skip
        if replies.check(reply, context, accept=replies.SUCCESS | replies.CONTINUE)[0] == "ok":
            return int(reply[1])
        newer_marker = str(reply[1])
        sums = sums + (yield from sum_log(user.log, marker, newer_marker, chunk))
        marker = newer_marker
    raise StoreRefusedError(
        f"rebuild of {user_id!r} could not catch up with its writers after "
        f"{limits.REBUILD_ATTEMPTS_MAX} attempts; nothing was changed"
    )
