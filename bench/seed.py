"""Users, logs and holds to measure against, written fast and in the ledger's format.

Real events come from the ledger's own scripts, pipelined
(:func:`~bench.pipelined.run_pipelined`), with the clock passed in so events
are spaced like a busy user's (one a second) rather than packed into the same
millisecond. A million-event log for the history and rebuild rows would take
a minute that way, so :func:`synthetic_log` clones the fields of an event the
deduct script really wrote, in their order, and XADDs copies with the right
running balance and ids; it refuses to run if that event's fields are not the
ones it knows, and the account hash is set to match so verify and rebuild
accept the log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.pipelined import run_pipelined
from bench.redis_info import newest_entry
from credits import ledger, log_format
from credits.keys import user_keys
from credits.models import Reservation
from credits.protocol import Now, Steps
from credits.reservations import holds

EVENT_SPACING_MS = 1000  # one event a second: a busy user, not a burst in one millisecond
DEDUCT_AMOUNT = 10
ACTION = "chat_message"
# The fields every event has, in the order the scripts write them.
LOG_FIELDS = tuple(log_format.FIELDS.values())
CLONE_PER_CALL = 2000  # about 3 ms of server time a call
CLONE_EVENTS_LUA = (Path(__file__).parent / "clone_events.lua").read_text("utf-8")
GRANT_CREDITS = 10**12


def grant(
    client: redis.Redis, user_ids: list[str], now_ms: int, credits: int = GRANT_CREDITS
) -> None:
    """Initialize every user with ``credits`` (one event each)."""
    steps = (ledger.initialize_user(Now(now_ms), user, credits, None) for user in user_ids)
    run_pipelined(client, steps)


def real_deducts(client: redis.Redis, user_id: str, count: int, start_ms: int) -> int:
    """``count`` deducts by the ledger's script, one a second from ``start_ms``; returns end ms."""
    run_pipelined(
        client,
        (
            ledger.deduct(
                Now(start_ms + i * EVENT_SPACING_MS), user_id, DEDUCT_AMOUNT, ACTION, None, None
            )
            for i in range(count)
        ),
    )
    return start_ms + count * EVENT_SPACING_MS


@dataclass(frozen=True, slots=True)
class LogUser:
    user_id: str
    events: int
    last_ms: int


def synthetic_log(
    client: redis.Redis,
    user_id: str,
    events: int,
    start_ms: int,
    checkpoint: Callable[[int], None] | None = None,
    checkpoints: tuple[int, ...] = (),
) -> LogUser:
    """A user with ``events`` log events (an initialize, then deducts), built fast.

    The first two events are written by the ledger; the rest are copies of the
    deduct event (``clone_events.lua``) with the balance carried on, one a
    second. ``checkpoint(n)`` is called when the log holds ``n`` events, for
    each ``n`` in ``checkpoints``.
    """
    keys = user_keys(user_id)
    grant(client, [user_id], start_ms, credits=GRANT_CREDITS)
    real_deducts(client, user_id, 1, start_ms + EVENT_SPACING_MS)
    last_id, template = newest_entry(client, keys.log)
    if tuple(template) != LOG_FIELDS or template["t"] != "deduct":
        raise RuntimeError(
            f"the deduct script writes {tuple(template)}, the bench knows {LOG_FIELDS}: "
            "update bench/seed.py before trusting the history rows"
        )
    pairs = [item for field_value in template.items() for item in field_value]
    balance_slot = pairs.index("B") + 2  # 1-based index of the value after the name
    clone = client.register_script(CLONE_EVENTS_LUA)
    balance = int(template["B"])
    ms = int(last_id.partition("-")[0])
    written = 2
    pending = sorted(n for n in checkpoints if n >= written)
    while written < events:
        step = min(CLONE_PER_CALL, events - written)
        if pending:
            step = min(step, max(1, pending[0] - written))
        ms += EVENT_SPACING_MS
        balance -= DEDUCT_AMOUNT
        last = clone(
            keys=[keys.log, keys.account],
            args=[ms, EVENT_SPACING_MS, step, balance, -DEDUCT_AMOUNT, balance_slot, *pairs],
        )
        ms = int(str(last[0]).partition("-")[0])
        balance = int(last[1])
        written += step
        _carry_lot(client, keys.account, balance)
        while pending and pending[0] <= written:
            done = pending.pop(0)
            if checkpoint is not None:
                checkpoint(done)
    return LogUser(user_id=user_id, events=written, last_ms=ms)


def append_copies(
    client: redis.Redis, user_id: str, count: int, start_ms: int, spacing_ms: int = EVENT_SPACING_MS
) -> int:
    """``count`` more deducts at the end of a user's log (copies of its newest event),
    ``spacing_ms`` apart from ``start_ms``; returns the last event's ms."""
    keys = user_keys(user_id)
    _, template = newest_entry(client, keys.log)
    pairs = [item for field_value in template.items() for item in field_value]
    clone = client.register_script(CLONE_EVENTS_LUA)
    balance, ms, left = int(template["B"]), start_ms, count
    while left > 0:
        step = min(CLONE_PER_CALL, left)
        balance -= DEDUCT_AMOUNT
        last = clone(
            keys=[keys.log, keys.account],
            args=[ms, spacing_ms, step, balance, -DEDUCT_AMOUNT, pairs.index("B") + 2, *pairs],
        )
        last_id = last[0].decode() if isinstance(last[0], bytes) else str(last[0])
        ms = int(last_id.partition("-")[0]) + spacing_ms
        balance = int(last[1])
        left -= step
    _carry_lot(client, keys.account, balance)
    return ms - spacing_ms


def _carry_lot(client: redis.Redis, account: str, balance: int) -> None:
    """The copies all draw on the user's one lot (the welcome grant): keep it in step."""
    (lot,) = json.loads(client.hget(account, "L") or "[]")
    lot["r"] = str(balance)
    client.hset(account, "L", json.dumps(lot and [lot]))


def user_ids(tag: str, group: str, count: int) -> list[str]:
    return [f"{tag}-{group}-{i}" for i in range(count)]


def reserve_many(
    client: redis.Redis, users: list[str], per_user: int, now_ms: int, ttl_s: int, amount: int = 1
) -> list[str]:
    """``per_user`` holds for each user, by the reserve script; returns reservation ids."""
    ids: list[str] = []

    def operations() -> Iterator[Steps[Reservation]]:
        for _ in range(per_user):
            for user in users:
                steps = holds.reserve(Now(now_ms), user, amount, ACTION, ttl_s, None, None)
                yield _collect(steps, ids)

    run_pipelined(client, operations())
    return ids


def _collect(steps: Steps[Reservation], into: list[str]) -> Steps[Reservation]:
    reservation = yield from steps
    into.append(reservation.id)
    return reservation
