"""Every Redis key of the ledger, and the hash tag that keeps a user's keys together.

A user's keys all carry the tag of the user's *bucket*, ``{b<n>}`` with ``n`` a
stable hash of the user id modulo :data:`~credits.limits.BUCKET_COUNT`. So:

* every script touches keys of one slot only, on a single Redis or a Cluster;
* the user id never appears inside the braces, so no id (``{``, ``}``, ``:``,
  spaces, unicode) can move its keys to another slot;
* the bucket's own keys (the due-index of open holds, the user registry) share
  that slot, so reserve, extend, settle and expiry update them in the same
  atomic script, and the sweep and reconcile walk a fixed set of keys whose
  number does not grow with users.

Inside the tag, the user id is escaped (``%`` and ``:``) so that the key of one
user can never be spelled by another user's id.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass
from functools import lru_cache

from credits.limits import BUCKET_COUNT
from credits.protocol import Now

PREFIX = "credits"
USER_KEYS_CACHED_MAX = 4096
USER_KEY_COUNT = 7  # account, log, holds, open, closed, lots, lots_done
_RESERVATION_ID = re.compile(
    r"^rsv:\{b(?P<bucket>[0-9]{1,4})\}:(?P<user>[^:]+):(?P<hold>[0-9a-f]{20})$"
)


def bucket_of(user_id: str) -> int:
    """The user's bucket: CRC32 of the UTF-8 id, so every client agrees forever."""
    return zlib.crc32(user_id.encode("utf-8")) % BUCKET_COUNT


def escape_user_id(user_id: str) -> str:
    return user_id.replace("%", "%25").replace(":", "%3A")


def unescape_user_id(escaped: str) -> str:
    return escaped.replace("%3A", ":").replace("%25", "%")


def bucket_tag(bucket: int) -> str:
    return f"{{b{bucket}}}"


@dataclass(frozen=True, slots=True)
class UserKeys:
    """The keys of one user, in the order every per-user script receives them.

    The first :data:`USER_KEY_COUNT` are the user's own; the rest are its
    bucket's, shared with the other users of the bucket (same slot).
    """

    user_id: str
    bucket: int
    escaped: str
    account: str  # hash: bal, held, ct (created ms), init (first initialize), lid (log end), hints
    log: str  # stream: one entry per event
    holds: str  # hash: hold id -> JSON record (open and recently closed)
    open: str  # zset: open hold id by expires_at ms
    closed: str  # zset: closed hold id by last change ms, for purging old records
    lots: str  # hash: lot id -> JSON record of a finished lot (active ones live in the account)
    lots_done: str  # zset: finished lot id by finished ms, for purging old records
    due: str  # bucket zset: "<escaped user>:<hold id>" by expires_at ms, for the sweep
    users: str  # bucket set: escaped user ids, for reconcile
    outbox: str  # bucket stream: ledger events for apps (alerts, webhooks)
    lot_due: str  # bucket zset: "<escaped user>" by the user's next lot start or expiry ms
    renew_due: str  # bucket zset: "<escaped user>" by the user's next allowance period ms
    stats: str  # bucket hash: "<metric>:<category>:<action>" -> credits, for /metrics
    checkpoints: str  # stream: verified replay states of the log, by the log id they reach
    checkpoint_head: str  # string: "<id>|<events>|<state>", the end the last verify reached
    archived: str  # string: the log id up to which events moved to the archive (and left)

    def script_keys(self) -> list[str]:
        return [
            self.account, self.log, self.holds, self.open, self.closed, self.lots,
            self.lots_done, self.due, self.users, self.outbox, self.lot_due, self.renew_due,
            self.stats,
        ]  # fmt: skip

    def own_keys(self) -> list[str]:
        """The user's own keys (what a sweep passes per user)."""
        return self.script_keys()[:USER_KEY_COUNT]

    def idempotency(self, key: str) -> str:
        return f"{self.account}:idem:{key}"

    def script_call(
        self, now: Now, idempotency_key: str | None = None
    ) -> tuple[list[str], list[str | int]]:
        """The KEYS and leading ARGV of every per-user script (``lua/include/account.lua``)."""
        keys = self.script_keys()
        if idempotency_key is not None:
            keys.append(self.idempotency(idempotency_key))
        return keys, [*context_args(now), self.escaped]


