-- read_holds.lua: hold records after closing expired holds.
-- Lists read the indexes and fetch the records with one HMGET, without decoding
-- them: the open index holds only open holds, and the closed index is scored by
-- each hold's last change, so the retention is a score range.
-- KEYS: the per-user twelve.
-- ARGV: now_ms, config, user, which ("one" | "open" | "closed"), hold_id (one) or offset, limit
-- returns {"ok", id1, rec1, id2, rec2, ...} | {"damaged"} | {"upkeep"}
--- @read
--- @include "holds"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local which = ARGV[4]
local reply = { 'ok' }
if which == 'one' then
  local rec, raw = load_hold(u, ARGV[5])
  if rec then
    reply[2], reply[3] = ARGV[5], raw
  end
  return reply
end
local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local ids
if which == 'open' then
  ids = redis.call('ZRANGE', u.open, offset, offset + limit - 1)
else
  ids = redis.call('ZREVRANGEBYSCORE', u.closed, '+inf', '(' .. fmt(NOW_MS - CLOSED_RETENTION_MS),
    'LIMIT', offset, limit)
end
if #ids == 0 then
  return reply
end
local records = redis.call('HMGET', u.holds, unpack(ids))
for i, hold_id in ipairs(ids) do
  if records[i] then
    reply[#reply + 1] = hold_id
    reply[#reply + 1] = records[i]
  end
end
return reply
