-- allowances: recurring grants, renewed inside the user's own calls (lazily) or by
-- the beat (credits.tasks.renew_allowances), whichever comes first. A script runs
-- alone and an allowance remembers the period it granted (ps), so a period is
-- granted at most once per (user, name, period) whoever gets there first.
-- Periods nobody touched are never granted afterwards: a renewal grants the
-- period that holds now, and rolls over only from the period just before it.
-- An allowance (see plans.lua, field al): a amount, e every, n anchor ms,
-- r rollover_max, p priority, s scope, ps/pe the period granted, l its allowance
-- lots, g what they granted in all, nx terms that take over when the period ends.
--- @include "grant"

-- The id of the next lot the ledger makes for a period: derived from the user and
-- the lot's sequence number, so it is unique in the user (a period granted again
-- after its allowance was removed and set anew gets a new lot) and the same on
-- every replica.
local function period_lot_id(u)
  return derived_lot_id(u.escaped, fmt(u.lot_seq + 1))
end

-- When an allowance is next due: the end of the period it granted last, or its
-- anchor before its first. renew_allowance always leaves it after now, so the
-- upkeep never spins on an allowance.
local function allowance_due(a)
  return tonumber(a.pe or a.n)
end

-- The allowance due first, by due time then name (one order on every replica):
-- its due time and name; FAR_FUTURE_MS when the user has none.
local function first_due_allowance(u)
  local plans = plans_of(u)
  local due_ms, due_name = FAR_FUTURE_MS, nil
  for name, a in pairs(plans and plans.al or {}) do
    local t = allowance_due(a)
    if t < due_ms or (t == due_ms and due_name and name < due_name) then
      due_ms, due_name = t, name
    end
  end
  return due_ms, due_name
end

-- Kept in the account's hint na and the bucket's renewal index.
local function next_allowance_time(u)
  return (first_due_allowance(u))
end

local function set_next_allowance(u, next_ms)
  if next_ms ~= u.next_allowance then
    u.next_allowance = next_ms
    u.hints_changed = true
  end
  if next_ms < FAR_FUTURE_MS then
    redis.call('ZADD', u.renew_due, next_ms, u.escaped)
  else
    redis.call('ZREM', u.renew_due, u.escaped)
  end
end

-- Grant `amount` of allowance `name` for the period [start, stop): an allowance lot
-- in effect for the period and expiring at its end, with an 'allowance' event.
local function grant_allowance_lot(u, name, a, start, stop, amount)
  if amount <= 0 or u.bal + u.held + amount > USER_TOTAL_MAX then
    return nil
  end
  ensure_account(u)
  local lot_id = period_lot_id(u)
  local lot, terms, delta = new_lot(u, lot_id, 'allowance', a.p, amount, start, stop, a.s,
    'allowance', true)
  -- the plans change before the event, so the event's write of the account has them
  a.l[#a.l + 1] = lot_id
  a.g = fmt(tonumber(a.g or '0') + amount)
  u.plans_dirty = true
  local meta = cjson.encode({ allowance = name, period_start = fmt(start), period_end = fmt(stop) })
  local tx = append(u, 'allowance', amount, delta, 0, 'allowance', meta, '', name, terms)
  write_lot_details(u, lot_id, meta, tx)
  return lot_id, tx
end

-- At a period's end what remains of its allowance lots, up to rollover_max, moves
-- into a rollover lot that expires at the end of the next period (a 'rollover'
-- event: the balance does not move, the credits change lots).
local function roll_over(u, name, a, start, stop)
  local room = tonumber(a.r)
  local moves, total = {}, 0
  for _, id in ipairs(a.l or {}) do
    local lot = find_lot(u, id)
    if room > 0 and lot and lot.st == 'active' and tonumber(lot.r) > 0 then
      local n = math.min(tonumber(lot.r), room)
      moves[#moves + 1] = { lot = lot, n = n }
      room, total = room - n, total + n
    end
  end
  if total == 0 then
    return 0
  end
  local lot_id = period_lot_id(u)
  for _, move in ipairs(moves) do
    lot_delta(u, move.lot, -move.n)
  end
  local _, terms = new_lot(u, lot_id, 'rollover', a.p, total, start, stop, a.s, 'allowance', true)
  local meta = cjson.encode({ allowance = name, period_start = fmt(start), period_end = fmt(stop) })
  local tx = append(u, 'rollover', total, 0, 0, 'allowance', meta, '', name, terms)
  write_lot_details(u, lot_id, meta, tx)
  for _, move in ipairs(moves) do
    finish_if_done(u, move.lot)
  end
  return total
end

-- Renew one allowance if the period that holds now is not granted yet. Returns
-- true when it granted one. Whatever it does, the allowance is due after now
-- when it returns.
local function renew_allowance(u, name, a)
  local nx = a.nx
  if nx and a.pe and tonumber(a.pe) <= NOW_MS then
    -- terms changed for the next period take over now that it has come; a new
    -- schedule without an anchor of its own starts where this period ended
    a.a, a.e, a.r, a.p, a.s = nx.a, nx.e, nx.r, nx.p, nx.s
    a.n = nx.n or a.pe
    a.nx = nil
  end
  u.plans_dirty = true
  local start, stop = period_of(a.e, tonumber(a.n), NOW_MS)
  if not start then
    a.ps, a.pe = nil, nil  -- a schedule that starts later: due at its anchor
    return false
  end
  if a.ps and tonumber(a.ps) == start then
    a.pe = fmt(stop)  -- this period is granted (a new schedule may have moved its end)
    return false
  end
  local rolled = 0
  if a.pe and tonumber(a.pe) == start and tonumber(a.r) > 0 then
    rolled = roll_over(u, name, a, start, stop)
  end
  a.ps, a.pe, a.l, a.g = fmt(start), fmt(stop), {}, '0'
  local lot_id, tx = grant_allowance_lot(u, name, a, start, stop, tonumber(a.a))
  u.plans_dirty = true
  emit(u, 'allowance.renewed', { allowance = name, lot = lot_id, amount = a.g,
    rolled_over = fmt(rolled), period_start = a.ps, period_end = a.pe, tx = tx })
  return true
end
