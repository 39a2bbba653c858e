-- read_account.lua: balance, held and creation time, after closing expired holds.
-- KEYS: the per-user seven.  ARGV: now_ms, user
-- returns {"ok", balance, held, created_ms or ""}
--- @include "upkeep"
local u = load_account(this_user())
if u.created then
  upkeep(u)
end
return { 'ok', u.bal, u.held, u.created or '' }
