-- settle.lua: charge a hold's actual cost, once.
--   open:    charge min(actual, held) from the pinned lots (in drawdown order) and give
--            the rest back to them; on overage, take the excess from the lots that apply
--            to the action, as far as they cover it; the rest is the shortfall.
--   expired: a late webhook; charge actual from the lots by the same overage rule.
--            The upkeep closes a hold the moment it is due, so a settle after
--            expires_at is always late, whatever the upkeep had left to do.
--   settled: return the first settlement, charge nothing.
--   released: refuse.
-- KEYS: the per-user thirteen.  ARGV: now_ms, config, user, hold_id, actual, metadata_json
-- returns {"ok", settlement} | {"again", settlement} | {"not_found"} | {"closed", status}
--       | {"damaged"} | {"upkeep"}
-- settlement: "<tx_id>,<charged>,<released>,<shortfall>,<balance>,<late 0|1>,<forfeited>"
--- @include "lots"
--- @include "rewrite"
--- @include "holds"
--- @include "events"
--- @include "purge"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local hold_id, actual, meta = ARGV[4], tonumber(ARGV[5]), ARGV[6]
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
local from_hold, held_delta, returned, forfeited = 0, 0, 0, 0
if not late then
  from_hold = math.min(actual, held_amount)
  held_delta = -held_amount
  returned, forfeited = give_back(u, pins_of(rec), from_hold, rec.c)
  uncount(u, rec.lw, held_amount - from_hold)
end
-- excess > 0 only when nothing of the hold comes back, so what the lots that
-- apply to the action can spend before this settle is exactly what can cover it
local excess = actual - from_hold
local from_balance = 0
if excess > 0 then
  from_balance = math.min(excess, available(u, rec.c))
  if from_balance > 0 then
    spend(u, draw(u, rec.c, from_balance), rec.c, nil)
    count_against_limits(u, rec.c, from_balance, nil)  -- never refused: the work was done
  end
end
local charged = from_hold + from_balance
local shortfall = excess - from_balance
note_stat(u, 'shortfall', '', rec.c, shortfall)
local late_flag = '0'
local extra = fmt(shortfall)
if late then
  late_flag = '1'
  extra = extra .. ':late'
end
local id = append(u, 'settle', charged, returned - from_balance, held_delta, rec.c, meta, hold_id,
  extra, '')
rec.st = id .. ',' .. fmt(charged) .. ',' .. fmt(returned) .. ',' .. fmt(shortfall) .. ','
  .. fmt(u.bal) .. ',' .. late_flag .. ',' .. fmt(forfeited)
if late then
  rec.s = 'settled'
  touch_closed(u, hold_id, rec)
else
  close_hold(u, hold_id, rec, 'settled')
end
save_hints(u)
if shortfall > 0 then
  emit(u, 'settlement.shortfall', {
    hold = hold_id, action = rec.c, charged = charged, shortfall = shortfall, late = late, tx = id,
  })
end
housekeeping(u)
return { 'ok', rec.st }
