-- read_account.lua: balance, held and creation time, after closing expired holds.
-- KEYS: the per-user seven.  ARGV: now_ms, user
-- returns {balance, held, created_ms or ""}
local u = load_account(this_user())
if u.created then
  upkeep(u)
end
return { u.bal, u.held, u.created or '' }
