"""Every bound of the ledger, with its unit last in the name.

A lost bound becomes a slow script, and Redis runs one script at a time, so a
slow script stalls every app that shares the server. Everything a caller can
make large is capped here and checked before anything is written.
"""

from __future__ import annotations

# Lua numbers are doubles: every integer up to 2**53 - 1 is exact, none above is.
AMOUNT_MAX = 2**53 - 1
# The sum balance + held of one user never passes AMOUNT_MAX, so releasing a
# hold can never push a balance past it either.
USER_TOTAL_MAX = AMOUNT_MAX

USER_ID_CHARS_MAX = 256
ACTION_CHARS_MAX = 128
IDEMPOTENCY_KEY_CHARS_MAX = 256
REASON_CHARS_MAX = 1024
METADATA_BYTES_MAX = 8 * 1024
# Nesting of metadata objects and arrays: deeper is refused before it is encoded.
METADATA_DEPTH_MAX = 32

# Items of one add_many / deduct_many call: one pipeline, so one bounded burst.
BULK_ITEMS_MAX = 1000

TRANSACTIONS_LIMIT_MAX = 1000
TRANSACTIONS_LIMIT_DEFAULT = 50

# Keys live at least 24 hours (docs/CONTRACT.md, invariant 4); we keep them 48 so that a
# retry storm after a day-long outage still finds its first result.
IDEMPOTENCY_TTL_MS = 48 * 60 * 60 * 1000

HOLD_TTL_MS_MIN = 1000
HOLD_TTL_MS_MAX = 30 * 24 * 60 * 60 * 1000
# A closed hold's record (and its Settlement) is kept this long after it closed,
# so that a webhook delivered twice, or late, still finds it.
CLOSED_HOLD_RETENTION_MS = 30 * 24 * 60 * 60 * 1000
OPEN_HOLDS_PER_USER_MAX = 1000
RESERVATIONS_LIST_LIMIT_MAX = 1000
# Hold records one read call returns; a longer list is read in pages of this many.
HOLDS_READ_PER_CALL_MAX = 250

