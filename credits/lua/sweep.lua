-- sweep.lua: close expired holds of several users of one bucket, for the beat.
-- The client read the bucket's due-index (members due by now) and passes each
-- user's keys, so every key is declared and all of them share the bucket's slot.
-- KEYS[1]: due   KEYS[2]: users   then five per user: account, log, holds, open, closed
-- ARGV: now_ms, n_users, escaped id of each user, then pairs (user index, hold id)
--       for every due member the client read
-- returns {"ok", expired_count, stale_members_dropped}
--- @include "upkeep"
local n_users = tonumber(ARGV[2])
local users = {}
local expired = 0
local closed_now = {}
for i = 1, n_users do
  local u = load_account(user_at(3 + (i - 1) * 5, ARGV[2 + i], KEYS[1], KEYS[2]))
  users[i] = u
  -- every due member the client read may be this user's: no per-user cap here
  for _, hold_id in ipairs(expire_due_holds(u, __SWEEP_BATCH_HOLDS_MAX__)) do
    closed_now[i .. ':' .. hold_id] = true
    expired = expired + 1
  end
  save_hints(u)
end
-- A due member whose hold is not open any more would be read again by every
-- sweep; nothing writes one, but a sweep must not spin on damaged data.
local dropped = 0
for j = 3 + n_users, #ARGV, 2 do
  local u, hold_id = users[tonumber(ARGV[j])], ARGV[j + 1]
  if not closed_now[ARGV[j] .. ':' .. hold_id] and not redis.call('ZSCORE', u.open, hold_id) then
    local rec = load_hold(u, hold_id)
    if not rec or rec.s ~= 'open' then
      dropped = dropped + redis.call('ZREM', u.due, due_member(u, hold_id))
    end
  end
end
return { 'ok', expired, dropped }