@lru_cache(maxsize=USER_KEYS_CACHED_MAX)
def user_keys(user_id: str) -> UserKeys:
    """The keys of ``user_id`` (cached: apps hit the same users again and again)."""
    bucket = bucket_of(user_id)
    escaped = escape_user_id(user_id)
    tag = bucket_tag(bucket)
    base = f"{PREFIX}:{tag}:u:{escaped}"
    return UserKeys(
        user_id=user_id,
        bucket=bucket,
        escaped=escaped,
        account=base,
        log=f"{base}:log",
        holds=f"{base}:holds",
        open=f"{base}:open",
        closed=f"{base}:closed",
        lots=f"{base}:lots",
        lots_done=f"{base}:lotsdone",
        due=due_key(bucket),
        users=users_key(bucket),
        outbox=outbox_key(bucket),
        lot_due=lot_due_key(bucket),
        renew_due=renew_due_key(bucket),
        stats=stats_key(bucket),
        checkpoints=f"{base}:ckpt",
        checkpoint_head=f"{base}:ckhead",
        archived=f"{base}:arch",
    )


def context_args(now: Now) -> list[str | int]:
    """ARGV[1..2] of every script: the time ("" for the server's TIME) and the configuration."""
    return ["" if now.ms is None else now.ms, now.config]


def config_arg(*, lot_expiring_notice_ms: int, default_alert_below: int | None = None) -> str:
    """The client's script configuration, in the order ``lua/include/context.lua`` reads it."""
    alert = "" if default_alert_below is None else str(default_alert_below)
    return "|".join((str(lot_expiring_notice_ms), alert))


def due_key(bucket: int) -> str:
    return f"{PREFIX}:{bucket_tag(bucket)}:due"


def users_key(bucket: int) -> str:
    return f"{PREFIX}:{bucket_tag(bucket)}:users"


def outbox_key(bucket: int) -> str:
    return f"{PREFIX}:{bucket_tag(bucket)}:outbox"


def lot_due_key(bucket: int) -> str:
    return f"{PREFIX}:{bucket_tag(bucket)}:lotdue"


def renew_due_key(bucket: int) -> str:
    return f"{PREFIX}:{bucket_tag(bucket)}:renewdue"


def stats_key(bucket: int) -> str:
    return f"{PREFIX}:{bucket_tag(bucket)}:stats"


def bucket_keys(bucket: int) -> list[str]:
    """The bucket's shared keys, in the order scripts receive them after a user's own."""
    return [
        due_key(bucket), users_key(bucket), outbox_key(bucket),
        lot_due_key(bucket), renew_due_key(bucket), stats_key(bucket),
    ]  # fmt: skip


def new_hold_id() -> str:
    return secrets.token_hex(10)


LOT_ID_HEX_CHARS = 10
LEGACY_LOT_ID = "0" * LOT_ID_HEX_CHARS  # the one lot an account written before lots has
_LOT_ID = re.compile(r"^lot:\{b(?P<bucket>[0-9]{1,4})\}:(?P<user>[^:]+):(?P<lot>[0-9a-f]{10})$")