# Work one script call may do on the side (lazy expiry, purging old closed
# holds), so that no call's cost grows with a user's history. A call with more
# upkeep due does this much, decides nothing, and is called again.
LAZY_EXPIRE_PER_CALL_MAX = 64
CLOSED_PURGE_PER_CALL_MAX = 16
# Calls one operation may make to finish its user's upkeep: enough to close
# every open hold a user may have, LAZY_EXPIRE_PER_CALL_MAX at a time, with room.
UPKEEP_CALLS_MAX = -(-OPEN_HOLDS_PER_USER_MAX // LAZY_EXPIRE_PER_CALL_MAX) + 8

# Verify and rebuild read the log in chunks of this many events outside any
# script; the final atomic step of a rebuild reads at most this many tail events.
# 500: a 2,000-event XRANGE took up to 9 ms on the 2-core bench machine, 500 under
# 5 ms (bench/RESULTS.md, "longest call"), and verifying was no slower.
LOG_CHUNK_EVENTS = 500
LOG_CHUNK_EVENTS_MAX = 10_000

# Holds one sweep script call closes at most (each costs an event, a few index
# updates and giving its credits back to their lots: about 50 µs), so a sweep over
# any backlog never holds Redis for more than a couple of milliseconds at a time.
# Checkpoints (credits/checkpoints.py): a verified replay state of a user's log (balance,
# held, lots, pinned holds) at a log id. Verify writes one every this many events it
# replays, so balance_at and a rebuild never replay more than this many events, plus
# one "head" checkpoint at the end it verified (replaced by the next verify), so the
# next verify and reconcile read only what was written since.
CHECKPOINT_EVERY_EVENTS = 1000
# Checkpoints one script call writes at most (each is one XADD of a few hundred bytes).
CHECKPOINT_WRITES_PER_CALL_MAX = 16

# The archive tier (credits/archive/): events older than the hot window and behind a
# verified checkpoint are copied to the archive and then trimmed from Redis, at most
# this many per copy-then-trim step (one archive transaction, one bounded script call).
ARCHIVE_BATCH_EVENTS = 1000
ARCHIVE_BATCH_EVENTS_MAX = 10_000
HOT_DAYS_DEFAULT = 90
HOT_DAYS_MAX = 100 * 365
# Users one archive run looks at per pipeline (one XRANGE COUNT 1 each).
ARCHIVE_SCAN_USERS = 200

SWEEP_HOLDS_PER_CALL_MAX = 32
SWEEP_BATCH_HOLDS_DEFAULT = SWEEP_HOLDS_PER_CALL_MAX
SWEEP_BATCH_HOLDS_MAX = SWEEP_HOLDS_PER_CALL_MAX
RECONCILE_BATCH_USERS_DEFAULT = 200
RECONCILE_BATCH_USERS_MAX = 5000

# Credit lots. Active lots (pending, active, or expired but still held by open
# holds) live in the account hash and are read by every call, so they are
# bounded; finished lots move to their own hash, cost nothing per call, and are
# forgotten FINISHED_LOT_RETENTION_MS after they finished.
LOTS_ACTIVE_PER_USER_MAX = 100
LOT_SCOPE_ACTIONS_MAX = 32
LOT_PRIORITY_MIN = 0
LOT_PRIORITY_MAX = 100
LOT_PRIORITY_DEFAULT = 50
FINISHED_LOT_RETENTION_MS = 90 * 24 * 60 * 60 * 1000
# Lot starts and expiries one call may apply (each is a log event); more due
# means the call answers "upkeep" and is called again.
LOT_UPKEEP_PER_CALL_MAX = 32
FINISHED_LOT_PURGE_PER_CALL_MAX = 16
LOTS_LIST_LIMIT_MAX = 1000
# A lot may expire or start at most this far ahead (about 100 years).
LOT_TERM_MS_MAX = 100 * 365 * 24 * 60 * 60 * 1000
# Lot expiring notices (lot.expiring) go out this long before expires_at by default.
LOT_EXPIRING_NOTICE_MS_DEFAULT = 7 * 24 * 60 * 60 * 1000

# ---------------------------------------------------------------- plans
# What a user's account is configured with beyond its lots (credits/plans/): every
# entry lives in one JSON field of the account hash, read with the balance, so each
# bound keeps every call that decodes it small.
ALLOWANCES_PER_USER_MAX = 8
SPEND_LIMITS_PER_USER_MAX = 8
ALERTS_PER_USER_MAX = 8
PLAN_NAME_CHARS_MAX = 64
# The latest anchor an allowance may have, so every period end stays a valid time.
ALLOWANCE_ANCHOR_MS_MAX = AMOUNT_MAX - 2 * 366 * 24 * 60 * 60 * 1000
# Lots the ledger itself makes (allowance periods, rollovers, top-ups) may take the
# active set this far past LOTS_ACTIVE_PER_USER_MAX: an upkeep cannot refuse a grant.
# Each allowance holds at most 3 active lots (this period's, a raise for it, the
# rollover), and one top-up lot is granted per confirmation.
PLAN_LOTS_HEADROOM = 3 * ALLOWANCES_PER_USER_MAX + 8
# Auto top-up: failed payments in a row that switch it off; recent confirmations
# remembered so a repeated confirm_topup returns its first result.
TOPUP_FAILURES_MAX = 3
TOPUP_RESULTS_KEPT = 16
TOPUP_MONTHLY_MAX = 1000

# Ledger events (credits/lua/include/events.lua) kept per bucket at most, so the
# outbox's memory is bounded even if nothing delivers it: 1,024 buckets x 10,000
# events of ~150 B is about 1.5 GB at the very worst. The delivery task trims
# delivered events much sooner, by age.
OUTBOX_EVENTS_PER_BUCKET_MAX = 10_000

# wait_replicas: a write is acknowledged only once this many replicas have it
# (WAIT / WAITAOF after the script, on the connection that ran it). More replicas
# than this is a typo, not a topology.
WAIT_REPLICAS_MAX = 16
# How long a write waits for its replicas before StoreUnavailableError. Never 0
# (WAIT 0 blocks for ever); always below the socket timeout, checked with it.
WAIT_TIMEOUT_MS_DEFAULT = 500
WAIT_TIMEOUT_MS_MIN = 1
WAIT_TIMEOUT_MS_MAX = 60_000

# Fixed number of hash-tag buckets users are spread over. A user's bucket is
# part of every key and of every reservation id, so this is a storage-format
# constant: changing it orphans existing data.
BUCKET_COUNT = 1024

# ---------------------------------------------------------------- events out
# Reading the outbox (credits/events.py, credits/event_cursor.py) and delivering it by
# webhook (credits/webhooks/). Each bound keeps one call, one task run or one key small.

# Events one read_events call returns at most; it reads at most this many plus one
# probe entry per bucket, whatever the backlog.
EVENTS_READ_LIMIT_MAX = 1000
EVENTS_READ_LIMIT_DEFAULT = 100
# A read cursor holds one position per bucket: a few bytes each, compressed (2 to 7 KB
# with every bucket busy; the bound fits the largest any ledger can produce). Longer
# input is refused before it is decoded, and decoding never inflates past the bytes
# 1,024 positions can take.
EVENT_CURSOR_CHARS_MAX = 32 * 1024
EVENT_CURSOR_BYTES_MAX = 24 * BUCKET_COUNT + 32

# Webhook endpoints: a handful per app, each with its own delivery state.
WEBHOOK_ENDPOINTS_MAX = 100
WEBHOOK_URL_CHARS_MAX = 2048
WEBHOOK_EVENT_FILTERS_MAX = 32
WEBHOOK_EVENT_TYPE_CHARS_MAX = 64
# Standard Webhooks: a secret is 24 to 64 random bytes, base64 after "whsec_".
WEBHOOK_SECRET_BYTES_MIN = 24
WEBHOOK_SECRET_BYTES_MAX = 64
WEBHOOK_SECRET_BYTES_GENERATED = 32
# Steps of a retry schedule (CREDITS_WEBHOOK_RETRY_S), and the longest one step may be.
WEBHOOK_RETRY_STEPS_MAX = 32
WEBHOOK_RETRY_STEP_S_MAX = 7 * 24 * 60 * 60
# One delivery run of one endpoint: it stops starting attempts after this long, so a
# worker process is never held by one endpoint for more than this plus one timeout.
WEBHOOK_RUN_BUDGET_S = 10
# Events one run reads per round in all, and per lane (endpoint, bucket) per round.
WEBHOOK_EVENTS_PER_ROUND_MAX = 2000
WEBHOOK_EVENTS_PER_LANE_MAX = 50
# Transport failures (timeout, refused) with no success in a run before the endpoint
# is taken as down and paused, instead of timing out once per lane.
WEBHOOK_DOWN_AFTER_FAILURES = 3
# Parked (failed) deliveries kept per endpoint; past it the oldest are dropped (counted).
WEBHOOK_FAILED_PER_ENDPOINT_MAX = 10_000
WEBHOOK_FAILED_LIST_MAX = 1000
# Bytes of an endpoint's error answer kept with a parked delivery.
WEBHOOK_ERROR_CHARS_MAX = 300
# Concurrent requests of one endpoint's run (CREDITS_WEBHOOK_CONCURRENCY at most).
WEBHOOK_CONCURRENCY_MAX = 64
# Entries one XTRIM of the outbox may remove (MINID ~ ... LIMIT), and buckets trimmed
# per dispatcher tick; every bucket is visited every BUCKET_COUNT / this many ticks.
OUTBOX_TRIM_ENTRIES_PER_CALL_MAX = 1000
OUTBOX_TRIM_BUCKETS_PER_TICK = 256
# Operator surfaces: the CLI's export, the HTTP API, its admin page and metrics.
# Export reads the log in pages of this many events (one bounded XRANGE each),
# and finds users SSCAN-ing the registries this many at a time.
EXPORT_PAGE_EVENTS = TRANSACTIONS_LIMIT_MAX
EXPORT_SCAN_USERS = 200
# A request body the HTTP API reads at most: metadata is at most 8 KiB encoded,
# and JSON escaping can grow it up to six times.
HTTP_BODY_BYTES_MAX = 64 * 1024
API_KEY_NAME_CHARS_MAX = 64
API_KEYS_MAX = 1000
# How long an HTTP process trusts a key it looked up, and how many it remembers:
# a key revoked by another process stops working within this time.
API_KEY_CACHE_TTL_S = 5.0
API_KEY_CACHE_ENTRIES_MAX = 1024
ADMIN_SESSION_TTL_S = 8 * 60 * 60
ADMIN_HISTORY_PAGE_EVENTS = 50
ADMIN_HOLDS_SHOWN_MAX = 200
# Points of the admin page's balance chart, each one balance_at (O(log N)).
ADMIN_CHART_POINTS = 60
# Ledger metrics: bucket keys read per pipeline, how long one scrape's reading
# is reused (so a flood of scrapes costs Redis one read per interval), and the
# most (type, category, action) series exported (the rest are summed as "_other").
METRICS_BUCKETS_PER_BATCH = 128
METRICS_SNAPSHOT_TTL_S = 5.0
METRICS_SERIES_MAX = 1000
