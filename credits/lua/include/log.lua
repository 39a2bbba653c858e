-- log: the user's event stream. Field names come from credits/log_format.py.
--- @include "account"
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

-- Append one event and move the cached balance and held by its deltas. The
-- invariant check runs before any write, and the XADD is the event's first
-- write, so a refused event leaves nothing behind. A new account is written here.
local function append(u, kind, amount, balance_delta, held_delta, action, meta, hold_id, extra)
  local bal, held = u.bal + balance_delta, u.held + held_delta
  if bal < 0 or held < 0 or bal + held > USER_TOTAL_MAX then
    error('credits invariant refused ' .. kind .. ': balance ' .. fmt(bal) .. ', held ' .. fmt(held))
  end
  local id, ms = next_log_id(u)
  redis.call('XADD', u.log, id,
    F.type, kind, F.amount, fmt(amount), F.balance_delta, fmt(balance_delta),
    F.held_delta, fmt(held_delta), F.balance_after, fmt(bal), F.held_after, fmt(held),
    F.action, action, F.metadata, meta, F.hold, hold_id, F.extra, extra)
  u.bal, u.held, u.lid = bal, held, id
  if u.is_new then
    redis.call('HSET', u.account, 'ct', u.created, 'bal', fmt(bal), 'held', fmt(held), 'lid', id,
      'nx', fmt(u.next_expiry), 'np', fmt(u.next_purge))
    redis.call('SADD', u.users, u.escaped)
    u.is_new, u.hints_changed = false, false
  elseif u.hints_changed then
    redis.call('HSET', u.account, 'bal', fmt(bal), 'held', fmt(held), 'lid', id,
      'nx', fmt(u.next_expiry), 'np', fmt(u.next_purge))
    u.hints_changed = false
  else
    redis.call('HSET', u.account, 'bal', fmt(bal), 'held', fmt(held), 'lid', id)
  end
  return id, ms
end

-- A stream entry's fields ({k1, v1, k2, v2, ...}) as a table, to read them by name.
local function entry_fields(entry)
  local flat, fields = entry[2], {}
  for i = 1, #flat, 2 do
    fields[flat[i]] = flat[i + 1]
  end
  return fields
end

-- The id of the log's last event, read from the stream itself (not the cache).
local function log_end(u)
  local last = redis.call('XREVRANGE', u.log, '+', '-', 'COUNT', 1)
  if last[1] then
    return last[1][1]
  end
  return nil
end

local function tx_result(id, u, ms)
  return id .. ',' .. fmt(u.bal) .. ',' .. fmt(ms)
end
