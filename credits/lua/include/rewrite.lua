-- rewrite: a repeat that answers its first result still writes.
-- A repeat answers its first result and would write nothing. From Redis 7.2 on,
-- WAIT / WAITAOF measure a connection's last *propagated* write, so a repeat that
-- wrote nothing could be confirmed by its replicas while its first write is still
-- on the primary only. Writing back, unchanged, the record it answered from
-- makes the wait after it cover the first write too (replication keeps order).
--- @include "context"

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
