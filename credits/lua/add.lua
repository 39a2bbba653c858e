-- add.lua: credit a user (purchase, grant, refund); creates the account if new.
-- KEYS: the per-user twelve, [idempotency]  ARGV: now_ms, user, amount, action, metadata_json, fingerprint
-- returns {"ok", result} | {"replay", result} | {"conflict"} | {"overflow", balance + held}
--       | {"damaged"} | {"upkeep"}
--- @include "idempotency"
--- @include "upkeep"
local fingerprint = ARGV[6]
local seen = idempotency_lookup(fingerprint)
if seen then
  return seen
end
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if not upkeep(u) then
  return { 'upkeep' }
end
local amount = tonumber(ARGV[3])
if u.bal + u.held + amount > USER_TOTAL_MAX then
  return { 'overflow', u.bal + u.held }
end
ensure_account(u)
local id, ms = append(u, 'add', amount, amount, 0, ARGV[4], ARGV[5], '', '')
local result = tx_result(id, u, ms)
idempotency_store(fingerprint, result)
return { 'ok', result }
