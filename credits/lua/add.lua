-- add.lua: credit a user (purchase, grant, refund) as a new lot; creates the account if new.
-- A lot that takes effect later (effective_at > now) is pending: its add event moves
-- nothing (balance_delta 0) and a lot_start event adds it when it takes effect.
-- KEYS: the per-user thirteen, [idempotency]
-- ARGV: now_ms, config, user, amount, action, metadata_json, fingerprint, lot_id, category,
--       priority, expires_at_ms ('' none), expires_in_ms ('' none), effective_at_ms ('' now),
--       scope_json ('' every action)
-- returns {"ok", result, lot_id} | {"replay", result, lot_id} | {"conflict"}
--       | {"overflow", balance + held} | {"too_many_lots", active} | {"invalid", reason}
--       | {"damaged"} | {"upkeep"}
--- @include "idempotency"
--- @include "grant"
--- @include "purge"
local fingerprint = ARGV[7]
local seen = idempotency_lookup(fingerprint)
if seen then
  if seen[1] == 'replay' then
    local result, lot = string.match(seen[2], '^([^|]*)|?(.*)$')
    return { 'replay', result, lot }
  end
  return seen
end
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local amount, action, meta, lot_id = tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[8]
local category, priority = ARGV[9], ARGV[10]
local expires_ms = nil
if ARGV[11] ~= '' then
  expires_ms = tonumber(ARGV[11])
elseif ARGV[12] ~= '' then
  expires_ms = NOW_MS + tonumber(ARGV[12])
end
local effective_ms = ARGV[13] ~= '' and tonumber(ARGV[13]) or NOW_MS
if expires_ms and expires_ms <= NOW_MS then
  return { 'invalid', 'expires_at must be later than now (the server\'s clock: ' .. NOW .. ')' }
end
if expires_ms and effective_ms >= expires_ms then
  return { 'invalid', 'effective_at must be before expires_at' }
end
if expires_ms and expires_ms > NOW_MS + __LOT_TERM_MS_MAX__ then
  return { 'invalid', 'expires_at is too far ahead' }
end
if effective_ms > NOW_MS + __LOT_TERM_MS_MAX__ then
  return { 'invalid', 'effective_at is too far ahead' }
end
if #lots_of(u) >= LOTS_MAX then
  return { 'too_many_lots', #u.lots }
end
local pending_total = 0
for _, lot in ipairs(u.lots) do
  if lot.st == 'pending' then
    pending_total = pending_total + tonumber(lot.r)
  end
end
if u.bal + u.held + pending_total + amount > USER_TOTAL_MAX then
  return { 'overflow', u.bal + u.held + pending_total }
end
ensure_account(u)
local scope = ARGV[14] ~= '' and cjson.decode(ARGV[14]) or nil
local lot, terms, delta = new_lot(u, lot_id, category, priority, amount, effective_ms, expires_ms,
  scope, action)
local id, ms = append(u, 'add', amount, delta, 0, action, meta, '', '', terms)
write_lot_details(u, lot.i, meta, id)
local result = tx_result(id, u, ms)
idempotency_store(fingerprint, result .. '|' .. lot_id)
housekeeping(u)
return { 'ok', result, lot_id }
