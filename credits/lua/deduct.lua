-- deduct.lua: charge a fixed amount now, or refuse and write nothing.
-- KEYS: the per-user twelve, [idempotency]  ARGV: now_ms, user, amount, action, metadata_json, fingerprint
-- returns {"ok", result} | {"replay", result} | {"conflict"} | {"insufficient", balance}
--       | {"damaged"} | {"upkeep"}
--- @include "idempotency"
--- @include "upkeep"
local fingerprint = ARGV[6]
local seen = idempotency_lookup(fingerprint)
if seen then
  return seen
end
local u = load_account(this_user())
if not u.created then
  if damaged(u) then
    return { 'damaged' }
  end
  return { 'insufficient', 0 }
end
if not upkeep(u) then
  return { 'upkeep' }
end
local amount = tonumber(ARGV[3])
if u.bal < amount then
  return { 'insufficient', u.bal }
end
local id, ms = append(u, 'deduct', amount, -amount, 0, ARGV[4], ARGV[5], '', '')
local result = tx_result(id, u, ms)
idempotency_store(fingerprint, result)
return { 'ok', result }
