-- context: what every script starts from.
--   ARGV[1]  "" (the usual case): the time is the Redis server's clock, read here with
--            TIME, so every app server agrees on it whatever its own clock says;
--            or now_ms from a client's explicit clock= override (tests, imports)
--   ARGV[2]  the user's escaped id (due-index members are "<escaped user>:<hold id>")
-- Replies are arrays whose first element is a status word; credits/replies.py maps
-- every word to a result or a typed error.
-- Credits are integers below 2^53, formatted with %d (never tostring, which goes to 1e+15).
local LAZY_EXPIRE_MAX = __LAZY_EXPIRE_PER_CALL_MAX__
local CLOSED_PURGE_MAX = __CLOSED_PURGE_PER_CALL_MAX__
local CLOSED_RETENTION_MS = __CLOSED_HOLD_RETENTION_MS__
local IDEMPOTENCY_TTL_MS = __IDEMPOTENCY_TTL_MS__
local USER_TOTAL_MAX = __USER_TOTAL_MAX__
local FAR_FUTURE_MS = USER_TOTAL_MAX

local function fmt(n)
  return string.format('%d', n)
end

local function server_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local NOW_MS = ARGV[1] == '' and server_now_ms() or tonumber(ARGV[1])
local NOW = fmt(NOW_MS)

-- A repeat answers its first result and would write nothing. From Redis 7.2 on,
-- WAIT / WAITAOF measure a connection's last *propagated* write, so a repeat that
-- wrote nothing could be confirmed by its replicas while its first write is still
-- on the primary only. Writing back, unchanged, the record it answered from
-- makes the wait after it cover the first write too (replication keeps order).
-- field: a hash field of key, or nil for a string key (its TTL kept).
local function rewrite_unchanged(key, field)
  if field then
    local value = redis.call('HGET', key, field)
    if value then
      redis.call('HSET', key, field, value)
    end
  else
    local value = redis.call('GET', key)
    if value then
      redis.call('SET', key, value, 'KEEPTTL')
    end
  end
end
