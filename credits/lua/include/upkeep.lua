-- upkeep: closing expired holds, starting and expiring lots, purging old records.
-- Decisions never run with upkeep due: a script that finds any (upkeep_due)
-- answers {"upkeep"}, and the client runs run_upkeep.lua, a bounded amount per
-- call, until none is left, then calls again (credits/protocol.py). So no
-- decision ever counts an expired hold or lot as live, and the scripts on the
-- hot path carry none of this code. The sweeps use it too.
-- Holds are closed before lots move: a hold's credits go back to their lot
-- first, and leave with it if the lot expires in the same pass.
--- @include "holds"
--- @include "lots"
--- @include "lot_index"
--- @include "events"
--- @include "allowances"
--- @include "purge"

-- Close one open hold whose time has come: its pins go back to their lots, with
-- its 'expire' event.
local function expire_hold(u, hold_id, rec)
  local amount = tonumber(rec.a)
  local returned = give_back(u, pins_of(rec), 0, rec.c)
  uncount(u, rec.lw, amount)
  local id = append(u, 'expire', amount, returned, -amount, rec.c, '', hold_id, '')
  close_hold(u, hold_id, rec, 'expired')
  emit(u, 'reservation.expired', { hold = hold_id, amount = amount, action = rec.c, tx = id })
end

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

-- A lot that starts now: its amount enters the balance with a lot_start event.
local function start_lot(u, lot)
  lot.st = 'active'
  u.lots_dirty = true
  local amount = tonumber(lot.r)
  lot.r = '0'
  lot_delta(u, lot, amount)
  append(u, 'lot_start', amount, amount, 0, lot.x, '', '', lot.i, '')
  finish_if_done(u, lot)
end

-- A lot whose expires_at has come: what remains leaves the balance (lot_expire);
-- what its open holds hold leaves when they give it back.
local function expire_lot(u, lot)
  local amount = tonumber(lot.r)
  lot.st = 'expired'
  u.lots_dirty = true
  if amount > 0 then
    lot_delta(u, lot, -amount)
  end
  note_stat(u, 'expired', lot.c, lot.x, amount)
  append(u, 'lot_expire', amount, -amount, 0, lot.x, '', '', lot.i, '')
  emit(u, 'lot.expired', { lot = lot.i, expired = amount, held = tonumber(lot.h) })
  finish_if_done(u, lot)
end

-- Apply up to `budget` lot transitions that are due, earliest first.
-- Returns true when none is left due, and how many it applied.
local function lot_upkeep(u, budget)
  if u.next_lot > NOW_MS then
    return true, 0
  end
  for used = 0, budget - 1 do
    local due, due_ms, kind = nil, FAR_FUTURE_MS, nil
    for _, lot in ipairs(lots_of(u)) do
      local t, k = nil, nil
      if lot.st == 'pending' then
        t, k = tonumber(lot.f), 'start'
      elseif lot.st == 'active' and lot.e ~= '' then
        t, k = tonumber(lot.e), 'expire'
        -- the notice goes out once, before the expiry (none for a lot already expired)
        if not lot.w and t > NOW_MS and LOT_NOTICE_MS > 0 then
          t, k = t - LOT_NOTICE_MS, 'notice'
        end
      end
      if t and t <= NOW_MS and t < due_ms then
        due, due_ms, kind = lot, t, k
      end
    end
    if not due then
      set_next_lot(u, next_lot_time(u))
      return true, used
    end
    if kind == 'start' then
      start_lot(u, due)
    elseif kind == 'expire' then
      expire_lot(u, due)
    else
      due.w = '1'
      u.lots_dirty = true
      emit(u, 'lot.expiring', { lot = due.i, expires_at = tonumber(due.e),
        remaining = tonumber(due.r) })
    end
  end
  local next_ms = next_lot_time(u)
  set_next_lot(u, next_ms)
  return next_ms > NOW_MS, budget
end

-- Allowances renew before lots move: a period's end is also its allowance lot's
-- expiry, and what remains of that lot rolls over before it expires.
local function plans_and_lots_upkeep(u, budget)
  local complete, used = allowance_upkeep(u, math.min(budget, ALLOWANCE_RENEWALS_MAX))
  if not complete then
    return false, used
  end
  local done, applied = lot_upkeep(u, budget - used)
  return done, used + applied
end

-- Lazy upkeep every per-user script runs before its own work. Returns true when
-- it is complete (nothing expired is left open, no allowance period or lot
-- transition is due). Costs nothing but the account read when nothing is due.
local function upkeep(u)
  if not u.created then
    return true
  end
  local complete = expire_due_holds(u, LAZY_EXPIRE_MAX)
  if complete then
    complete = plans_and_lots_upkeep(u, LOT_UPKEEP_MAX)
  end
  housekeeping(u)
  return complete
end
