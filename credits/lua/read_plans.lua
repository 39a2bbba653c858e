-- read_plans.lua: a user's plans (allowances, spend limits, alerts, auto top-up) after
-- the upkeep, with the server's now, so windows and periods are read by its clock.
-- KEYS: the per-user thirteen.  ARGV: now_ms, config, user
-- returns {"ok", now_ms, plans_json ("" for none), balance} | {"damaged"} | {"upkeep"}
--- @read
--- @include "account"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
return { 'ok', NOW, u.raw_plans or '', fmt(u.bal) }
