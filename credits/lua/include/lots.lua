-- lots: every credit belongs to a lot, a grant with its own terms.
-- The user's active lots (pending, active, or expired/voided but still held by
-- open holds) are one JSON array in the account hash (field L), in drawdown
-- order, read with the balance; so drawing from them costs no extra call.
-- Every number in a lot is a string (Redis's cjson rounds numbers to 14 digits):
--   i id, c category, p priority, a amount granted, r remaining (spendable, or
--   for a pending lot its amount), h held by open holds, f effective_at ms,
--   e expires_at ms ('' = never), n creation sequence, st status (pending,
--   active, expired, voided), x the action that created it, s scope ({action: 1},
--   absent = every action), w '1' once its expiring notice went out.
-- A lot with nothing remaining and nothing held is finished: it leaves L for the
-- user's lots hash (its record there also holds its details: metadata, tx id).
--- @include "log"
local LOTS_MAX = __LOTS_ACTIVE_PER_USER_MAX__
local LOT_UPKEEP_MAX = __LOT_UPKEEP_PER_CALL_MAX__
local LOT_RETENTION_MS = __FINISHED_LOT_RETENTION_MS__
local LOT_PURGE_MAX = __FINISHED_LOT_PURGE_PER_CALL_MAX__
local LEGACY_LOT = '0000000000'

local function lot_expiry(lot)
  if lot.e == '' then
    return FAR_FUTURE_MS
  end
  return tonumber(lot.e)
end

-- The drawdown order: priority ascending, then expires_at ascending (never-
-- expiring last), then creation order. credits/lots/rules.py is its twin.
local function draws_before(a, b)
  local pa, pb = tonumber(a.p), tonumber(b.p)
  if pa ~= pb then
    return pa < pb
  end
  local ea, eb = lot_expiry(a), lot_expiry(b)
  if ea ~= eb then
    return ea < eb
  end
  return tonumber(a.n) < tonumber(b.n)
end

-- The active lots, decoded once per call. An account written before lots
-- existed has none stored: its balance, and what its holds hold, is one paid
-- lot that never expires (written back with the next change).
local function lots_of(u)
  if u.lots then
    return u.lots
  end
  if u.raw_lots then
    u.lots = cjson.decode(u.raw_lots)
  elseif u.created and (u.bal > 0 or u.held > 0) then
    u.lots = { {
      i = LEGACY_LOT, c = 'paid', p = '50', a = fmt(u.bal + u.held), r = fmt(u.bal),
      h = fmt(u.held), f = u.created, e = '', n = '0', st = 'active', x = 'legacy',
    } }
    u.lots_dirty = true
  else
    u.lots = {}
  end
  return u.lots
end

local function find_lot(u, id)
  for index, lot in ipairs(lots_of(u)) do
    if lot.i == id then
      return lot, index
    end
  end
  return nil
end

local function insert_lot(u, lot)
  local lots = lots_of(u)
  local at = #lots + 1
  for index, other in ipairs(lots) do
    if draws_before(lot, other) then
      at = index
      break
    end
  end
  table.insert(lots, at, lot)
  u.lots_dirty = true
end

local function applies(lot, action)
  return lot.s == nil or lot.s[action] ~= nil
end

-- Move a lot's remaining by n, recorded for the next event's lots field.
local function lot_delta(u, lot, n)
  lot.r = fmt(tonumber(lot.r) + n)
  u.deltas[lot.i] = (u.deltas[lot.i] or 0) + n
  u.lots_dirty = true
end

-- Take a finished lot out of the active set (its record is written after the event).
local function finish(u, lot, status)
  local _, index = find_lot(u, lot.i)
  table.remove(u.lots, index)
  lot.st, lot.z = status, NOW
  u.to_finish[#u.to_finish + 1] = lot
  u.lots_dirty = true
  if NOW_MS + LOT_RETENTION_MS < u.next_lot_purge then
    u.next_lot_purge = NOW_MS + LOT_RETENTION_MS
    u.hints_changed = true
  end
end

local function finish_if_done(u, lot)
  if lot.st ~= 'pending' and tonumber(lot.r) == 0 and tonumber(lot.h) == 0 then
    finish(u, lot, lot.st == 'active' and 'exhausted' or lot.st)
  end
end

-- What the lots that apply to `action` can spend now.
local function available(u, action)
  local sum = 0
  for _, lot in ipairs(lots_of(u)) do
    if lot.st == 'active' and applies(lot, action) then
      sum = sum + tonumber(lot.r)
    end
  end
  return sum
end

-- `amount` from the lots that apply to `action`, in drawdown order, scanning no
-- further than it needs. Returns {{lot, n}...}, or nil and what is available.
local function draw(u, action, amount)
  local takes, need = {}, amount
  for _, lot in ipairs(lots_of(u)) do
    if lot.st == 'active' and applies(lot, action) then
      local n = math.min(tonumber(lot.r), need)
      if n > 0 then
        takes[#takes + 1] = { lot = lot, n = n }
        need = need - n
        if need == 0 then
          return takes
        end
      end
    end
  end
  if need == 0 then
    return takes
  end
  return nil, available(u, action)
end

-- Spend what draw() chose: charged now (deduct, overage), or into a hold's pins.
local function spend(u, takes, action, pins)
  for _, take in ipairs(takes) do
    lot_delta(u, take.lot, -take.n)
    if pins then
      take.lot.h = fmt(tonumber(take.lot.h) + take.n)
      pins[take.lot.i] = fmt(tonumber(pins[take.lot.i] or '0') + take.n)
    else
      note_stat(u, 'charged', take.lot.c, action, take.n)
      finish_if_done(u, take.lot)
    end
  end
end

-- A hold's pins ({lot id: credits}); a hold made before lots existed pins the legacy lot.
local function pins_of(rec)
  return rec.l or { [LEGACY_LOT] = rec.a }
end

-- Close a hold's pins: `charge` credits are charged from the pinned lots in
-- drawdown order, the rest goes back to them. Credits given back to a lot that
-- expired or was voided meanwhile leave the balance in the same event
-- (forfeited). Returns returned-to-balance and forfeited.
local function give_back(u, pins, charge, action)
  local pinned = {}
  for id, n in pairs(pins) do
    local lot = find_lot(u, id)
    if not lot then
      error('credits: a hold pins lot ' .. id .. ', which is not active; nothing applied')
    end
    pinned[#pinned + 1] = { lot = lot, n = tonumber(n) }
  end
  table.sort(pinned, function(x, y)
    return draws_before(x.lot, y.lot)
  end)
  local left, returned, forfeited = charge, 0, 0
  for _, pin in ipairs(pinned) do
    local lot = pin.lot
    local charged = math.min(pin.n, left)
    left = left - charged
    lot.h = fmt(tonumber(lot.h) - pin.n)
    u.lots_dirty = true
    note_stat(u, 'charged', lot.c, action, charged)
    local back = pin.n - charged
    if back > 0 then
      if lot.st == 'active' then
        lot_delta(u, lot, back)
        returned = returned + back
      else
        forfeited = forfeited + back
        note_stat(u, lot.st, lot.c, action, back)
      end
    end
    finish_if_done(u, lot)
  end
  u.forfeited = u.forfeited + forfeited
  return returned, forfeited
end
