-- plans: what a user's account is configured with beyond its lots, and the checks
-- every change runs against it. One JSON object in the account hash (field PL),
-- absent for a user with none, so a user without plans pays nothing for them:
--   al  allowances: name -> {a amount, e every, n anchor ms, r rollover_max, p priority,
--       s scope, ps/pe the current period's start/end, l {lot ids granted for it}}
--   sl  spend limits: name -> {a amount, e window, s scope, ws window start, u used,
--       r the window start it last reported limit.reached for}
--   at  alerts: name -> below;  ab  alerts now below their threshold: name -> '1'
--   tu  auto top-up: {b below, a amount | t target, m max per month, o open topup id,
--       oa its amount, q requests made (ids), f failures in a row, x '1' when switched
--       off, mo month start, c requests this month, d recent confirmations [[id, result]]}
-- Every number is a string (Redis's cjson rounds numbers to 14 digits).
-- Balance alerts and auto top-up are edge-triggered: append() compares the
-- balance before and after each event, so a crossing fires exactly once, under
-- any concurrency (a script runs alone).
--   CONFIG[2]  a default alert threshold for every user ('' for none)
--- @include "events"
--- @include "calendar"
local DEFAULT_ALERT_BELOW = tonumber(CONFIG[2] or '')
local TOPUP_FAILURES_MAX = __TOPUP_FAILURES_MAX__
local TOPUP_RESULTS_KEPT = __TOPUP_RESULTS_KEPT__

local function plans_of(u)
  if u.plans == nil then
    u.plans = u.raw_plans and cjson.decode(u.raw_plans) or false
  end
  return u.plans
end

-- The plans object to change (made if the user had none).
local function plans_for_change(u)
  local plans = plans_of(u)
  if not plans then
    plans = {}
    u.plans = plans
  end
  u.plans_dirty = true
  return plans
end

local function in_scope(scope, action)
  return scope == nil or scope[action] ~= nil
end

-- The first spend limit that `amount` more of `action` would pass, as
-- {name, limit, used}; nil when none would.
local function limit_refusal(u, action, amount)
  local plans = plans_of(u)
  if not plans or not plans.sl then
    return nil
  end
  local names = {}
  for name in pairs(plans.sl) do
    names[#names + 1] = name
  end
  table.sort(names)  -- the same limit is reported whatever the table's order
  for _, name in ipairs(names) do
    local limit = plans.sl[name]
    if in_scope(limit.s, action) then
      local start = window_of(limit.e, NOW_MS)
      local used = tonumber(limit.ws) == start and tonumber(limit.u) or 0
      if used + amount > tonumber(limit.a) then
        return { name, tonumber(limit.a), used }
      end
    end
  end
  return nil
end

-- Count `n` credits of `action` in the current window of every limit that applies;
-- a hold keeps which windows counted it (`counted`: name -> window start).
local function count_against_limits(u, action, n, counted)
  local plans = plans_of(u)
  if not plans or not plans.sl or n <= 0 then
    return
  end
  for name, limit in pairs(plans.sl) do
    if in_scope(limit.s, action) then
      local start = window_of(limit.e, NOW_MS)
      if tonumber(limit.ws) ~= start then
        limit.ws, limit.u = fmt(start), '0'
      end
      local used = tonumber(limit.u) + n
      limit.u = fmt(used)
      if counted then
        counted[name] = limit.ws
      end
      if used >= tonumber(limit.a) and limit.r ~= limit.ws then
        limit.r = limit.ws
        emit_after_change(u, 'limit.reached', { limit = name, amount = limit.a, used = limit.u,
          window_start = limit.ws })
      end
      u.plans_dirty = true
    end
  end
end

-- Credits a hold gives back stop counting, in the windows that counted them and
-- only while those are still current.
local function uncount(u, counted, n)
  local plans = plans_of(u)
  if not plans or not plans.sl or not counted or n <= 0 then
    return
  end
  for name, start in pairs(counted) do
    local limit = plans.sl[name]
    if limit and limit.ws == start and window_of(limit.e, NOW_MS) == tonumber(start) then
      limit.u = fmt(math.max(0, tonumber(limit.u) - n))
      u.plans_dirty = true
    end
  end
end

-- Auto top-up: one open request at most; a crossing below `b` asks for one. A
-- request's id is "<ms>-<n>" with n counting the user's requests (q), so it is
-- never reused.
local function request_topup(u, tu, balance)
  if tu.x == '1' or tu.o then
    return
  end
  local month = window_of('month', NOW_MS)
  if tonumber(tu.mo or '0') ~= month then
    tu.mo, tu.c = fmt(month), '0'
  end
  if tu.m and tonumber(tu.c) >= tonumber(tu.m) then
    return
  end
  local amount = tu.a and tonumber(tu.a) or tonumber(tu.t) - balance
  if amount <= 0 then
    return
  end
  tu.q = fmt(tonumber(tu.q or '0') + 1)
  local topup_id = NOW .. '-' .. tu.q
  tu.o, tu.oa, tu.c = topup_id, fmt(amount), fmt(tonumber(tu.c) + 1)
  u.plans_dirty = true
  emit(u, 'topup.requested', { topup = topup_id, amount = fmt(amount), balance = fmt(balance),
    below = tu.b })
end

-- An alert fires balance.below when the balance goes from >= its threshold to
-- below it, and balance.recovered when it comes back after that (ab remembers
-- which alerts are below), so each crossing fires once and a new user's first
-- grant is not a "recovery".
local function alert_crossing(u, name, threshold, before, after, event_id)
  if before >= threshold and after < threshold then
    local plans = plans_for_change(u)
    plans.ab = plans.ab or {}
    plans.ab[name] = '1'
    emit(u, 'balance.below', { alert = name, below = fmt(threshold), balance = fmt(after),
      tx = event_id })
  elseif after >= threshold and before < threshold then
    local plans = plans_of(u)
    if plans and plans.ab and plans.ab[name] then
      plans.ab[name] = nil
      u.plans_dirty = true
      emit(u, 'balance.recovered', { alert = name, below = fmt(threshold), balance = fmt(after),
        tx = event_id })
    end
  end
end

-- What one event's balance change crosses: alerts, the default alert ("*"), auto top-up.
local function balance_crossings(u, before, after, event_id)
  if before == after then
    return
  end
  if before > 0 and after == 0 then
    emit(u, 'balance.depleted', { balance = '0', tx = event_id })
  end
  if DEFAULT_ALERT_BELOW then
    alert_crossing(u, '*', DEFAULT_ALERT_BELOW, before, after, event_id)
  end
  local plans = plans_of(u)
  if not plans then
    return
  end
  if plans.at then
    for name, below in pairs(plans.at) do
      alert_crossing(u, name, tonumber(below), before, after, event_id)
    end
  end
  local tu = plans.tu
  if tu and before >= tonumber(tu.b) and after < tonumber(tu.b) then
    request_topup(u, tu, after)
  end
end
