-- read_account.lua: balance, held and creation time, after the upkeep.
-- With an action, also what the lots that apply to it can spend.
-- KEYS: the per-user thirteen.  ARGV: now_ms, config, user, action ('' for none)
-- returns {"ok", balance, held, created_ms or "", available or ""} | {"damaged"} | {"upkeep"}
--- @read
--- @include "lots"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local for_action = ''
if ARGV[4] ~= '' then
  for_action = available(u, ARGV[4])
end
return { 'ok', u.bal, u.held, u.created or '', for_action }
