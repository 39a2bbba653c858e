-- reserve.lua: move `amount` from balance to held under a new hold, or refuse and write nothing.
-- KEYS: the per-user twelve, [idempotency]
-- ARGV: now_ms, user, amount, action, metadata_json, fingerprint, hold_id, ttl_ms
-- returns {"ok", hold_id, record_json} | {"replay", hold_id, record_json} | {"conflict"}
--       | {"insufficient", balance} | {"too_many_holds", open_count} | {"damaged"} | {"upkeep"}
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
  if damaged(u) then
    return { 'damaged' }
  end
  return { 'insufficient', 0 }
end
if not upkeep(u) then
  return { 'upkeep' }
end
local amount, hold_id = tonumber(ARGV[3]), ARGV[7]
local expires_ms = NOW_MS + tonumber(ARGV[8])
local open_count = redis.call('ZCARD', u.open)
if open_count >= __OPEN_HOLDS_PER_USER_MAX__ then
  return { 'too_many_holds', open_count }
end
if u.bal < amount then
  return { 'insufficient', u.bal }
end
note_open_hold(u, expires_ms)
local id, ms = append(u, 'reserve', amount, -amount, amount, ARGV[4], ARGV[5], hold_id, '')
-- created_at is the reserve event's stamp (which only grows per user); expiry is
-- the clock's now + ttl
local rec = {
  a = fmt(amount), c = ARGV[4], s = 'open', t = fmt(ms), e = fmt(expires_ms),
  m = ARGV[5], x = id,
}
save_hold(u, hold_id, rec)
redis.call('ZADD', u.open, rec.e, hold_id)
redis.call('ZADD', u.due, rec.e, due_member(u, hold_id))
idempotency_store(fingerprint, hold_id)
return { 'ok', hold_id, cjson.encode(rec) }
