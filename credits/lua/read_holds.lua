-- read_holds.lua: hold records after closing expired holds.
-- KEYS: the per-user seven.  ARGV: now_ms, user, which ("one" | "open" | "closed"), hold_id_or_limit
-- returns {"ok", record_json...} with the hold ids interleaved: {"ok", id1, rec1, id2, rec2, ...}
--- @include "upkeep"
local u = load_account(this_user())
if u.created then
  upkeep(u)
end
local which = ARGV[3]
local ids
if which == 'one' then
  ids = { ARGV[4] }
elseif which == 'open' then
  ids = redis.call('ZRANGE', u.open, 0, tonumber(ARGV[4]) - 1)
else
  ids = redis.call('ZREVRANGE', u.closed, 0, tonumber(ARGV[4]) - 1)
end
local reply = { 'ok' }
for _, hold_id in ipairs(ids) do
  local raw = redis.call('HGET', u.holds, hold_id)
  if raw then
    reply[#reply + 1] = hold_id
    reply[#reply + 1] = raw
  end
end
return reply
