-- upkeep: closing expired holds, granting allowance periods, starting and expiring
-- lots, purging old records.
-- Decisions never run with upkeep due: a script that finds any (upkeep_due)
-- answers {"upkeep"}, and the client runs run_upkeep.lua, a bounded amount per
-- call, until none is left, then calls again (credits/protocol.py). So no
-- decision ever counts an expired hold or lot as live, and the scripts on the
-- hot path carry none of this code. The sweeps use it too.
-- Due work is applied in the order it fell due, whoever applies it and however
-- late: a hold that expired after its lot did gives its credits back to an
-- expired lot (forfeited), a period's unused credits roll over before a hold
-- that expired later returns more to it. So a balance never depends on when,
-- or whether, the beat ran. Ties go holds, then allowances, then lots: a hold's
-- credits go back to their lot before it expires at the same moment.
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

-- The lot transition due first (a start, an expiry, or an expiring notice): its
-- time, the lot and the kind; FAR_FUTURE_MS when none is due by now.
local function first_lot_transition(u)
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
  return due_ms, due, kind
end

local function apply_lot_transition(u, lot, kind)
  if kind == 'start' then
    start_lot(u, lot)
  elseif kind == 'expire' then
    expire_lot(u, lot)
  else
    lot.w = '1'
    u.lots_dirty = true
    emit(u, 'lot.expiring', { lot = lot.i, expires_at = tonumber(lot.e), remaining = tonumber(lot.r) })
  end
end

-- Apply up to `budget` due steps (a hold's expiry, an allowance period, a lot
-- transition) in the order they fell due. Returns whether none is left due, the
-- steps applied, and how many of them were hold expiries. Costs the account
-- read alone when nothing is due (the hints say so).
local function upkeep_in_order(u, budget)
  local holds, next_hold = {}, 1
  local holds_due = u.next_expiry <= NOW_MS
  if holds_due then
    -- one more than the budget: the next hold's time orders the other steps
    local found = redis.call('ZRANGEBYSCORE', u.open, '-inf', NOW, 'WITHSCORES', 'LIMIT', 0,
      budget + 1)
    for i = 1, #found, 2 do
      holds[#holds + 1] = { found[i], tonumber(found[i + 1]) }
    end
  end
  local lots_due, plans_due = u.next_lot <= NOW_MS, u.next_allowance <= NOW_MS
  local used, expired, complete = 0, 0, true
  while true do
    local hold_ms = holds[next_hold] and holds[next_hold][2] or FAR_FUTURE_MS
    local plan_ms, name = FAR_FUTURE_MS, nil
    if plans_due then
      plan_ms, name = first_due_allowance(u)
    end
    local lot_ms, lot, kind = FAR_FUTURE_MS, nil, nil
    if lots_due then
      lot_ms, lot, kind = first_lot_transition(u)
    end
    local first = math.min(hold_ms, plan_ms, lot_ms)
    if first > NOW_MS then
      break
    end
    if used >= budget then
      complete = false
      break
    end
    used = used + 1
    if hold_ms == first then
      local hold_id = holds[next_hold][1]
      next_hold = next_hold + 1
      expire_hold(u, hold_id, load_hold(u, hold_id))
      expired = expired + 1
    elseif plan_ms == first then
      renew_allowance(u, name, plans_of(u).al[name])
    else
      apply_lot_transition(u, lot, kind)
    end
  end
  if holds_due then
    u.next_expiry = first_score(u.open) or FAR_FUTURE_MS
    u.hints_changed = true
  end
  if lots_due or used > 0 then
    set_next_lot(u, next_lot_time(u))
  end
  if plans_due then
    set_next_allowance(u, next_allowance_time(u))
  end
  return complete, used, expired
end

-- Lazy upkeep every per-user script runs before its own work. Returns true when
-- it is complete (nothing due is left).
local function upkeep(u)
  if not u.created then
    return true
  end
  local complete = upkeep_in_order(u, LAZY_EXPIRE_MAX)
  housekeeping(u)
  return complete
end
