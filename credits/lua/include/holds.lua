-- holds: records of open and recently closed holds, and the indexes that find them.
-- A hold's record pins the lots its credits came from (l: {lot id: credits}).
--- @include "log"

local function due_member(u, hold_id)
  return u.escaped .. ':' .. hold_id
end

-- A closed hold is readable for CLOSED_RETENTION_MS after its last change and
-- not a millisecond longer, whether or not the purge has removed it yet.
-- Returns the record and its JSON, or nil.
local function load_hold(u, hold_id)
  local raw = redis.call('HGET', u.holds, hold_id)
  if not raw then
    return nil
  end
  local rec = cjson.decode(raw)
  if rec.s ~= 'open' and tonumber(rec.z) + CLOSED_RETENTION_MS <= NOW_MS then
    return nil
  end
  return rec, raw
end

local function save_hold(u, hold_id, rec)
  redis.call('HSET', u.holds, hold_id, cjson.encode(rec))
end

-- Hints move only earlier here; upkeep moves them later after it has looked.
local function note_open_hold(u, expires_ms)
  if expires_ms < u.next_expiry then
    u.next_expiry = expires_ms
    u.hints_changed = true
  end
end

-- Mark a closed hold changed now: retention counts from its last change.
local function touch_closed(u, hold_id, rec)
  rec.z = NOW
  save_hold(u, hold_id, rec)
  redis.call('ZADD', u.closed, NOW, hold_id)
  if NOW_MS + CLOSED_RETENTION_MS < u.next_purge then
    u.next_purge = NOW_MS + CLOSED_RETENTION_MS
    u.hints_changed = true
  end
end

-- Take a hold out of the open indexes and into the closed one.
local function close_hold(u, hold_id, rec, status)
  rec.s = status
  redis.call('ZREM', u.open, hold_id)
  redis.call('ZREM', u.due, due_member(u, hold_id))
  touch_closed(u, hold_id, rec)
end

local function first_score(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    return tonumber(first[2])
  end
  return nil
end
