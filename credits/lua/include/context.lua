-- context: what every script starts from.
--   ARGV[1]  "" (the usual case): the time is the Redis server's clock, read here with
--            TIME, so every app server agrees on it whatever its own clock says;
--            or now_ms from a client's explicit clock= override (tests, imports)
--   ARGV[2]  the client's configuration, "|"-separated (credits/keys.py, config_arg):
--            1: lot expiring notice (ms), 2: a balance alert for every user ('' = none)
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

-- "a|b|c" as {"a", "b", "c"} (empty fields kept in place).
local function split(text, sep)
  local fields, start = {}, 1
  while true do
    local at = string.find(text, sep, start, true)
    if not at then
      fields[#fields + 1] = string.sub(text, start)
      return fields
    end
    fields[#fields + 1] = string.sub(text, start, at - 1)
    start = at + 1
  end
end

local CONFIG = split(ARGV[2], '|')
local LOT_NOTICE_MS = tonumber(CONFIG[1]) or __LOT_EXPIRING_NOTICE_MS_DEFAULT__
