-- read_account.lua: balance, held and creation time, after closing expired holds.
-- KEYS: the per-user twelve.  ARGV: now_ms, user
-- returns {"ok", balance, held, created_ms or ""} | {"damaged"} | {"upkeep"}
--- @read
--- @include "upkeep"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if not upkeep(u) then
  return { 'upkeep' }
end
return { 'ok', u.bal, u.held, u.created or '' }
