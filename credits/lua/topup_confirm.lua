-- topup_confirm.lua: the app's answer to a topup.requested event, applied once per
-- top-up id: paid grants a paid lot (an 'add' event, action 'topup'); not paid
-- closes the request, and TOPUP_FAILURES_MAX failures in a row switch auto top-up
-- off (topup.disabled). A repeated confirmation, whatever it says, returns the
-- first one's result: a webhook retried by the payment provider pays once.
-- KEYS: the per-user thirteen.
-- ARGV: now_ms, config, user, topup id (within the user), paid "1" | "0", amount ("" =
--       the requested amount)
-- returns {"ok", result} | {"again", result} | {"topup_not_found"} | {"overflow", total}
--       | {"damaged"} | {"upkeep"}
-- result: "<paid 0|1>,<amount>,<tx_id>,<balance>,<ts_ms>,<lot id>" (tx, ts and lot empty
--         when not paid)
--- @include "grant"
--- @include "purge"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local topup_id, paid = ARGV[4], ARGV[5] == '1'
local plans = plans_of(u)
local tu = plans and plans.tu
if not tu then
  return { 'topup_not_found' }
end
for _, done in ipairs(tu.d or {}) do
  if done[1] == topup_id then
    return { 'again', done[2] }
  end
end
if tu.o ~= topup_id then
  return { 'topup_not_found' }
end
local amount = ARGV[6] ~= '' and tonumber(ARGV[6]) or tonumber(tu.oa)
local result
if paid then
  if u.bal + u.held + amount > USER_TOTAL_MAX then
    return { 'overflow', u.bal + u.held }
  end
  local lot_id = derived_lot_id(u.escaped, 'topup', topup_id)
  local lot, terms, delta = new_lot(u, lot_id, 'paid', __LOT_PRIORITY_DEFAULT__, amount, NOW_MS,
    nil, nil, 'topup')
  tu.f = '0'
  u.plans_dirty = true
  local meta = cjson.encode({ topup_id = topup_id })
  local id, ms = append(u, 'add', amount, delta, 0, 'topup', meta, '', '', terms)
  write_lot_details(u, lot.i, meta, id)
  result = '1,' .. fmt(amount) .. ',' .. id .. ',' .. fmt(u.bal) .. ',' .. fmt(ms) .. ',' .. lot_id
else
  tu.f = fmt(tonumber(tu.f or '0') + 1)
  if tonumber(tu.f) >= __TOPUP_FAILURES_MAX__ then
    tu.x = '1'
    emit(u, 'topup.disabled', { reason = 'payment_failed', failures = tu.f })
  end
  result = '0,' .. fmt(amount) .. ',,' .. fmt(u.bal) .. ',,'
end
tu.o, tu.oa = nil, nil
tu.d = tu.d or {}
table.insert(tu.d, { topup_id, result })
while #tu.d > __TOPUP_RESULTS_KEPT__ do
  table.remove(tu.d, 1)
end
u.plans_dirty = true
save_state(u)
housekeeping(u)
return { 'ok', result }
