-- webhook_release.lua: give up a lock only if it is still ours (a delivery run's, a tick's).
-- KEYS[1]: the lock.  ARGV: now_ms (unused: "0"), "" (no user), our token
-- returns {"ok", 1 if released, 0 if it had expired or another holder has it}
-- A run that outlived its lock must not delete the next holder's.
--- @include "context"
if redis.call('GET', KEYS[1]) == ARGV[3] then
  redis.call('DEL', KEYS[1])
  return { 'ok', 1 }
end
return { 'ok', 0 }
