-- rebuild.lua: set the cached balance and held from the log, atomically.
-- The client has summed the log up to `marker` in chunks, outside any script;
-- this call adds the events written since (at most tail_max of them) and writes
-- the cache, so a write racing the rebuild is never lost.
-- KEYS: the per-user seven.  ARGV: now_ms, user, marker ("" = empty), balance_sum, held_sum, tail_max
-- returns {"ok", balance, held, tail_events} | {"behind", last_log_id}
--       | {"impossible", balance, held} (the log sums to a negative balance or held)
--- @include "log"
local u = this_user()
local marker, tail_max = ARGV[3], tonumber(ARGV[6])
local start = '-'
if marker ~= '' then
  start = '(' .. marker
end
local tail = redis.call('XRANGE', u.log, start, '+', 'COUNT', tail_max + 1)
if #tail > tail_max then
  return { 'behind', tail[tail_max][1] }
end
local bal, held = tonumber(ARGV[4]), tonumber(ARGV[5])
for _, entry in ipairs(tail) do
  local fields = entry_fields(entry)
  bal = bal + tonumber(fields[F.balance_delta])
  held = held + tonumber(fields[F.held_delta])
end
if bal < 0 or held < 0 then
  return { 'impossible', bal, held }
end
if redis.call('EXISTS', u.account) == 1 then
  redis.call('HSET', u.account, 'bal', fmt(bal), 'held', fmt(held))
end
return { 'ok', bal, held, #tail }
