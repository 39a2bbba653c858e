-- due.lua: which holds of one bucket are due, by the server's clock.
-- The sweep's first phase: it learns the users whose keys sweep.lua must be given.
-- KEYS[1]: the bucket's due-index.  ARGV: now_ms ("" = server time), limit
-- returns {"ok", member...}: "<escaped user>:<hold id>" due by now, at most limit
--- @read
--- @include "context"
local reply = { 'ok' }
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', NOW, 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #members do
  reply[i + 1] = members[i]
end
return reply
