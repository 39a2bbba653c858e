-- upkeep: what every per-user script does before its own work, bounded per call.
--- @include "holds"

-- Close the user's holds whose expiry has come (expires_at <= now), at most
-- `limit`, each with an 'expire' event. Returns the ids it closed.
local function expire_due_holds(u, limit)
  if u.next_expiry > NOW_MS then
    return {}
  end
  local ids = redis.call('ZRANGEBYSCORE', u.open, '-inf', ARGV[1], 'LIMIT', 0, limit)
  for _, hold_id in ipairs(ids) do
    local rec = load_hold(u, hold_id)
    local amount = tonumber(rec.a)
    append(u, 'expire', amount, amount, -amount, rec.c, '', hold_id, '')
    close_hold(u, hold_id, rec, 'expired')
  end
  u.next_expiry = first_score(u.open) or FAR_FUTURE_MS
  u.hints_changed = true
  return ids
end

-- Forget closed holds older than the retention, a few per call.
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

-- Lazy upkeep every per-user script runs before its own work. Returns how many
-- holds it expired. Costs nothing but the account read when nothing is due.
local function upkeep(u)
  local expired = #expire_due_holds(u, LAZY_EXPIRE_MAX)
  purge_closed_holds(u)
  save_hints(u)
  return expired
end

-- A hold named by the caller, read once; read again only when upkeep closed
-- holds (this may be one of them). nil when there is no such hold.
local function hold_after_upkeep(u, hold_id)
  local rec = load_hold(u, hold_id)
  if rec and upkeep(u) > 0 then
    rec = load_hold(u, hold_id)
  end
  return rec
end
