-- release.lua: close an open hold without charging; everything returns to balance.
-- Releasing a released hold returns the first settlement.
-- KEYS: the per-user twelve.  ARGV: now_ms, user, hold_id, metadata_json (the reason)
-- returns {"ok", settlement} | {"again", settlement} | {"not_found"} | {"closed", status}
--       | {"damaged"} | {"upkeep"}
--- @include "upkeep"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if not upkeep(u) then
  return { 'upkeep' }
end
local hold_id = ARGV[3]
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
local id = append(u, 'release', amount, amount, -amount, rec.c, ARGV[4], hold_id, '')
rec.st = id .. ',0,' .. fmt(amount) .. ',0,' .. fmt(u.bal) .. ',0'
close_hold(u, hold_id, rec, 'released')
save_hints(u)
return { 'ok', rec.st }
