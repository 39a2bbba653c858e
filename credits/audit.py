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

from credits import checkpoints, limits, replies
from credits.archive import reads as archive_reads
from credits.checkpoints import Checkpoint
from credits.errors import InvalidInputError
from credits.keys import UserKeys, user_keys
from credits.lots.records import active_lots
from credits.lots.replay import LogReplay
from credits.models import BalanceVerification
from credits.protocol import Arg, Command, Now, Steps, run_script
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
    checkpoint: Checkpoint | None  # the last one at or before log_end
    archived: str  # events up to this log id moved to the archive; "" for none


def snapshot_call(user: UserKeys, now: Now) -> tuple[list[str], list[Arg]]:
    """The snapshot script's KEYS and ARGV (also pipelined, one per user, by reconcile)."""
    keys, args = user.script_call(now)
    return [*keys, user.checkpoints, user.checkpoint_head, user.archived], args


def parse_snapshot(user: UserKeys, reply: Any) -> Snapshot:
    (_, balance, held, cached_end, log_end, exists, lots, lot_seq, cp_id, cp_fields, head,
     archived) = replies.check(reply, replies.Context("snapshot", user.user_id))  # fmt: skip
    stored = checkpoints.from_entry([cp_id, cp_fields]) if cp_id else None
    base = checkpoints.later(stored, checkpoints.decode_head(str(head)), str(log_end) or None)
    return Snapshot(
        int(balance), int(held), str(cached_end), str(log_end), bool(int(exists)),
        active_lots(str(lots)), int(lot_seq), base if log_end else None, str(archived),
    )  # fmt: skip


def _snapshot(user: UserKeys, now: Now) -> Steps[Snapshot]:
    keys, args = snapshot_call(user, now)
    reply = yield from run_script(script("snapshot"), keys, args)
    return parse_snapshot(user, reply)


class _Replayer:
    """Replays a user's log from a base, writing checkpoints on the way.

    Periodic checkpoints (every :data:`~credits.limits.CHECKPOINT_EVERY_EVENTS`
    events from the log's start) are facts of the log and are written as they
    are reached; the mark (the last event at or before ``mark_ms``, for the
    archiver) and the head (the end) only once the verification found the cache
    agreeing with the log, so every checkpoint a later verify starts from was
    cross-checked by two independent derivations.
    """

    def __init__(
        self,
        user: UserKeys,
        base: Checkpoint | None,
        *,
        mark_ms: int | None = None,
        compare: bool = False,
    ) -> None:
        self.user = user
        self.base = base
        self.replay = base.replay() if base is not None else LogReplay()
        self.base_events = self.replay.events
        self.mark_ms = mark_ms
        self.mark: Checkpoint | None = None
        self.periodic: list[Checkpoint] = []
        self.compare = compare  # full: hold every stored checkpoint against the replay
        self.stored: list[Checkpoint] = []
        self.stored_after = base.tx_id if base is not None else ""
        self.stored_done = False
        self.problems: list[str] = []

    @property
    def events(self) -> int:
        return self.replay.events - self.base_events

    def feed(self, entries: list[Any]) -> Steps[None]:
        every = limits.CHECKPOINT_EVERY_EVENTS
        for entry_id, fields in entries:
            if (
                self.mark_ms is not None
                and self.mark is None
                and self.replay.end
                and checkpoints.id_ms(self.replay.end) <= self.mark_ms < checkpoints.id_ms(entry_id)
            ):
                self.mark = checkpoints.at(self.replay, checkpoints.MARK)
            self.replay.apply(entry_id, fields)
            if self.replay.events % every == 0:
                self.periodic.append(checkpoints.at(self.replay, checkpoints.PERIODIC))
            if self.compare:
                yield from self._compare_stored(entry_id)
        if len(self.periodic) >= limits.CHECKPOINT_WRITES_PER_CALL_MAX:
            yield from checkpoints.write(self.user, self.periodic)
            self.periodic = []

    def _compare_stored(self, entry_id: str) -> Steps[None]:
        position = checkpoints.parse_id(entry_id)
        while True:
            if not self.stored and not self.stored_done:
                page = yield from checkpoints.in_range(
                    self.user, self.stored_after, "+", limits.CHECKPOINT_WRITES_PER_CALL_MAX
                )
                self.stored = page
                self.stored_done = len(page) < limits.CHECKPOINT_WRITES_PER_CALL_MAX
                if page:
                    self.stored_after = page[-1].tx_id
            if not self.stored or checkpoints.parse_id(self.stored[0].tx_id) > position:
                return
            cp = self.stored.pop(0)
            if cp.tx_id != entry_id:
                self.problems.append(f"checkpoint {cp.tx_id} is at no event of the log")
            else:
                self.problems += checkpoints.differences(cp, self.replay)

    def run_hot(self, log_key: str, after: str, upto: str, chunk: int) -> Steps[None]:
        start = "-" if not after else f"({after}"
        while upto:
            entries = yield Command(("XRANGE", log_key, start, upto, "COUNT", chunk))
            yield from self.feed(entries)
            if len(entries) < chunk or entries[-1][0] == upto:
                break
            start = f"({entries[-1][0]}"

    def conclude(self, valid: bool) -> Steps[None]:
        """Write what is left: periodic ones always, the mark and the head when ``valid``."""
        pending = self.periodic
        if valid and self.replay.end:
            if (
                self.mark_ms is not None
                and self.mark is None
                and checkpoints.id_ms(self.replay.end) <= self.mark_ms
            ):
                self.mark = checkpoints.at(self.replay, checkpoints.MARK)
            if self.mark is not None:
                pending = sorted([*pending, self.mark], key=lambda c: c.events)
            if self.base is None or self.replay.end != self.base.tx_id:
                pending = [*pending, checkpoints.at(self.replay, checkpoints.HEAD)]
        if pending:
            yield from checkpoints.write(self.user, pending)
        self.periodic = []


