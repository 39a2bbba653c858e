-- initialize.lua: grant a user's starting credits, once.
-- A user whose account hash is lost but whose log exists is "damaged", not new:
-- the grant is never paid twice.
-- KEYS: the per-user twelve (see account.lua).  ARGV: now_ms, user, credits, metadata_json
-- returns {"ok", "<tx_id>,<balance>,<ts_ms>"} | {"replay", same} | {"overflow", total}
--       | {"damaged"} | {"upkeep"}
--- @include "upkeep"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
local first = redis.call('HGET', u.account, 'init')
if first then
  rewrite_unchanged(u.account, 'init')
  return { 'replay', first }
end
if not upkeep(u) then
  return { 'upkeep' }
end
local grant = tonumber(ARGV[3])
if u.bal + u.held + grant > USER_TOTAL_MAX then
  return { 'overflow', u.bal + u.held }
end
ensure_account(u)
local id, ms = append(u, 'initialize', grant, grant, 0, 'initialize', ARGV[4], '', '')
local result = tx_result(id, u, ms)
redis.call('HSET', u.account, 'init', result)
return { 'ok', result }
