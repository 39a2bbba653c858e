-- snapshot.lua: the consistent point verify and rebuild read the log up to.
-- The log's end is read from the stream itself, so a lost or stale account hash
-- shows as a difference instead of hiding behind its own cached marker.
-- KEYS: the per-user thirteen.  ARGV: now_ms, config, user
-- returns {"ok", balance, held, cached_log_end or "", log_end or "", account_exists 0|1,
--          active_lots_json, lot_seq}
--- @read
--- @include "lots"
--- @include "log_read"
local u = load_account(this_user())
local lots = u.created and cjson.encode(lots_of(u)) or '[]'
return { 'ok', u.bal, u.held, u.lid or '', log_end(u) or '', u.created and 1 or 0, lots,
  u.lot_seq }
