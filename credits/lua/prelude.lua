-- prelude.lua: shared by every script; scripts.py puts it in front of each one.
--
-- Contract of every per-user script:
--   KEYS[1..7]  account, log, holds, open, closed, due, users   (one user; one slot)
--   KEYS[8]     idempotency key, only when the caller passed one
--   ARGV[1]     now_ms: the client's clock (scripts never call TIME, so tests can freeze it)
--   ARGV[2]     the user's escaped id (due-index members are "<escaped user>:<hold id>")
-- Replies are arrays whose first element is a status word; Python maps statuses to errors.
-- Credits are integers below 2^53, formatted with %d (never tostring, which goes to 1e+15).
--
-- The account hash keeps two hints so that upkeep costs nothing when nothing is due:
--   nx  no open hold expires before this (ms); only ever too early, never too late
--   np  no closed hold is old enough to purge before this (ms); likewise
-- A missing hint means "look": accounts written before the hints existed just look once.

local NOW_MS = tonumber(ARGV[1])
local LAZY_EXPIRE_MAX = __LAZY_EXPIRE_PER_CALL_MAX__
local CLOSED_PURGE_MAX = __CLOSED_PURGE_PER_CALL_MAX__
local CLOSED_RETENTION_MS = __CLOSED_HOLD_RETENTION_MS__
local IDEMPOTENCY_TTL_MS = __IDEMPOTENCY_TTL_MS__
local USER_TOTAL_MAX = __USER_TOTAL_MAX__

local function fmt(n)
  return string.format('%d', n)
end

-- One user's keys, starting at KEYS[first]: account, log, holds, open, closed.
local function user_at(first, escaped, due, users)
  return {
    account = KEYS[first], log = KEYS[first + 1], holds = KEYS[first + 2],
    open = KEYS[first + 3], closed = KEYS[first + 4],
    due = due, users = users, escaped = escaped,
  }
end

local FAR_FUTURE_MS = USER_TOTAL_MAX

local function load_account(u)
  local v = redis.call('HMGET', u.account, 'bal', 'held', 'ct', 'lid', 'nx', 'np')
  u.bal = tonumber(v[1]) or 0
  u.held = tonumber(v[2]) or 0
  u.created = v[3]
  u.lid = v[4]
  u.next_expiry = tonumber(v[5]) or 0
  u.next_purge = tonumber(v[6]) or 0
  return u
end

local function ensure_account(u)
  if not u.created then
    u.created = fmt(NOW_MS)
    u.next_expiry, u.next_purge = FAR_FUTURE_MS, FAR_FUTURE_MS
    redis.call('HSET', u.account, 'ct', u.created, 'bal', '0', 'held', '0',
      'nx', fmt(FAR_FUTURE_MS), 'np', fmt(FAR_FUTURE_MS))
    redis.call('SADD', u.users, u.escaped)
  end
end

-- Stream ids must grow even when the client clock steps back: then the event is
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

-- Append one event and move the cached balance and held by its deltas.
-- The invariant check runs before any write of this event.
local function append(u, kind, amount, balance_delta, held_delta, action, meta, hold_id, extra)
  local bal, held = u.bal + balance_delta, u.held + held_delta
  if bal < 0 or held < 0 or bal + held > USER_TOTAL_MAX then
    error('credits invariant refused ' .. kind .. ': balance ' .. fmt(bal) .. ', held ' .. fmt(held))
  end
  local id, ms = next_log_id(u)
  redis.call('XADD', u.log, id,
    't', kind, 'a', fmt(amount), 'b', fmt(balance_delta), 'h', fmt(held_delta),
    'B', fmt(bal), 'c', action, 'm', meta, 'r', hold_id, 'x', extra)
  u.bal, u.held, u.lid = bal, held, id
  if u.hints_changed then
    redis.call('HSET', u.account, 'bal', fmt(bal), 'held', fmt(held), 'lid', id,
      'nx', fmt(u.next_expiry), 'np', fmt(u.next_purge))
    u.hints_changed = false
  else
    redis.call('HSET', u.account, 'bal', fmt(bal), 'held', fmt(held), 'lid', id)
  end
  return id, ms
end

local function due_member(u, hold_id)
  return u.escaped .. ':' .. hold_id
