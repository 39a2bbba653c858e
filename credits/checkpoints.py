"""Checkpoints: verified replay states of a user's log, so history work is bounded.

A checkpoint is what :class:`~credits.lots.replay.LogReplay` knows right after one
event (balance, held, every active lot, the lots each open hold pinned, the
account's creation time and welcome grant, how many events came before), stored
in the user's checkpoint stream under that event's id. Why a stream: its ids are
the log's ids, so "the last checkpoint at or before a log id or a time" is one
``XREVRANGE ... COUNT 1``, and ids only grow, so two verifiers racing cannot
write checkpoints out of order.

Verify writes them (:mod:`credits.audit`): one every
:data:`~credits.limits.CHECKPOINT_EVERY_EVENTS` events it replays (so
``balance_at`` and rebuilds never replay more than that), a *mark* where the
archiver asks (the point events may be archived up to), and a *head* at the end
it verified, only when the cache agreed with the log there. The head is
replaced by the next checkpoint, so an hourly reconcile keeps one per user, and
the next verify starts from it: it reads only what was written since.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from credits import limits, replies
from credits.keys import UserKeys, context_args
from credits.lots.replay import LogReplay
from credits.protocol import Batch, Command, Now, Steps, run_script
from credits.scripts import script

PERIODIC: Final = "p"
MARK: Final = "m"
HEAD: Final = "h"
KINDS: Final = frozenset({PERIODIC, MARK, HEAD})
STATE_VERSION: Final = 1


def parse_id(tx_id: str) -> tuple[int, int]:
    ms, _, seq = tx_id.partition("-")
    return int(ms), int(seq or 0)


def id_ms(tx_id: str) -> int:
    return int(tx_id.partition("-")[0])


def next_id(tx_id: str) -> str:
    """The smallest stream id after ``tx_id`` (for exclusive bounds and ``XTRIM MINID``)."""
    ms, seq = parse_id(tx_id)
    return f"{ms}-{seq + 1}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The log's replay state right after event ``tx_id`` (``events`` events from the start)."""

    tx_id: str
    kind: str
    events: int
    state: dict[str, Any] = field(compare=False)

    @property
    def balance(self) -> int:
        return int(self.state["balance"])

    @property
    def held(self) -> int:
        return int(self.state["held"])

    def encode(self) -> str:
        return json.dumps(self.state, separators=(",", ":"), sort_keys=True)

    def replay(self) -> LogReplay:
        """A replay that goes on from here, as if it had read every event before."""
        return restore(self.state)


def capture(replay: LogReplay) -> dict[str, Any]:
    """The replay's state as plain JSON data (a deep copy: the replay goes on)."""
    return {
        "v": STATE_VERSION,
        "balance": replay.balance,
        "held": replay.held,
        "events": replay.events,
        "first_ms": replay.first_ms,
        "init_result": replay.init_result,
        "end": replay.end,
        "lot_seq": replay.lot_seq,
        "lots": copy.deepcopy(replay.lots),
        "pins": copy.deepcopy(replay.pins),
        "legacy": replay.in_legacy_prefix,
    }


def restore(state: dict[str, Any]) -> LogReplay:
    return LogReplay(
        balance=int(state["balance"]),
        held=int(state["held"]),
        events=int(state["events"]),
        first_ms=str(state["first_ms"]),
        init_result=str(state["init_result"]),
        end=str(state["end"]),
        lot_seq=int(state["lot_seq"]),
        lots=copy.deepcopy(state["lots"]),
        pins=copy.deepcopy(state["pins"]),
        in_legacy_prefix=bool(state["legacy"]),
    )


def at(replay: LogReplay, kind: str) -> Checkpoint:
    return Checkpoint(replay.end, kind, replay.events, capture(replay))


def from_entry(entry: Any) -> Checkpoint | None:
    """A checkpoint from a stream entry ``[id, [k, v, ...]]`` (or a dict), None if empty."""
    if not entry:
        return None
    tx_id, raw = entry[0], entry[1]
    fields = raw if isinstance(raw, dict) else dict(zip(raw[::2], raw[1::2], strict=True))
    return Checkpoint(str(tx_id), str(fields["k"]), int(fields["n"]), json.loads(fields["s"]))


def decode(tx_id: str, kind: str, events: int, encoded: str) -> Checkpoint:
    return Checkpoint(tx_id, kind, events, json.loads(encoded))


def decode_head(text: str) -> Checkpoint | None:
    """The head checkpoint from its string ``"<id>|<events>|<state>"``, None if empty."""
    if not text:
        return None
    tx_id, events, state = text.split("|", 2)
    return Checkpoint(tx_id, HEAD, int(events), json.loads(state))


def later(a: Checkpoint | None, b: Checkpoint | None, upto: str | None = None) -> Checkpoint | None:
    """The later of two checkpoints, leaving out one past ``upto`` (a log id)."""
    found = [
        cp for cp in (a, b)
        if cp is not None and (upto is None or parse_id(cp.tx_id) <= parse_id(upto))
    ]  # fmt: skip
    return max(found, key=lambda cp: parse_id(cp.tx_id), default=None)


def last_at_or_before(user: UserKeys, upto: str) -> Steps[Checkpoint | None]:
    """The last checkpoint (stored or head) at or before ``upto``, a log id."""
    entries, head = yield Batch(
        (
            Command(("XREVRANGE", user.checkpoints, upto, "-", "COUNT", 1)),
            Command(("GET", user.checkpoint_head)),
        )
    )
    if isinstance(entries, BaseException):
        raise entries
    stored = from_entry(entries[0]) if entries else None
    return later(stored, None if isinstance(head, BaseException) else decode_head(head), upto)


def in_range(user: UserKeys, after: str, upto: str, count: int) -> Steps[list[Checkpoint]]:
    """Checkpoints with ids in (after, upto], oldest first, at most ``count``."""
    low = "-" if not after else f"({after}"
    entries = yield Command(("XRANGE", user.checkpoints, low, upto, "COUNT", count))
    return [cp for cp in (from_entry(e) for e in entries) if cp is not None]


def write(user: UserKeys, checkpoints: Iterable[Checkpoint]) -> Steps[int]:
    """Append checkpoints (oldest first), in bounded script calls; how many were new."""
    pending = list(checkpoints)
    written = 0
    size = limits.CHECKPOINT_WRITES_PER_CALL_MAX
    for first in range(0, len(pending), size):
        args: list[str | int] = context_args(Now())
        for cp in pending[first : first + size]:
            args += [cp.tx_id, cp.kind, cp.events, cp.encode()]
        reply = yield from run_script(
            script("checkpoint"), [user.checkpoints, user.checkpoint_head], args
        )
        written += int(replies.check(reply, replies.Context("checkpoint", user.user_id))[1])
    return written


def differences(cp: Checkpoint, replay: LogReplay) -> list[str]:
    """How a stored checkpoint differs from the replay at its id, in words."""
    mine = capture(replay)
    problems = []
    for name in ("balance", "held", "events", "lots", "pins", "lot_seq"):
        if cp.state.get(name) != mine[name]:
            problems.append(f"checkpoint {cp.tx_id} records {name} {cp.state.get(name)!r}, "
                            f"the log {mine[name]!r}")  # fmt: skip
    return problems
