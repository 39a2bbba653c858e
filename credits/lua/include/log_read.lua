-- log_read: reading a user's log back inside a script (snapshot, rebuild).
--- @include "log"

-- A stream entry's fields ({k1, v1, k2, v2, ...}) as a table, to read them by name.
local function entry_fields(entry)
  local flat, fields = entry[2], {}
  for i = 1, #flat, 2 do
    fields[flat[i]] = flat[i + 1]
  end
  return fields
end

-- The id of the log's last event, read from the stream itself (not the cache).
local function log_end(u)
  local last = redis.call('XREVRANGE', u.log, '+', '-', 'COUNT', 1)
  if last[1] then
    return last[1][1]
  end
  return nil
end
