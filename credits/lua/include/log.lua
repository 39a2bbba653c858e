-- log: the user's event stream. Field names come from credits/log_format.py.
--- @include "account"
--- @include "plans"
local F = __LOG_FIELDS__

-- Stream ids must grow even when the clock steps back: then the event is
-- stamped with the last id's millisecond and the next sequence number.
local function next_log_id(u)
  local ms, seq = NOW_MS, 0
  if u.lid then
    local last_ms, last_seq = string.match(u.lid, '^(%d+)-(%d+)$')
    last_ms, last_seq = tonumber(last_ms), tonumber(last_seq)
    if last_ms >= ms then
      ms, seq = last_ms, last_seq + 1
    end
  end
  return fmt(ms) .. '-' .. fmt(seq), ms
end

-- What lot operations accumulated for the next event: each lot's balance delta
-- ("id:delta,..."), and their sum.
local function take_deltas(u)
  local parts, sum = {}, 0
  for id, n in pairs(u.deltas) do
    if n ~= 0 then
      parts[#parts + 1] = id .. ':' .. fmt(n)
      sum = sum + n
    end
  end
  u.deltas = {}
  table.sort(parts)
  return table.concat(parts, ','), sum
end

-- Counters for /metrics, "<metric>:<category>:<action>" -> credits, written with the event.
local function note_stat(u, metric, category, action, n)
  if n > 0 then
    local field = metric .. ':' .. category .. ':' .. action
    u.stat[field] = (u.stat[field] or 0) + n
  end
end

-- Finished lots leave the account's active set; their records are written after
-- the event that finished them (the event's XADD is always its first write).
local function write_finished_lots(u)
  for _, lot in ipairs(u.to_finish) do
    local raw = redis.call('HGET', u.lots_hash, lot.i)
    local rec = raw and cjson.decode(raw) or {}
    for k, v in pairs(lot) do
      rec[k] = v
    end
    redis.call('HSET', u.lots_hash, lot.i, cjson.encode(rec))
    redis.call('ZADD', u.lots_done, lot.z, lot.i)
  end
  u.to_finish = {}
end

-- Write what changed without an event (hints, a lot's notice flag, lots an
-- earlier event of this call finished).
local function save_hints(u)
  if u.created and not u.is_new then
    local fields = state_fields(u, {})
    if #fields > 0 then
      redis.call('HSET', u.account, unpack(fields))
    end
    write_finished_lots(u)
  end
end

-- Write a configuration change (no event): an account made by it has a zero
-- balance and an empty log, which is what a log with no events adds up to.
local function save_state(u)
  if u.is_new then
    local fields = { 'bal', '0', 'held', '0', 'ct', u.created }
    u.lots_dirty, u.hints_changed = true, true
    redis.call('HSET', u.account, unpack(state_fields(u, fields)))
    redis.call('SADD', u.users, u.escaped)
    u.is_new = false
  else
    save_hints(u)
  end
end

-- Append one event and move the cached balance and held by its deltas. The
-- invariant checks run before any write, and the XADD is the event's first
-- write, so a refused event leaves nothing behind. A new account is written here.
-- `terms` is a created lot's terms (JSON), or ''.
local function append(u, kind, amount, balance_delta, held_delta, action, meta, hold_id, extra, terms)
  local bal, held = u.bal + balance_delta, u.held + held_delta
  if bal < 0 or held < 0 or bal + held > USER_TOTAL_MAX then
    error('credits invariant refused ' .. kind .. ': balance ' .. fmt(bal) .. ', held ' .. fmt(held))
  end
  local lots, sum = take_deltas(u)
  if sum ~= balance_delta then
    error('credits invariant refused ' .. kind .. ': lots move ' .. fmt(sum) .. ', balance '
      .. fmt(balance_delta))
  end
  local id, ms = next_log_id(u)
  local entry = { F.type, kind, F.amount, fmt(amount), F.balance_delta, fmt(balance_delta),
    F.held_delta, fmt(held_delta), F.balance_after, fmt(bal), F.held_after, fmt(held),
    F.action, action, F.metadata, meta, F.hold, hold_id, F.extra, extra, F.lots, lots }
  if terms and terms ~= '' then
    entry[#entry + 1], entry[#entry + 2] = F.terms, terms
  end
  if u.forfeited > 0 then
    entry[#entry + 1], entry[#entry + 2] = F.forfeited, fmt(u.forfeited)
    u.forfeited = 0
  end
  redis.call('XADD', u.log, id, unpack(entry))
  local before = u.bal
  u.bal, u.held, u.lid = bal, held, id
  emit_decided(u)
  balance_crossings(u, before, bal, id)
  local fields = { 'bal', fmt(bal), 'held', fmt(held), 'lid', id }
  if u.is_new then
    fields[#fields + 1], fields[#fields + 2] = 'ct', u.created
    u.lots_dirty, u.hints_changed = true, true
  end
  redis.call('HSET', u.account, unpack(state_fields(u, fields)))
  if u.is_new then
    redis.call('SADD', u.users, u.escaped)
    u.is_new = false
  end
  for field, n in pairs(u.stat) do
    redis.call('HINCRBY', u.stats, field, n)
  end
  u.stat = {}
  write_finished_lots(u)
  return id, ms
end

local function tx_result(id, u, ms)
  return id .. ',' .. fmt(u.bal) .. ',' .. fmt(ms)
end
