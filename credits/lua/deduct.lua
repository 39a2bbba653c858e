-- deduct.lua: charge a fixed amount now from the lots that apply to the action, or
-- refuse and write nothing.
-- KEYS: the per-user thirteen, [idempotency]
-- ARGV: now_ms, config, user, amount, action, metadata_json, fingerprint
-- returns {"ok", result} | {"replay", result} | {"conflict"} | {"insufficient", available}
--       | {"limit_exceeded", name, limit, used} | {"damaged"} | {"upkeep"}
--- @include "idempotency"
--- @include "lots"
--- @include "purge"
local fingerprint = ARGV[7]
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
if upkeep_due(u) then
  return { 'upkeep' }
end
local amount, action = tonumber(ARGV[4]), ARGV[5]
if u.bal < amount then
  return { 'insufficient', available(u, action) }
end
local takes, can = draw(u, action, amount)
if not takes then
  return { 'insufficient', can }
end
local refused = limit_refusal(u, action, amount)
if refused then
  return { 'limit_exceeded', unpack(refused) }
end
spend(u, takes, action, nil)
count_against_limits(u, action, amount, nil)
local id, ms = append(u, 'deduct', amount, -amount, 0, action, ARGV[6], '', '', '')
local result = tx_result(id, u, ms)
idempotency_store(fingerprint, result)
housekeeping(u)
return { 'ok', result }
