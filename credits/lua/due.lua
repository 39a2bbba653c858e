-- due.lua: which members of a bucket's index are due, by the server's clock.
-- The sweeps' first phase: they learn the users whose keys the second must be given.
-- KEYS[1]: the bucket's due-index (of holds, or of users with lots due).
-- ARGV: now_ms ("" = server time), config, limit
-- returns {"ok", member...} due by now, at most limit
--- @read
--- @include "context"
local reply = { 'ok' }
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[3]))
for i = 1, #members do
  reply[i + 1] = members[i]
end
return reply
