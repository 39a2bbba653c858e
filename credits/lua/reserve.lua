-- reserve.lua: move `amount` from the lots that apply to the action into a new hold,
-- pinning those lots, or refuse and write nothing.
-- KEYS: the per-user thirteen, [idempotency]
-- ARGV: now_ms, config, user, amount, action, metadata_json, fingerprint, hold_id, ttl_ms
-- returns {"ok", hold_id, record_json} | {"replay", hold_id, record_json} | {"conflict"}
--       | {"insufficient", available} | {"too_many_holds", open_count}
--       | {"limit_exceeded", name, limit, used} | {"damaged"}
--       | {"upkeep"}
--- @include "idempotency"
--- @include "lots"
--- @include "holds"
--- @include "purge"
local fingerprint = ARGV[7]
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
if upkeep_due(u) then
  return { 'upkeep' }
end
local amount, action, meta, hold_id = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[8]
local expires_ms = NOW_MS + tonumber(ARGV[9])
local open_count = redis.call('ZCARD', u.open)
if open_count >= __OPEN_HOLDS_PER_USER_MAX__ then
  return { 'too_many_holds', open_count }
end
if u.bal < amount then
  return { 'insufficient', available(u, action) }
end
local takes, can = draw(u, action, amount)
if not takes then
  return { 'insufficient', can }
end
local refused = limit_refusal(u, action, amount)
if refused then
  return { 'limit_exceeded', unpack(refused) }
end
local pins, counted = {}, {}
spend(u, takes, action, pins)
count_against_limits(u, action, amount, counted)
note_open_hold(u, expires_ms)
local id, ms = append(u, 'reserve', amount, -amount, amount, action, meta, hold_id, '', '')
-- created_at is the reserve event's stamp (which only grows per user); expiry is
-- the clock's now + ttl
local rec = {
  a = fmt(amount), c = action, s = 'open', t = fmt(ms), e = fmt(expires_ms),
  m = meta, x = id, l = pins, lw = next(counted) and counted or nil,
}
save_hold(u, hold_id, rec)
redis.call('ZADD', u.open, rec.e, hold_id)
redis.call('ZADD', u.due, rec.e, due_member(u, hold_id))
idempotency_store(fingerprint, hold_id)
housekeeping(u)
return { 'ok', hold_id, cjson.encode(rec) }
