-- initialize.lua: grant a user's starting credits, once, as a promotional lot that never expires.
-- A user whose account hash is lost but whose log exists is "damaged", not new:
-- the grant is never paid twice.
-- KEYS: the per-user thirteen (see account.lua)
-- ARGV: now_ms, config, user, credits, metadata_json, lot_id
-- returns {"ok", "<tx_id>,<balance>,<ts_ms>", lot_id} | {"replay", same} | {"overflow", total}
--       | {"damaged"} | {"upkeep"}
--- @include "grant"
--- @include "rewrite"
--- @include "purge"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
local first = redis.call('HGET', u.account, 'init')
if first then
  rewrite_unchanged(u.account, 'init')
  local result, lot = string.match(first, '^([^|]*)|?(.*)$')
  return { 'replay', result, lot }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local grant, meta, lot_id = tonumber(ARGV[4]), ARGV[5], ARGV[6]
if u.bal + u.held + grant > USER_TOTAL_MAX then
  return { 'overflow', u.bal + u.held }
end
ensure_account(u)
local terms = ''
if grant > 0 then
  terms = select(2, new_lot(u, lot_id, 'promotional', 50, grant, NOW_MS, nil, nil, 'initialize'))
else
  lot_id = ''
end
local id, ms = append(u, 'initialize', grant, grant, 0, 'initialize', meta, '', '', terms)
local result = tx_result(id, u, ms)
redis.call('HSET', u.account, 'init', result .. '|' .. lot_id)
if lot_id ~= '' then
  write_lot_details(u, lot_id, meta, id)
end
housekeeping(u)
return { 'ok', result, lot_id }
