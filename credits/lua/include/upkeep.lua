-- upkeep: what every per-user script does before it decides anything.
-- Each call does a bounded amount of it; when more is due than one call may do,
-- the script answers {"upkeep"} without deciding, and the client calls again
-- (credits/protocol.py), so no decision ever counts an expired hold as held.
--- @include "holds"

-- Close up to `limit` of the user's holds whose expiry has come (expires_at <= now).
-- Returns true when none is left due.
local function expire_due_holds(u, limit)
  if u.next_expiry > NOW_MS then
    return true
  end
  local ids = redis.call('ZRANGEBYSCORE', u.open, '-inf', NOW, 'LIMIT', 0, limit)
  for _, hold_id in ipairs(ids) do
    expire_hold(u, hold_id, load_hold(u, hold_id))
  end
  u.next_expiry = first_score(u.open) or FAR_FUTURE_MS
  u.hints_changed = true
  return u.next_expiry > NOW_MS
end

-- Forget closed holds past their retention, a few per call. Reads never see a
-- hold past its retention (load_hold), so what is left for the next call is
-- housekeeping, not a decision.
local function purge_closed_holds(u)
  if u.next_purge > NOW_MS then
    return
  end
  local ids = redis.call('ZRANGEBYSCORE', u.closed, '-inf', NOW_MS - CLOSED_RETENTION_MS,
    'LIMIT', 0, CLOSED_PURGE_MAX)
  if #ids > 0 then
    redis.call('HDEL', u.holds, unpack(ids))
    redis.call('ZREM', u.closed, unpack(ids))
  end
  local oldest = first_score(u.closed)
  u.next_purge = oldest and oldest + CLOSED_RETENTION_MS or FAR_FUTURE_MS
  u.hints_changed = true
end

-- Lazy upkeep every per-user script runs before its own work. Returns true when
-- it is complete (nothing expired is left open). Costs nothing but the account
-- read when nothing is due.
local function upkeep(u)
  if not u.created then
    return true
  end
  local complete = expire_due_holds(u, LAZY_EXPIRE_MAX)
  purge_closed_holds(u)
  save_hints(u)
  return complete
end
