-- idempotency: the claim is written by the same script as the effect.
--   KEYS[14]  the idempotency key, only when the caller passed one (after the thirteen)
-- Stored value: "<fingerprint>|<result>".
--- @include "context"
--- @include "rewrite"
local IDEMPOTENCY_KEY = 14

local function idempotency_lookup(fingerprint)
  local key = KEYS[IDEMPOTENCY_KEY]
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
  rewrite_unchanged(key, nil)
  return { 'replay', string.sub(stored, bar + 1) }
end

local function idempotency_store(fingerprint, result)
  if KEYS[IDEMPOTENCY_KEY] then
    redis.call('SET', KEYS[IDEMPOTENCY_KEY], fingerprint .. '|' .. result, 'PX', IDEMPOTENCY_TTL_MS)
  end
end
