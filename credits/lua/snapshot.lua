-- snapshot.lua: the consistent marker verify and rebuild read the log up to.
-- KEYS: the per-user seven.  ARGV: now_ms, user
-- returns {"ok", balance, held, last_log_id or ""}
--- @include "account"
local u = load_account(this_user())
return { 'ok', u.bal, u.held, u.lid or '' }