end

local function load_hold(u, hold_id)
  local raw = redis.call('HGET', u.holds, hold_id)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
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

-- Take a hold out of the open indexes and into the closed one.
local function close_hold(u, hold_id, rec, status)
  rec.s = status
  rec.z = ARGV[1]
  save_hold(u, hold_id, rec)
  redis.call('ZREM', u.open, hold_id)
  redis.call('ZREM', u.due, due_member(u, hold_id))
  redis.call('ZADD', u.closed, ARGV[1], hold_id)
  if NOW_MS + CLOSED_RETENTION_MS < u.next_purge then
    u.next_purge = NOW_MS + CLOSED_RETENTION_MS
    u.hints_changed = true
  end
end

local function first_score(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    return tonumber(first[2])
  end
  return nil
end

-- Close the user's holds whose expiry has come (expires_at <= now), at most
-- `limit`, each with an 'expire' event. Returns the ids it closed.
local function expire_due_holds(u, limit)
  if u.next_expiry > NOW_MS then
    return {}
  end
  local ids = redis.call('ZRANGEBYSCORE', u.open, '-inf', ARGV[1], 'LIMIT', 0, limit)
  for _, hold_id in ipairs(ids) do
    local rec = load_hold(u, hold_id)
    local amount = tonumber(rec.a)
    append(u, 'expire', amount, amount, -amount, rec.c, '', hold_id, '')
    close_hold(u, hold_id, rec, 'expired')
  end
  u.next_expiry = first_score(u.open) or FAR_FUTURE_MS
  u.hints_changed = true
  return ids
end

-- Forget closed holds older than the retention, a few per call.
local function purge_closed_holds(u)
  if u.next_purge > NOW_MS then
    return
  end
  local ids = redis.call('ZRANGEBYSCORE', u.closed, '-inf', NOW_MS - CLOSED_RETENTION_MS,
    'LIMIT', 0, CLOSED_PURGE_MAX)
  if #ids > 0 then
    redis.call('HDEL', u.holds, unpack(ids))
    redis.call('ZREM', u.closed, unpack(ids))
  end
  local oldest = first_score(u.closed)
  u.next_purge = oldest and oldest + CLOSED_RETENTION_MS or FAR_FUTURE_MS
  u.hints_changed = true
end

-- Write the hints after upkeep moved them later (every event's HSET writes them too).
local function save_hints(u)
  if u.hints_changed and u.created then
    redis.call('HSET', u.account, 'nx', fmt(u.next_expiry), 'np', fmt(u.next_purge))
    u.hints_changed = false
  end
end

-- Lazy upkeep every per-user script runs before its own work. Returns how many
-- holds it expired. Costs nothing but the account read when nothing is due.
local function upkeep(u)
  local expired = #expire_due_holds(u, LAZY_EXPIRE_MAX)
  purge_closed_holds(u)
  save_hints(u)
  return expired
end

-- A hold named by the caller, read once; read again only when upkeep closed
-- holds (this may be one of them). nil when there is no such hold.
local function hold_after_upkeep(u, hold_id)
  local rec = load_hold(u, hold_id)
  if rec and upkeep(u) > 0 then
    rec = load_hold(u, hold_id)
  end
  return rec
end

local function this_user()
  return user_at(1, ARGV[2], KEYS[6], KEYS[7])
end

-- Idempotency: the claim is written by the same script as the effect.
-- Stored value: "<fingerprint>|<result>".
local function idempotency_lookup(fingerprint)
  local key = KEYS[8]
  if not key then
    return nil
  end
  local stored = redis.call('GET', key)
  if not stored then
    return nil
  end
  local bar = string.find(stored, '|', 1, true)
  if string.sub(stored, 1, bar - 1) ~= fingerprint then
    return { 'conflict' }
  end
  return { 'replay', string.sub(stored, bar + 1) }
end

local function idempotency_store(fingerprint, result)
  if KEYS[8] then
    redis.call('SET', KEYS[8], fingerprint .. '|' .. result, 'PX', IDEMPOTENCY_TTL_MS)
  end
end

local function tx_result(id, u, ms)
  return id .. ',' .. fmt(u.bal) .. ',' .. fmt(ms)
end
