-- release.lua: close an open hold without charging; everything goes back to its lots.
-- Releasing a released hold returns the first settlement.
-- KEYS: the per-user thirteen.  ARGV: now_ms, config, user, hold_id, metadata_json (the reason)
-- returns {"ok", settlement} | {"again", settlement} | {"not_found"} | {"closed", status}
--       | {"damaged"} | {"upkeep"}
--- @include "lots"
--- @include "rewrite"
--- @include "holds"
--- @include "purge"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local hold_id = ARGV[4]
local rec = load_hold(u, hold_id)
if not rec then
  return { 'not_found' }
end
if rec.s == 'released' then
  rewrite_unchanged(u.holds, hold_id)
  return { 'again', rec.st }
end
if rec.s ~= 'open' then
  return { 'closed', rec.s }
end
local amount = tonumber(rec.a)
local returned, forfeited = give_back(u, pins_of(rec), 0, rec.c)
uncount(u, rec.lw, amount)
local id = append(u, 'release', amount, returned, -amount, rec.c, ARGV[5], hold_id, '', '')
rec.st = id .. ',0,' .. fmt(returned) .. ',0,' .. fmt(u.bal) .. ',0,' .. fmt(forfeited)
close_hold(u, hold_id, rec, 'released')
save_hints(u)
housekeeping(u)
return { 'ok', rec.st }
