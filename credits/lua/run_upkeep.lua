-- run_upkeep.lua: do a bounded share of a user's due upkeep (see include/upkeep.lua).
-- The client runs it when a script answered {"upkeep"}, until it answers ok.
-- KEYS: the per-user thirteen.  ARGV: now_ms, config, user
-- returns {"ok"} (none left due) | {"upkeep"} (more is due: call again) | {"damaged"}
--- @include "upkeep"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep(u) then
  return { 'ok' }
end
return { 'upkeep' }
