-- initialize.lua: grant a user's starting credits, once, as a promotional lot that never expires.
-- A user whose account hash is lost but whose log exists is "damaged", not new:
-- the grant is never paid twice.
-- KEYS: the per-user thirteen (see account.lua)
-- ARGV: now_ms, config, user, credits, metadata_json, lot_id
-- returns {"ok", "<tx_id>,<balance>,<ts_ms>", lot_id} | {"replay", same} | {"overflow", total}
--       | {"damaged"} | {"upkeep"}
--- @include "lots"
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
  u.lot_seq = u.lot_seq + 1
  local lot = {
    i = lot_id, c = 'promotional', p = '50', a = fmt(grant), r = '0', h = '0', f = NOW,
    e = '', n = fmt(u.lot_seq), st = 'active', x = 'initialize',
  }
  insert_lot(u, lot)
  lot_delta(u, lot, grant)
  note_stat(u, 'granted', 'promotional', 'initialize', grant)
  terms = cjson.encode({ i = lot.i, c = lot.c, p = lot.p, a = lot.a, f = lot.f, e = lot.e, st = lot.st })
else
  lot_id = ''
end
local id, ms = append(u, 'initialize', grant, grant, 0, 'initialize', meta, '', '', terms)
local result = tx_result(id, u, ms)
redis.call('HSET', u.account, 'init', result .. '|' .. lot_id)
if lot_id ~= '' then
  redis.call('HSET', u.lots_hash, lot_id, cjson.encode({ m = meta, t = NOW, k = id }))
end
housekeeping(u)
return { 'ok', result, lot_id }