def _replay_tiers(
    user: UserKeys, replayer: _Replayer, archived: str, upto: str, chunk: int
) -> Steps[None]:
    """Replay from the replayer's base to ``upto``: first what of it is archived (events
    up to the archive mark), then Redis's. A base is normally at or after the mark; one
    before it (a checkpoint deleted by hand) still replays every event, once."""
    base = replayer.base
    after = base.tx_id if base is not None else ""
    if archived and (not after or checkpoints.parse_id(after) < checkpoints.parse_id(archived)):
        yield from archive_reads.replay_archived(user, archived, chunk, replayer, after=after)
        after = archived
    yield from replayer.run_hot(user.log, after, upto, chunk)


def _replay_for(
    user: UserKeys, snap: Snapshot, chunk: int, *, full: bool, mark_ms: int | None
) -> Steps[_Replayer]:
    """Replay what the verification needs: the tail after the last checkpoint, or
    (``full``, or no checkpoint to start from) every event from the log's start,
    archived ones included."""
    base = None if full else snap.checkpoint
    if base is None and snap.archived and not full:
        full = True  # the log's start left Redis, and no checkpoint says what it added up to
    replayer = _Replayer(user, base, mark_ms=mark_ms, compare=full)
    yield from _replay_tiers(user, replayer, snap.archived, snap.log_end, chunk)
    return replayer


def verify_balance(
    now: Now,
    user_id: str,
    chunk: int = limits.LOG_CHUNK_EVENTS,
    *,
    full: bool = False,
    mark_ms: int | None = None,
) -> Steps[BalanceVerification]:
    """Compare the cached account with the log, at one consistent point; changes nothing
    but the checkpoints.

    The snapshot takes the cached values, the log's real end and the last
    checkpoint in one atomic step; events up to that end never change, so
    replaying them afterwards, in chunks, from that checkpoint gives exactly
    what the cache should hold. ``full`` replays from the log's very first
    event (archived ones too) and holds every stored checkpoint against it.
    """
    user = user_keys(check_user_id(user_id))
    chunk = check_limit(chunk, limits.LOG_CHUNK_EVENTS_MAX, "chunk")
    if not isinstance(full, bool):
        raise InvalidInputError(f"full must be a bool, got {type(full).__name__}")
    snap = yield from _snapshot(user, now)
    return (yield from verify_snapshot(user, snap, chunk, full=full, mark_ms=mark_ms))


