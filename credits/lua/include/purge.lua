-- purge: forgetting closed holds and finished lots past their retention, a few
-- per call. Housekeeping, not a decision: reads never return a record past its
-- retention whether or not it has been purged (load_hold, read_lots), so this
-- runs after a call's own change, and with the upkeep, never before a decision.
--- @include "holds"
--- @include "lots"

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

-- Forget finished lots past their retention, a few per call.
local function purge_finished_lots(u)
  if u.next_lot_purge > NOW_MS then
    return
  end
  local ids = redis.call('ZRANGEBYSCORE', u.lots_done, '-inf', NOW_MS - LOT_RETENTION_MS,
    'LIMIT', 0, LOT_PURGE_MAX)
  if #ids > 0 then
    redis.call('HDEL', u.lots_hash, unpack(ids))
    redis.call('ZREM', u.lots_done, unpack(ids))
  end
  local oldest = redis.call('ZRANGE', u.lots_done, 0, 0, 'WITHSCORES')
  u.next_lot_purge = oldest[2] and tonumber(oldest[2]) + LOT_RETENTION_MS or FAR_FUTURE_MS
  u.hints_changed = true
end

local function housekeeping(u)
  purge_closed_holds(u)
  purge_finished_lots(u)
  save_hints(u)
end
