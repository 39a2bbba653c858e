-- account: one user's keys and cached state.
--   KEYS[1..7]   the user's own: account, log, holds, open, closed, lots, lots_done
--   KEYS[8..13]  its bucket's: due, users, outbox, lot_due, renew_due, stats (one slot in all)
--   ARGV[3]      the user's escaped id (due-index members are "<escaped user>:<hold id>")
-- The account hash: bal, held, ct (created ms), lid (the log's end), init (the first
-- initialize's result), L (the active lots, JSON: see lots.lua), ls (lot sequence),
-- and hints that make upkeep free when nothing is due, each only ever too early:
--   nx  no open hold expires before this (ms)
--   np  no closed hold is old enough to purge before this
--   nl  no lot starts, expires or is due its expiring notice before this
--   nq  no finished lot is old enough to purge before this
--   na  no allowance period starts before this (absent: the user has no plans)
-- A missing hint means "look": accounts written before a hint existed just look once.
--- @include "context"

local USER_KEYS = 7

-- The bucket's shared keys, starting at KEYS[first].
local function bucket_at(first)
  return {
    due = KEYS[first], users = KEYS[first + 1], outbox = KEYS[first + 2],
    lot_due = KEYS[first + 3], renew_due = KEYS[first + 4], stats = KEYS[first + 5],
  }
end

-- One user's keys, starting at KEYS[first], with its bucket's.
local function user_at(first, escaped, bucket)
  return {
    account = KEYS[first], log = KEYS[first + 1], holds = KEYS[first + 2],
    open = KEYS[first + 3], closed = KEYS[first + 4], lots_hash = KEYS[first + 5],
    lots_done = KEYS[first + 6],
    due = bucket.due, users = bucket.users, outbox = bucket.outbox,
    lot_due = bucket.lot_due, renew_due = bucket.renew_due, stats = bucket.stats,
    escaped = escaped,
  }
end

local function this_user()
  return user_at(1, ARGV[3], bucket_at(USER_KEYS + 1))
end

local function load_account(u)
  local v = redis.call('HMGET', u.account, 'bal', 'held', 'ct', 'lid', 'nx', 'np', 'L', 'nl',
    'nq', 'ls', 'PL', 'na')
  u.bal = tonumber(v[1]) or 0
  u.held = tonumber(v[2]) or 0
  u.created = v[3]
  u.lid = v[4]
  u.next_expiry = tonumber(v[5]) or 0
  u.next_purge = tonumber(v[6]) or 0
  u.raw_lots = v[7]
  u.next_lot = tonumber(v[8]) or 0
  u.next_lot_purge = tonumber(v[9]) or 0
  u.lot_seq = tonumber(v[10]) or 0
  u.raw_plans = v[11] or nil
  u.next_allowance = tonumber(v[12]) or (v[11] and 0 or FAR_FUTURE_MS)
  u.deltas, u.stat, u.forfeited = {}, {}, 0
  u.to_finish, u.details, u.later = {}, {}, {}
  return u
end

-- An account whose hash is gone while its log remains: nothing may be decided
-- on it (its balance would read 0, a welcome grant would be paid again) until
-- rebuild_balance restores it from the log. Costs a call only for unknown users.
local function damaged(u)
  return not u.created and redis.call('EXISTS', u.log) == 1
end

-- A new account is written by its first event (append), never before it, so a
-- refused or failed call leaves no account behind.
local function ensure_account(u)
  if not u.created then
    u.created = NOW
    u.is_new = true
    u.lots = {}
    u.next_expiry, u.next_purge = FAR_FUTURE_MS, FAR_FUTURE_MS
    u.next_lot, u.next_lot_purge = FAR_FUTURE_MS, FAR_FUTURE_MS
    u.next_allowance = FAR_FUTURE_MS
    u.hints_changed = true
  end
end

-- The hints, and the lots when they changed, as HSET arguments.
local function state_fields(u, fields)
  if u.hints_changed then
    local n = #fields
    fields[n + 1], fields[n + 2] = 'nx', fmt(u.next_expiry)
    fields[n + 3], fields[n + 4] = 'np', fmt(u.next_purge)
    fields[n + 5], fields[n + 6] = 'nl', fmt(u.next_lot)
    fields[n + 7], fields[n + 8] = 'nq', fmt(u.next_lot_purge)
    fields[n + 9], fields[n + 10] = 'na', fmt(u.next_allowance)
    u.hints_changed = false
  end
  if u.plans_dirty then
    local n = #fields
    fields[n + 1], fields[n + 2] = 'PL', cjson.encode(u.plans)
    fields[n + 3], fields[n + 4] = 'na', fmt(u.next_allowance)
    u.plans_dirty = false
  end
  if u.lots_dirty then
    local n = #fields
    fields[n + 1], fields[n + 2] = 'L', cjson.encode(u.lots)
    fields[n + 3], fields[n + 4] = 'ls', fmt(u.lot_seq)
    u.lots_dirty = false
  end
  return fields
end

-- Is any upkeep due that a decision depends on (a hold to close, a lot to start
-- or expire, an allowance period to grant)? Then a script decides nothing and answers {"upkeep"}: the client
-- runs run_upkeep.lua (bounded calls) and calls again. The hints are only ever
-- early, so this is never late, and it costs nothing when nothing is due.
local function upkeep_due(u)
  if not u.created then
    return false
  end
  return u.next_expiry <= NOW_MS or u.next_lot <= NOW_MS or u.next_allowance <= NOW_MS
end
