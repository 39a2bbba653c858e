-- archive_trim.lua: trim from a user's log the events the archive has committed.
-- The archiver copied the events in (mark, upto] to the archive and read back, in
-- the archive's own transaction, that it holds all `count` of them; only then does
-- it call this. Refused (nothing trimmed) unless, atomically:
--   * a verified checkpoint at or after `upto` exists (verify and rebuild start
--     there, so they never need what leaves);
--   * the log keeps at least its newest event (its end stays readable);
--   * (mark, upto] still holds exactly `count` events (what was committed).
-- Then the events up to `upto` leave the log, the mark moves to `upto` (reads take
-- events at or before it from the archive), and stored checkpoints before the last
-- one at or before `upto` leave too (the archive has them). A repeat after a crash
-- finds the mark already there and trims nothing. Bounded: `count` is one batch.
-- KEYS[1]: log  KEYS[2]: checkpoint stream  KEYS[3]: head checkpoint  KEYS[4]: archive mark
-- ARGV: now_ms, config, upto (a log id), count
-- returns {"ok", trimmed, mark} | {"unsafe_trim", why}
--- @include "context"

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function before(a, b)
  local ams, aseq = parse_id(a)
  local bms, bseq = parse_id(b)
  return ams < bms or (ams == bms and aseq < bseq)
end

local upto, count = ARGV[3], tonumber(ARGV[4])
if count < 1 or count > __ARCHIVE_BATCH_EVENTS_MAX__ then
  return { 'unsafe_trim', 'a batch is 1 to ' .. __ARCHIVE_BATCH_EVENTS_MAX__ .. ' events' }
end
local mark = redis.call('GET', KEYS[4])
if mark and not before(mark, upto) then
  return { 'ok', 0, mark }
end
local cp = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
local head = redis.call('GET', KEYS[3])
local head_id = head and string.match(head, '^([^|]+)|') or nil
local covered = (cp and not before(cp[1], upto)) or (head_id and not before(head_id, upto))
if not covered then
  return { 'unsafe_trim', 'no verified checkpoint at or after ' .. upto }
end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if not newest or not before(upto, newest[1]) then
  return { 'unsafe_trim', 'the log keeps its newest event' }
end
local low = mark and ('(' .. mark) or '-'
local batch = redis.call('XRANGE', KEYS[1], low, upto, 'COUNT', count + 1)
if #batch ~= count then
  return { 'unsafe_trim', 'the log holds ' .. #batch .. ' events up to ' .. upto .. ', not '
    .. count }
end
local ms, seq = parse_id(upto)
redis.call('XTRIM', KEYS[1], 'MINID', fmt(ms) .. '-' .. fmt(seq + 1))
redis.call('SET', KEYS[4], upto)
local keep = redis.call('XREVRANGE', KEYS[2], upto, '-', 'COUNT', 1)[1]
if keep then
  redis.call('XTRIM', KEYS[2], 'MINID', keep[1])
end
return { 'ok', count, upto }
