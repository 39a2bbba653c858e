-- account: one user's keys and cached state.
--   KEYS[1..7]  account, log, holds, open, closed, due, users   (one user; one slot)
-- The account hash keeps two hints so that upkeep costs nothing when nothing is due:
--   nx  no open hold expires before this (ms); only ever too early, never too late
--   np  no closed hold is old enough to purge before this (ms); likewise
-- A missing hint means "look": accounts written before the hints existed just look once.
--- @include "context"

-- One user's keys, starting at KEYS[first]: account, log, holds, open, closed.
local function user_at(first, escaped, due, users)
  return {
    account = KEYS[first], log = KEYS[first + 1], holds = KEYS[first + 2],
    open = KEYS[first + 3], closed = KEYS[first + 4],
    due = due, users = users, escaped = escaped,
  }
end

local function this_user()
  return user_at(1, ARGV[2], KEYS[6], KEYS[7])
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
