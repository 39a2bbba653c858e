-- configure.lua: change what a user's account is configured with (credits/plans/):
-- allowances, spend limits, balance alerts, auto top-up. One script for all of
-- them: each is an entry of the account's plans (see include/plans.lua), and each
-- change may need the user's clock-dependent state (a period to grant now, a
-- balance already below a new threshold). Runs after the user's upkeep.
-- KEYS: the per-user thirteen.
-- ARGV: now_ms, config, user, operation, name, terms (JSON, every number a string)
--   allowance_set {a, e, n?, r, p, s?, now?} | allowance_remove | limit_set {a, e, s?}
--   | limit_remove | alert_set {b} | alert_remove | topup_set {b, a? | t?, m?} | topup_remove
-- returns {"ok", now_ms, plans_json, balance, existed 0|1} | {"too_many", kind, count}
--       | {"overflow", total} | {"damaged"} | {"upkeep"}
--- @include "allowances"
--- @include "purge"
local u = load_account(this_user())
if damaged(u) then
  return { 'damaged' }
end
if upkeep_due(u) then
  return { 'upkeep' }
end
local op, name = ARGV[4], ARGV[5]
local t = ARGV[6] ~= '' and cjson.decode(ARGV[6]) or {}
local MAX = {
  al = __ALLOWANCES_PER_USER_MAX__, sl = __SPEND_LIMITS_PER_USER_MAX__, at = __ALERTS_PER_USER_MAX__,
}
local KIND = { al = 'allowances', sl = 'spend_limits', at = 'alerts' }

local function count(tbl)
  local n = 0
  for _ in pairs(tbl) do
    n = n + 1
  end
  return n
end

-- The table of `field` in the plans, made when missing; or a refusal when a new
-- entry would pass its bound.
local function entries(field, adding)
  local plans = plans_for_change(u)
  plans[field] = plans[field] or {}
  local n = count(plans[field])
  if adding and plans[field][name] == nil and n >= MAX[field] then
    return nil, { 'too_many', KIND[field], n }
  end
  return plans[field]
end

-- Drop an entry; its table too when it was the last. Returns 1 when it existed.
local function remove(field)
  local plans = plans_of(u)
  if not plans or not plans[field] or plans[field][name] == nil then
    return 0
  end
  plans[field][name] = nil
  if next(plans[field]) == nil then
    plans[field] = nil
  end
  u.plans_dirty = true
  return 1
end

local function same_scope(x, y)
  return cjson.encode(x or false) == cjson.encode(y or false)
end

local function set_allowance()
  local al, refusal = entries('al', true)
  if not al then
    return refusal
  end
  local a = al[name]
  ensure_account(u)
  if not a or not a.ps then
    -- new, or nothing granted yet: these terms are the allowance's from its first period
    local anchor = t.n or (a and a.n) or NOW
    al[name] = { a = t.a, e = t.e, n = anchor, r = t.r, p = t.p, s = t.s }
    renew_allowance(u, name, al[name])
  elseif t.now then
    -- the change applies now: the current period (under the new schedule) gets the
    -- positive difference between the new amount and what it was already granted
    local changed = t.e ~= a.e or (t.n ~= nil and t.n ~= a.n)
    a.a, a.r, a.p, a.s, a.nx = t.a, t.r, t.p, t.s, nil
    if changed then
      a.e, a.n = t.e, t.n or NOW
      local start, stop = period_of(a.e, tonumber(a.n), NOW_MS)
      if start then
        a.ps, a.pe = fmt(start), fmt(stop)
      else
        a.ps, a.pe, a.l, a.g = nil, nil, {}, '0'
      end
    end
    if a.ps then
      local raise = tonumber(a.a) - tonumber(a.g or '0')
      if raise > 0 and tonumber(a.pe) > NOW_MS then
        grant_allowance_lot(u, name, a, tonumber(a.ps), tonumber(a.pe), raise)
      end
    end
  else
    -- the change applies from the next period; a new schedule starts when this period
    -- ends unless an anchor says otherwise
    local changed = t.e ~= a.e or (t.n ~= nil and t.n ~= a.n)
    a.nx = { a = t.a, e = t.e, n = t.n or (not changed and a.n or nil), r = t.r, p = t.p, s = t.s }
    if a.nx.a == a.a and not changed and a.nx.r == a.r and a.nx.p == a.p and same_scope(a.nx.s, a.s) then
      a.nx = nil  -- nothing changes
    end
  end
  set_next_allowance(u, next_allowance_time(u))
  return nil
end

local function set_limit()
  local sl, refusal = entries('sl', true)
  if not sl then
    return refusal
  end
  local old = sl[name]
  local limit = { a = t.a, e = t.e, s = t.s }
  if old and old.e == t.e then
    limit.ws, limit.u, limit.r = old.ws, old.u, old.r  -- the window's use so far still counts
  end
  sl[name] = limit
  return nil
end

local function set_alert()
  local at, refusal = entries('at', true)
  if not at then
    return refusal
  end
  at[name] = t.b
  local plans = plans_of(u)
  plans.ab = plans.ab or {}
  plans.ab[name] = nil
  if u.bal < tonumber(t.b) then
    -- a threshold set while the balance is already below it is a crossing, now
    plans.ab[name] = '1'
    emit(u, 'balance.below', { alert = name, below = t.b, balance = fmt(u.bal) })
  end
  if next(plans.ab) == nil then
    plans.ab = nil
  end
  return nil
end

local function set_topup()
  local plans = plans_for_change(u)
  local old = plans.tu or {}
  plans.tu = {
    b = t.b, a = t.a, t = t.t, m = t.m, o = old.o, oa = old.oa, f = '0', mo = old.mo,
    c = old.c, d = old.d, q = old.q,
  }
  if u.bal < tonumber(t.b) then
    request_topup(u, plans.tu, u.bal)  -- already below: that is the crossing
  end
  return nil
end

local existed = 1
local refusal = nil
if string.sub(op, -4) == '_set' then
  ensure_account(u)
end
if op == 'allowance_set' then
  refusal = set_allowance()
elseif op == 'allowance_remove' then
  existed = remove('al')
  set_next_allowance(u, next_allowance_time(u))
elseif op == 'limit_set' then
  refusal = set_limit()
elseif op == 'limit_remove' then
  existed = remove('sl')
elseif op == 'alert_set' then
  refusal = set_alert()
elseif op == 'alert_remove' then
  existed = remove('at')
  local plans = plans_of(u)
  if existed == 1 and plans.ab then
    plans.ab[name] = nil
  end
elseif op == 'topup_set' then
  refusal = set_topup()
elseif op == 'topup_remove' then
  local plans = plans_of(u)
  existed = (plans and plans.tu) and 1 or 0
  if existed == 1 then
    plans.tu = nil
    u.plans_dirty = true
    emit(u, 'topup.disabled', { reason = 'removed' })
  end
else
  return { 'invalid', 'unknown operation ' .. op }
end
if refusal then
  return refusal
end
if u.created then
  save_state(u)
  housekeeping(u)
end
return { 'ok', NOW, cjson.encode(plans_of(u) or {}), fmt(u.bal), existed }
