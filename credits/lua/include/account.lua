-- account: one user's keys and cached state.
--   KEYS[1..7]   the user's own: account, log, holds, open, closed, lots, lots_done
--   KEYS[8..12]  its bucket's: due, users, outbox, lot_due, renew_due   (one slot in all)
-- The account hash keeps two hints so that upkeep costs nothing when nothing is due:
--   nx  no open hold expires before this (ms); only ever too early, never too late
--   np  no closed hold is old enough to purge before this (ms); likewise
-- A missing hint means "look": accounts written before the hints existed just look once.
--- @include "context"

local USER_KEYS = 7

-- The bucket's shared keys, starting at KEYS[first].
local function bucket_at(first)
  return {
    due = KEYS[first], users = KEYS[first + 1], outbox = KEYS[first + 2],
    lot_due = KEYS[first + 3], renew_due = KEYS[first + 4],
  }
end

-- One user's keys, starting at KEYS[first], with its bucket's.
local function user_at(first, escaped, bucket)
  return {
    account = KEYS[first], log = KEYS[first + 1], holds = KEYS[first + 2],
    open = KEYS[first + 3], closed = KEYS[first + 4], lots = KEYS[first + 5],
    lots_done = KEYS[first + 6],
    due = bucket.due, users = bucket.users, outbox = bucket.outbox,
    lot_due = bucket.lot_due, renew_due = bucket.renew_due, escaped = escaped,
  }
end

local function this_user()
  return user_at(1, ARGV[2], bucket_at(USER_KEYS + 1))
end

local function load_account(u)
  local v = redis.call('HMGET', u.account, 'bal', 'held', 'ct', 'lid', 'nx', 'np')
  u.bal = tonumber(v[1]) or 0
  u.held = tonumber(v[2]) or 0
  u.created = v[3]
  u.lid = v[4]
  u.next_expiry = tonumber(v[5]) or 0
  u.next_purge = tonumber(v[6]) or 0
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
    u.next_expiry, u.next_purge = FAR_FUTURE_MS, FAR_FUTURE_MS
    u.hints_changed = true
  end
end

-- Write the hints after upkeep moved them later (every event's HSET writes them too).
local function save_hints(u)
  if u.hints_changed and u.created and not u.is_new then
    redis.call('HSET', u.account, 'nx', fmt(u.next_expiry), 'np', fmt(u.next_purge))
    u.hints_changed = false
  end
end
