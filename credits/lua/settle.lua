-- settle.lua: charge a hold's actual cost, once.
--   open:    charge min(actual, held); on overage, the excess as far as the balance
--            covers it; the rest is the shortfall. Unused held credits come back.
--   expired: a late webhook; charge actual from the balance by the same overage rule.
--            The upkeep closes a hold the moment it is due, so a settle after
--            expires_at is always late, whatever the upkeep had left to do.
--   settled: return the first settlement, charge nothing.
--   released: refuse.
-- KEYS: the per-user twelve.  ARGV: now_ms, user, hold_id, actual, metadata_json
-- returns {"ok", settlement} | {"again", settlement} | {"not_found"} | {"closed", status}
--       | {"damaged"} | {"upkeep"}
-- settlement: "<tx_id>,<charged>,<released>,<shortfall>,<balance>,<late 0|1>"
--- @include "upkeep"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if not upkeep(u) then
  return { 'upkeep' }
end
local hold_id, actual = ARGV[3], tonumber(ARGV[4])
local rec = load_hold(u, hold_id)
if not rec then
  return { 'not_found' }
end
if rec.s == 'settled' then
  rewrite_unchanged(u.holds, hold_id)
  return { 'again', rec.st }
end
if rec.s == 'released' then
  return { 'closed', rec.s }
end
local held_amount = tonumber(rec.a)
local late = rec.s == 'expired'
local from_hold, held_delta = 0, 0
if not late then
  from_hold = math.min(actual, held_amount)
  held_delta = -held_amount
end
local released = -held_delta - from_hold
local excess = actual - from_hold
-- excess > 0 only when nothing of the hold comes back, so the balance before
-- this settle is exactly what can cover it
local from_balance = math.min(excess, u.bal)
local charged = from_hold + from_balance
local shortfall = excess - from_balance
local late_flag = '0'
local extra = fmt(shortfall)
if late then
  late_flag = '1'
  extra = extra .. ':late'
end
local id = append(u, 'settle', charged, released - from_balance, held_delta, rec.c, ARGV[5], hold_id, extra)
rec.st = id .. ',' .. fmt(charged) .. ',' .. fmt(released) .. ',' .. fmt(shortfall) .. ','
  .. fmt(u.bal) .. ',' .. late_flag
if late then
  rec.s = 'settled'
  touch_closed(u, hold_id, rec)
else
  close_hold(u, hold_id, rec, 'settled')
end
if shortfall > 0 then
  emit(u, 'settlement.shortfall', {
    hold = hold_id, action = rec.c, charged = charged, shortfall = shortfall, late = late, tx = id,
  })
end
save_hints(u)
return { 'ok', rec.st }
