-- webhook_add.lua: register a webhook endpoint, if the ledger has room for one more.
-- KEYS[1]: the endpoints hash.
-- ARGV: now_ms ("" = server time), "" (no user), endpoint id, max endpoints,
--       the endpoint's JSON record without created_at (an object, ending in "}")
-- returns {"ok", created_at_ms} | {"too_many_endpoints", count}
-- The count and the write are one step, so concurrent adds never pass the bound.
--- @include "context"
local count = redis.call('HLEN', KEYS[1])
if count >= tonumber(ARGV[4]) then
  return { 'too_many_endpoints', count }
end
local record = string.sub(ARGV[5], 1, -2) .. ',"created_at":' .. NOW .. '}'
redis.call('HSET', KEYS[1], ARGV[3], record)
return { 'ok', NOW }
