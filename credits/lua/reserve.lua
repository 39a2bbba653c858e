-- reserve.lua: move `amount` from balance to held under a new hold, or refuse and write nothing.
-- KEYS: the per-user seven, [idempotency]
-- ARGV: now_ms, user, amount, action, metadata_json, fingerprint, hold_id, ttl_ms
-- returns {"ok", hold_id, record_json} | {"replay", hold_id, record_json} | {"conflict"}
--       | {"insufficient", balance} | {"too_many_holds", open_count}
--- @include "idempotency"
--- @include "upkeep"
local fingerprint = ARGV[6]
local u = load_account(this_user())
local seen = idempotency_lookup(fingerprint)
if seen then
  if seen[1] == 'replay' then
    return { 'replay', seen[2], redis.call('HGET', u.holds, seen[2]) }
  end
  return seen
end
if not u.created then
  return { 'insufficient', 0 }
end
local amount, hold_id = tonumber(ARGV[3]), ARGV[7]
local expires_ms = NOW_MS + tonumber(ARGV[8])
upkeep(u)
local open_count = redis.call('ZCARD', u.open)
if open_count >= __OPEN_HOLDS_PER_USER_MAX__ then
  return { 'too_many_holds', open_count }
end
if u.bal < amount then
  return { 'insufficient', u.bal }
end
note_open_hold(u, expires_ms)
local id = append(u, 'reserve', amount, -amount, amount, ARGV[4], ARGV[5], hold_id, '')
local rec = {
  a = fmt(amount), c = ARGV[4], s = 'open', t = fmt(NOW_MS), e = fmt(expires_ms),
  m = ARGV[5], x = id,
}
save_hold(u, hold_id, rec)
redis.call('ZADD', u.open, rec.e, hold_id)
redis.call('ZADD', u.due, rec.e, due_member(u, hold_id))
idempotency_store(fingerprint, hold_id)
return { 'ok', hold_id, cjson.encode(rec) }
