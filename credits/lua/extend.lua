-- extend.lua: the heartbeat of a long job: expires_at = max(expires_at, now + ttl).
-- An expired hold is closed by the upkeep first, so it can never be revived.
-- KEYS: the per-user thirteen.  ARGV: now_ms, config, user, hold_id, ttl_ms
-- returns {"ok", record_json} | {"not_found"} | {"closed", status} | {"damaged"} | {"upkeep"}
--- @include "holds"
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
if rec.s ~= 'open' then
  return { 'closed', rec.s }
end
local expires_ms = math.max(tonumber(rec.e), NOW_MS + tonumber(ARGV[5]))
rec.e = fmt(expires_ms)
save_hold(u, hold_id, rec)
redis.call('ZADD', u.open, rec.e, hold_id)
redis.call('ZADD', u.due, rec.e, due_member(u, hold_id))
return { 'ok', cjson.encode(rec) }
