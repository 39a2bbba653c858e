-- void_lot.lua: remove what remains of a lot, with a lot_void event. Credits of it
-- that open holds hold are voided when those holds give them back. Voiding a
-- voided lot returns the first result.
-- KEYS: the per-user thirteen.  ARGV: now_ms, config, user, lot_id, metadata_json (the reason)
-- returns {"ok", result} | {"again", result} | {"lot_not_found"} | {"lot_closed", status}
--       | {"damaged"} | {"upkeep"}
--- @include "lot_index"
--- @include "rewrite"
--- @include "purge"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local lot_id = ARGV[4]
local lot = find_lot(u, lot_id)
if not lot then
  local raw = redis.call('HGET', u.lots_hash, lot_id)
  local rec = raw and cjson.decode(raw)
  if not rec or not rec.z or tonumber(rec.z) + LOT_RETENTION_MS <= NOW_MS then
    return { 'lot_not_found' }
  end
  if rec.st == 'voided' and rec.vr then
    rewrite_unchanged(u.lots_hash, lot_id)
    return { 'again', rec.vr }
  end
  return { 'lot_closed', rec.st }
end
if lot.st == 'voided' then
  rewrite_unchanged(u.account, 'L')
  return { 'again', lot.vr }
end
if lot.st == 'expired' then
  return { 'lot_closed', lot.st }
end
local amount, delta = tonumber(lot.r), 0
if lot.st == 'active' and amount > 0 then
  lot_delta(u, lot, -amount)
  delta = -amount
elseif lot.st == 'pending' then
  lot.r = '0'
  u.lots_dirty = true
end
lot.st = 'voided'
note_stat(u, 'voided', lot.c, lot.x, amount)
local id, ms = append(u, 'lot_void', amount, delta, 0, lot.x, ARGV[5], '', lot.i, '')
lot.vr = tx_result(id, u, ms)
u.lots_dirty = true
finish_if_done(u, lot)
set_next_lot(u, next_lot_time(u))
save_hints(u)
write_finished_lots(u)
housekeeping(u)
return { 'ok', lot.vr }
