-- checkpoint.lua: write verified checkpoints of a user's log.
-- A checkpoint is the replay state of the log (balance, held, lots, pinned holds)
-- right after the event whose id it carries. Periodic ones ('p', every
-- CHECKPOINT_EVERY_EVENTS events, so balance_at and rebuilds never replay more) and
-- marks ('m', where the archiver may archive up to) are kept in the user's checkpoint
-- stream under that id, so "the last checkpoint at or before a log id" is one
-- XREVRANGE. The head ('h', the end the last verify reached) is one string, replaced
-- each time, so an hourly verify keeps one per user, not one per hour.
-- Ids only grow: a checkpoint at or before what is stored is already covered and is
-- skipped (a racing verifier got there first).
-- KEYS[1]: the user's checkpoint stream   KEYS[2]: the user's head checkpoint
-- ARGV: now_ms, config, then id, kind, events, state (JSON), repeated (at most
--       CHECKPOINT_WRITES_PER_CALL_MAX)
-- returns {"ok", written}
-- Derived data (a verify writes them again from the log), so never waited for replicas.
--- @derived
--- @include "context"

local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local function after(a, b)
  if not b then
    return true
  end
  local ams, aseq = parse_id(a)
  local bms, bseq = parse_id(b)
  return ams > bms or (ams == bms and aseq > bseq)
end

if #ARGV > 2 + 4 * __CHECKPOINT_WRITES_PER_CALL_MAX__ then
  return { 'invalid', 'too many checkpoints in one call' }
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
local last_id = last and last[1] or nil
local head = redis.call('GET', KEYS[2])
local head_id = head and string.match(head, '^([^|]+)|') or nil
local written = 0
for i = 3, #ARGV, 4 do
  local id, kind = ARGV[i], ARGV[i + 1]
  if kind == 'h' then
    if after(id, head_id) and after(id, last_id) then
      redis.call('SET', KEYS[2], id .. '|' .. ARGV[i + 2] .. '|' .. ARGV[i + 3])
      head_id = id
      written = written + 1
    end
  elseif after(id, last_id) then
    redis.call('XADD', KEYS[1], id, 'k', kind, 'n', ARGV[i + 2], 's', ARGV[i + 3])
    last_id = id
    written = written + 1
  end
end
return { 'ok', written }
