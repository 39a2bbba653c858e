-- rebuild.lua: set the cached account from the log, atomically.
-- The client replayed the log up to `marker` in chunks, outside any script
-- (credits/audit.py): balance, held and every lot, as the log says they were at
-- the marker. The snapshot it started from also gave what the cache held at the
-- marker. Writes after the marker moved the cache by exactly their own deltas,
-- so what the cache should hold now is the log's state at the marker plus what
-- the cache moved since: a write racing the rebuild is never lost, and no
-- writer has to wait. An account hash that was lost is written back whole:
-- balance, held, lots, the log's end, its creation time, its welcome grant (so
-- initialize_user never pays twice) and its place in the bucket's registry; its
-- upkeep hints are reset so the next call looks.
-- KEYS: the per-user thirteen.
-- ARGV: now_ms, config, user, marker ("" = none), log balance, log held, log lots (JSON),
--       log lot_seq, cached balance, cached held, cached lots (JSON), cached lot_seq
--       (the cache at the marker), first_ms, init_result ("" = none)
-- returns {"ok", balance, held} | {"impossible", balance, held}
--- @include "lots"
--- @include "log_read"
local u = load_account(this_user())
local marker = ARGV[4]
if marker == '' then
  return { 'ok', 0, 0 }  -- no log: nothing to rebuild, and no account is made
end
local then_bal, then_held = tonumber(ARGV[9]), tonumber(ARGV[10])
local bal = tonumber(ARGV[5]) + (u.bal - then_bal)
local held = tonumber(ARGV[6]) + (u.held - then_held)
if bal < 0 or held < 0 then
  return { 'impossible', bal, held }
end
local logged, cached_then = cjson.decode(ARGV[7]), cjson.decode(ARGV[11])
local before = {}
for _, lot in ipairs(cached_then) do
  before[lot.i] = lot
end
local now_lots = {}
for _, lot in ipairs(u.created and lots_of(u) or {}) do
  now_lots[lot.i] = lot
end
local lots = {}
for _, lot in ipairs(logged) do
  local was, is = before[lot.i], now_lots[lot.i]
  if was and is then
    lot.r = fmt(tonumber(lot.r) + tonumber(is.r) - tonumber(was.r))
    lot.h = fmt(tonumber(lot.h) + tonumber(is.h) - tonumber(was.h))
    if is.st ~= was.st then
      lot.st = is.st
    end
    lot.w, lot.vr = is.w or lot.w, is.vr or lot.vr
  elseif was then
    -- finished since the marker (as far as the cache could tell)
    lot.r = fmt(tonumber(lot.r) - tonumber(was.r))
    lot.h = fmt(tonumber(lot.h) - tonumber(was.h))
  end
  if lot.st == 'pending' or tonumber(lot.r) ~= 0 or tonumber(lot.h) ~= 0 then
    lots[#lots + 1] = lot
  end
  now_lots[lot.i] = nil
  before[lot.i] = nil
end
for id, lot in pairs(now_lots) do
  if not before[id] then
    lots[#lots + 1] = lot  -- made since the marker
  end
end
table.sort(lots, draws_before)
u.lots = lots
u.lot_seq = tonumber(ARGV[8]) + (u.lot_seq - tonumber(ARGV[12]))
local fields = { 'bal', fmt(bal), 'held', fmt(held), 'lid', log_end(u), 'L', cjson.encode(lots),
  'ls', fmt(u.lot_seq), 'nx', '0', 'nl', '0' }
if not u.created then
  fields[#fields + 1], fields[#fields + 2] = 'ct', ARGV[13]
  fields[#fields + 1], fields[#fields + 2] = 'np', '0'
  fields[#fields + 1], fields[#fields + 2] = 'nq', '0'
  redis.call('SADD', u.users, u.escaped)
end
redis.call('HSET', u.account, unpack(fields))
if ARGV[14] ~= '' and not redis.call('HGET', u.account, 'init') then
  redis.call('HSET', u.account, 'init', ARGV[14])
end
return { 'ok', bal, held }
