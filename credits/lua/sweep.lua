-- sweep.lua: close due holds of several users of one bucket, for the beat.
-- due.lua found the members; the client passes each user's keys, so every key is
-- declared and all of them share the bucket's slot. The client never passes more
-- than SWEEP_HOLDS_PER_CALL_MAX holds, and one call applies at most that many steps of
-- upkeep in all, so its work is bounded whatever the data.
-- KEYS[1..6]: the bucket's (due, users, outbox, lot_due, renew_due, stats), then the seven own
--             keys of each user (see account.lua)
-- ARGV: now_ms, config, n_users, escaped id of each user, then pairs (user index, hold id)
-- returns {"ok", expired_count, stale_members_dropped}
--- @include "upkeep"
local SWEEP_HOLDS_MAX = __SWEEP_HOLDS_PER_CALL_MAX__
local n_users = tonumber(ARGV[3])
local users = {}
local bucket = bucket_at(1)
for i = 1, n_users do
  users[i] = load_account(user_at(7 + (i - 1) * USER_KEYS, ARGV[3 + i], bucket))
end
-- Each user's due upkeep runs in the order it fell due (holds, allowance periods
-- and lots alike, include/upkeep.lua), within one budget for the call.
local budget, expired, dropped = SWEEP_HOLDS_MAX, 0, 0
local swept = {}
for j = 4 + n_users, #ARGV, 2 do
  local i, hold_id = tonumber(ARGV[j]), ARGV[j + 1]
  local u = users[i]
  local rec = u.created and load_hold(u, hold_id)
  if not u.created then
    -- a damaged user (log without account): left alone until rebuild_balance
  elseif not rec or rec.s ~= 'open' then
    -- A due member whose hold is not open would be read by every sweep; nothing
    -- leaves one behind, but a sweep must not spin on damaged data. (0 when this
    -- call's own upkeep just closed it.)
    dropped = dropped + redis.call('ZREM', u.due, due_member(u, hold_id))
  elseif not swept[i] and budget > 0 and tonumber(rec.e) <= NOW_MS then
    swept[i] = true
    local _, used, closed = upkeep_in_order(u, budget)
    budget, expired = budget - used, expired + closed
    index_next_lot(u)
    set_next_allowance(u, u.next_allowance)
    save_hints(u)
  end
end
return { 'ok', expired, dropped }