def verify_snapshot(
    user: UserKeys, snap: Snapshot, chunk: int, *, full: bool, mark_ms: int | None = None
) -> Steps[BalanceVerification]:
    """The verification of one snapshot (reconcile pipelines the snapshots of many users)."""
    replayer = yield from _replay_for(user, snap, chunk, full=full, mark_ms=mark_ms)
    sums = replayer.replay
    final = checkpoints.restore(checkpoints.capture(sums))
    final.finish()
    problems = list(replayer.problems)
    if snap.log_end and not snap.account_exists:
        problems.append("the account hash is missing while its log exists")
    elif snap.cached_end != snap.log_end:
        problems.append(f"the account records log end {snap.cached_end!r}, the log ends at "
                        f"{snap.log_end!r}")  # fmt: skip
    if snap.balance != final.balance:
        problems.append(f"cached balance {snap.balance} != log {final.balance}")
    if snap.held != final.held:
        problems.append(f"cached held {snap.held} != log {final.held}")
    if snap.account_exists:
        problems += final.lot_problems(snap.lots)
    yield from replayer.conclude(valid=not problems)
    return BalanceVerification(
        valid=not problems,
        cached=snap.balance,
        calculated=final.balance,
        difference=snap.balance - final.balance,
        held_cached=snap.held,
        held_calculated=final.held,
        events=replayer.replay.events,
        events_read=replayer.events,
        problems=problems,
        checkpoint=replayer.base.tx_id if replayer.base is not None else None,
        full=full or replayer.base is None,
    )


def mark_checkpoint(
    user: UserKeys, mark_ms: int, chunk: int = limits.LOG_CHUNK_EVENTS
) -> Steps[Checkpoint | None]:
    """A mark checkpoint at the last event at or before ``mark_ms``, for the archiver.

    Replays from the last stored checkpoint at or before ``mark_ms`` (at most
    :data:`~credits.limits.CHECKPOINT_EVERY_EVENTS` events back, since every
    event a verify replayed passed a periodic checkpoint) up to that event. The
    caller has just verified the user, so the chain it extends was verified.
    Returns the checkpoint the archiver may archive up to (None: none).
    """
    base = yield from _stored_at_or_before(user, str(mark_ms))
    archived = str((yield Command(("GET", user.archived))) or "")
    if archived and checkpoints.id_ms(archived) > mark_ms:
        return None  # archived past the mark already
    replayer = _Replayer(user, base)
    yield from _replay_tiers(user, replayer, archived, str(mark_ms), chunk)
    if replayer.events == 0:
        return base
    mark = checkpoints.at(replayer.replay, checkpoints.MARK)
    yield from checkpoints.write(user, [*replayer.periodic, mark])
    return mark


def _stored_at_or_before(user: UserKeys, upto: str) -> Steps[Checkpoint | None]:
    entries = yield Command(("XREVRANGE", user.checkpoints, upto, "-", "COUNT", 1))
    return checkpoints.from_entry(entries[0]) if entries else None


def rebuild_balance(now: Now, user_id: str, chunk: int = limits.LOG_CHUNK_EVENTS) -> Steps[int]:
    """Set the cached account from the log without losing a racing write; returns the balance.

    The log is replayed up to the snapshot's end outside any script, from the
    last checkpoint (the log before it may have moved to the archive); the final
    script writes the log's state there plus what the cache moved since (writes
    after the snapshot moved it by exactly their own deltas), in one atomic step,
    so no writer waits and none is lost (the whole account, if its hash was lost).
    Raises :class:`~credits.errors.BalanceVerificationError` (and changes
    nothing) when the log sums to an impossible state.
    """
    user = user_keys(check_user_id(user_id))
    chunk = check_limit(chunk, limits.LOG_CHUNK_EVENTS_MAX, "chunk")
    snap = yield from _snapshot(user, now)
    replayer = yield from _replay_for(user, snap, chunk, full=False, mark_ms=None)
    sums = replayer.replay
    yield from replayer.conclude(valid=False)  # periodic ones only: the cache is in doubt
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
