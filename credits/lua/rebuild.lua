-- rebuild.lua: set the cached account from the log, atomically.
-- The client has summed the log up to `marker` in chunks, outside any script;
-- this call adds the events written since (at most tail_max of them) and writes
-- the cache, so a write racing the rebuild is never lost. An account hash that
-- was lost is written back whole: balance, held, the log's end, its creation
-- time, its welcome grant (so initialize_user never pays twice) and its place in
-- the bucket's registry; its upkeep hints are reset so the next call looks.
-- KEYS: the per-user twelve.
-- ARGV: now_ms, user, marker ("" = none), balance_sum, held_sum, tail_max,
--       first_ms ("" = unknown), init_result ("" = none seen up to the marker)
-- returns {"ok", balance, held, tail_events} | {"behind", last_log_id}
--       | {"impossible", balance, held} (the log sums to a negative balance or held)
--- @include "log"
local u = load_account(this_user())
local marker, tail_max = ARGV[3], tonumber(ARGV[6])
local first_ms, init_result = ARGV[7], ARGV[8]
local start = '-'
if marker ~= '' then
  start = '(' .. marker
end
local tail = redis.call('XRANGE', u.log, start, '+', 'COUNT', tail_max + 1)
if #tail > tail_max then
  return { 'behind', tail[tail_max][1] }
end
local bal, held = tonumber(ARGV[4]), tonumber(ARGV[5])
local last_id = marker
for _, entry in ipairs(tail) do
  local fields = entry_fields(entry)
  bal = bal + tonumber(fields[F.balance_delta])
  held = held + tonumber(fields[F.held_delta])
  last_id = entry[1]
  local ms = string.match(entry[1], '^(%d+)-')
  if first_ms == '' then
    first_ms = ms
  end
  if init_result == '' and fields[F.type] == 'initialize' then
    init_result = entry[1] .. ',' .. fields[F.balance_after] .. ',' .. ms
  end
end
if bal < 0 or held < 0 then
  return { 'impossible', bal, held }
end
if last_id == '' then
  return { 'ok', 0, 0, 0 }  -- no log: nothing to rebuild, and no account is made
end
redis.call('HSET', u.account, 'bal', fmt(bal), 'held', fmt(held), 'lid', last_id)
if not u.created then
  redis.call('HSET', u.account, 'ct', first_ms, 'nx', '0', 'np', '0')
  redis.call('SADD', u.users, u.escaped)
end
if init_result ~= '' and not redis.call('HGET', u.account, 'init') then
  redis.call('HSET', u.account, 'init', init_result)
end
return { 'ok', bal, held, #tail }
