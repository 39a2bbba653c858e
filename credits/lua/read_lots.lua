-- read_lots.lua: lot records after the upkeep: one lot, or a page of them.
-- Active lots come from the account (their state) and the lots hash (their details);
-- finished ones from the lots hash, readable for exactly FINISHED_LOT_RETENTION_MS.
-- KEYS: the per-user thirteen.
-- ARGV: now_ms, config, user, which ("one" | "active" | "finished"), lot id (one) or offset,
--       limit
-- returns {"ok", now_ms, lot_json, details_json, ...} (pairs) | {"damaged"} | {"upkeep"}
--- @read
--- @include "lots"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local reply = { 'ok', NOW }
local function add_active(lot)
  reply[#reply + 1] = cjson.encode(lot)
  reply[#reply + 1] = redis.call('HGET', u.lots_hash, lot.i) or '{}'
end
local function finished_alive(raw)
  if not raw then
    return false
  end
  local rec = cjson.decode(raw)
  return rec.z ~= nil and tonumber(rec.z) + LOT_RETENTION_MS > NOW_MS
end
local which = ARGV[4]
if which == 'one' then
  local lot = find_lot(u, ARGV[5])
  if lot then
    add_active(lot)
  else
    local raw = redis.call('HGET', u.lots_hash, ARGV[5])
    if finished_alive(raw) then
      reply[#reply + 1] = raw
      reply[#reply + 1] = '{}'
    end
  end
  return reply
end
local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
if which == 'active' then
  local lots = lots_of(u)
  for index = offset + 1, math.min(#lots, offset + limit) do
    add_active(lots[index])
  end
  return reply
end
local ids = redis.call('ZREVRANGEBYSCORE', u.lots_done, '+inf', '(' .. fmt(NOW_MS - LOT_RETENTION_MS),
  'LIMIT', offset, limit)
if #ids > 0 then
  local records = redis.call('HMGET', u.lots_hash, unpack(ids))
  for i = 1, #ids do
    if records[i] then
      reply[#reply + 1] = records[i]
      reply[#reply + 1] = '{}'
    end
  end
end
return reply