def new_lot_id() -> str:
    """A lot id within its user: random, never the legacy lot's."""
    while (lot := secrets.token_hex(LOT_ID_HEX_CHARS // 2)) == LEGACY_LOT_ID:
        pass
    return lot


def lot_id(keys: UserKeys, lot: str) -> str:
    """The public id of a lot: carries the user's tag, so the id alone routes to it."""
    return f"lot:{bucket_tag(keys.bucket)}:{keys.escaped}:{lot}"


def parse_lot_id(value: str) -> tuple[str, str] | None:
    """(user id, lot id within the user) of a canonical public lot id, else None."""
    match = _LOT_ID.match(value)
    if match is None:
        return None
    user_id = unescape_user_id(match["user"])
    if escape_user_id(user_id) != match["user"] or match["bucket"] != str(bucket_of(user_id)):
        return None
    return user_id, match["lot"]


def reservation_id(keys: UserKeys, hold_id: str) -> str:
    return f"rsv:{bucket_tag(keys.bucket)}:{keys.escaped}:{hold_id}"


@dataclass(frozen=True, slots=True)
class ParsedReservationId:
    user_id: str
    hold_id: str


def parse_reservation_id(value: str) -> ParsedReservationId | None:
    """Split a reservation id into user and hold, or None when it is not one of ours.

    Only the canonical form is accepted (the form the ledger issues): the bucket
    in the id must be the user's own, written without leading zeros, so an id
    edited by hand to point another bucket's keys at a user is refused rather
    than routed. ``value`` must already be encodable (see ``check_encodable``).
    """
    match = _RESERVATION_ID.match(value)
    if match is None:
        return None
    user_id = unescape_user_id(match["user"])
    if escape_user_id(user_id) != match["user"] or match["bucket"] != str(bucket_of(user_id)):
        return None  # only the canonical spelling: no leading zeros, no other escaping
    return ParsedReservationId(user_id=user_id, hold_id=match["hold"])


_TOPUP_ID = re.compile(
    r"^top:\{b(?P<bucket>[0-9]{1,4})\}:(?P<user>[^:]+):(?P<topup>(?:0|[1-9][0-9]{0,15})-[1-9][0-9]{0,15})$"
)


def topup_id(keys: UserKeys, topup: str) -> str:
    """The public id of an auto top-up request: carries the user's tag, as a lot id does."""
    return f"top:{bucket_tag(keys.bucket)}:{keys.escaped}:{topup}"


def parse_topup_id(value: str) -> tuple[str, str] | None:
    """(user id, request id within the user) of a canonical top-up id, else None."""
    match = _TOPUP_ID.match(value)
    if match is None:
        return None
    user_id = unescape_user_id(match["user"])
    if escape_user_id(user_id) != match["user"] or match["bucket"] != str(bucket_of(user_id)):
        return None
    return user_id, match["topup"]


def due_member_parts(member: str) -> tuple[str, str] | None:
    """Split a due-index member ``<escaped user>:<hold id>`` into (user id, hold id)."""
    escaped, sep, hold_id = member.rpartition(":")
    if not sep or not escaped:
        return None
    return unescape_user_id(escaped), hold_id


# ---------------------------------------------------------------- events out
# Webhook endpoints and their delivery state (credits/webhooks/). Nothing here is in a
# user's slot: no script spans them and an outbox stream, so each lives where its
# own tag puts it. An endpoint's keys share the tag {wh:<endpoint id>}.

WEBHOOK_ENDPOINTS_KEY = f"{PREFIX}:webhooks:endpoints"  # hash: endpoint id -> JSON record
WEBHOOK_DISPATCH_LOCK_KEY = f"{PREFIX}:webhooks:dispatch"  # string: one dispatcher tick at a time
WEBHOOK_TRIM_TICK_KEY = f"{PREFIX}:webhooks:trimtick"  # counter: which buckets a tick trims
EVENT_STATS_KEY = f"{PREFIX}:events:stats"  # hash: counters for /metrics


def webhook_tag(endpoint_id: str) -> str:
    return f"{{wh:{endpoint_id}}}"


def webhook_lanes_key(endpoint_id: str) -> str:
    """Hash: bucket -> "<last id>|<failed attempts of the next>|<not before ms>"."""
    return f"{PREFIX}:{webhook_tag(endpoint_id)}:lanes"


def webhook_failed_key(endpoint_id: str) -> str:
    """Hash: event id -> JSON of a parked delivery."""
    return f"{PREFIX}:{webhook_tag(endpoint_id)}:failed"


def webhook_failed_index_key(endpoint_id: str) -> str:
    """Zset: event id by the ms it was parked (oldest dropped past the bound)."""
    return f"{PREFIX}:{webhook_tag(endpoint_id)}:failedidx"


def webhook_lock_key(endpoint_id: str) -> str:
    """String: the token of the one delivery run of this endpoint (SET NX PX)."""
    return f"{PREFIX}:{webhook_tag(endpoint_id)}:lock"


def webhook_queued_key(endpoint_id: str) -> str:
    """String: a run of this endpoint is queued (so ticks do not pile runs up)."""
    return f"{PREFIX}:{webhook_tag(endpoint_id)}:queued"


def webhook_pause_key(endpoint_id: str) -> str:
    """String: "<down streak>|<paused until ms>" of an endpoint that was down."""
    return f"{PREFIX}:{webhook_tag(endpoint_id)}:pause"


def webhook_keys(endpoint_id: str) -> list[str]:
    """Every key of an endpoint's delivery state (what removing it deletes)."""
    return [
        webhook_lanes_key(endpoint_id), webhook_failed_key(endpoint_id),
        webhook_failed_index_key(endpoint_id), webhook_lock_key(endpoint_id),
        webhook_queued_key(endpoint_id), webhook_pause_key(endpoint_id),
    ]  # fmt: skip
