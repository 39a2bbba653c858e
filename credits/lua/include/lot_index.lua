-- lot_index: when the user's next lot transition is due (a lot taking effect,
-- expiring, or due its expiring notice): the account's hint nl and the bucket's
-- lot index, which the lot sweep walks, kept in step.
--- @include "lots"

-- The next time one of the user's lots starts, expires or is due its notice.
local function next_lot_time(u)
  local next_ms = FAR_FUTURE_MS
  for _, lot in ipairs(lots_of(u)) do
    local t = FAR_FUTURE_MS
    if lot.st == 'pending' then
      t = tonumber(lot.f)
    elseif lot.st == 'active' and lot.e ~= '' then
      t = tonumber(lot.e)
      if not lot.w and t > NOW_MS then
        t = t - LOT_NOTICE_MS
      end
    end
    if t < next_ms then
      next_ms = t
    end
  end
  return next_ms
end

local function index_next_lot(u)
  if u.next_lot < FAR_FUTURE_MS then
    redis.call('ZADD', u.lot_due, u.next_lot, u.escaped)
  else
    redis.call('ZREM', u.lot_due, u.escaped)
  end
end

-- Keep the bucket's lot index (for the lot sweep) and the hint in step.
local function set_next_lot(u, next_ms)
  if next_ms ~= u.next_lot then
    u.next_lot = next_ms
    u.hints_changed = true
    index_next_lot(u)
  end
end
