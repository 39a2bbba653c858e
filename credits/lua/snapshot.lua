-- snapshot.lua: the consistent point verify and rebuild read the log up to.
-- The log's end is read from the stream itself, so a lost or stale account hash
-- shows as a difference instead of hiding behind its own cached marker. With it,
-- atomically: the last checkpoint at or before that end, stored or head (where an
-- incremental verify starts), and how far the log was archived (events up to it
-- left Redis).
-- KEYS: the per-user thirteen, then the user's checkpoint stream, head checkpoint and
-- archive mark.
-- ARGV: now_ms, config, user
-- returns {"ok", balance, held, cached_log_end or "", log_end or "", account_exists 0|1,
--          active_lots_json, lot_seq, checkpoint_id or "", checkpoint_fields or {},
--          head or "", archived_through or ""}
--- @read
--- @include "lots"
--- @include "log_read"
local u = load_account(this_user())
local lots = u.created and cjson.encode(lots_of(u)) or '[]'
local finish = log_end(u)
local cp_id, cp_fields = '', {}
if finish then
  local cp = redis.call('XREVRANGE', KEYS[14], finish, '-', 'COUNT', 1)[1]
  if cp then
    cp_id, cp_fields = cp[1], cp[2]
  end
end
local head = redis.call('GET', KEYS[15]) or ''
local archived = redis.call('GET', KEYS[16]) or ''
return { 'ok', u.bal, u.held, u.lid or '', finish or '', u.created and 1 or 0, lots,
  u.lot_seq, cp_id, cp_fields, head, archived }
