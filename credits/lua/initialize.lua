-- initialize.lua: grant a user's starting credits, once.
-- KEYS: the per-user seven (see prelude).  ARGV: now_ms, user, credits, metadata_json
-- returns {"ok", "<tx_id>,<balance>,<ts_ms>"} | {"replay", same} | {"overflow", total}
--- @include "upkeep"
local u = load_account(this_user())
local first = redis.call('HGET', u.account, 'init')
if first then
  return { 'replay', first }
end
local grant = tonumber(ARGV[3])
ensure_account(u)
upkeep(u)
if u.bal + u.held + grant > USER_TOTAL_MAX then
  return { 'overflow', u.bal + u.held }
end
local id, ms = append(u, 'initialize', grant, grant, 0, 'initialize', ARGV[4], '', '')
local result = tx_result(id, u, ms)
redis.call('HSET', u.account, 'init', result)
return { 'ok', result }
