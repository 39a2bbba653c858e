-- idempotency: the claim is written by the same script as the effect.
--   KEYS[8]  the idempotency key, only when the caller passed one
-- Stored value: "<fingerprint>|<result>".
--- @include "context"

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
