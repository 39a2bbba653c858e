-- events: the ledger's events for apps (alerts, webhooks), written by the same
-- script as the change that causes them, so an event exists if and only if its
-- change happened. They go to the bucket's outbox stream (KEYS: u.outbox, in the
-- user's slot, so this works on a Cluster).
--   entry fields: t (type), u (escaped user id), d (data, JSON)
--   the stream id (the server's clock) orders the bucket's events; the public
--   event id is "evt_<bucket>_<stream id>" (credits/events.py)
-- The stream is capped (about OUTBOX_EVENTS_PER_BUCKET_MAX entries) so its memory
-- is bounded whatever happens to delivery; the delivery task trims delivered
-- events sooner, by age.
--- @include "account"
local OUTBOX_EVENTS_MAX = __OUTBOX_EVENTS_PER_BUCKET_MAX__

local function emit(u, kind, data)
  data.at = NOW_MS
  redis.call('XADD', u.outbox, 'MAXLEN', '~', OUTBOX_EVENTS_MAX, '*',
    't', kind, 'u', u.escaped, 'd', cjson.encode(data))
end

-- An event decided before its change is written: it goes out right after the
-- change's log entry (append), never before it, so a refused change emits nothing.
local function emit_after_change(u, kind, data)
  u.later[#u.later + 1] = { kind, data }
end

local function emit_decided(u)
  for _, event in ipairs(u.later) do
    emit(u, event[1], event[2])
  end
  u.later = {}
end
