-- sweep.lua: close due holds of several users of one bucket, for the beat.
-- due.lua found the members; the client passes each user's keys, so every key is
-- declared and all of them share the bucket's slot. The client never passes more
-- than SWEEP_HOLDS_PER_CALL_MAX holds, so one call's work is bounded whatever the data.
-- KEYS[1..6]: the bucket's (due, users, outbox, lot_due, renew_due, stats), then the seven own
--             keys of each user (see account.lua)
-- ARGV: now_ms, config, n_users, escaped id of each user, then pairs (user index, hold id)
-- returns {"ok", expired_count, stale_members_dropped}
--- @include "upkeep"
local n_users = tonumber(ARGV[3])
local users = {}
local bucket = bucket_at(1)
for i = 1, n_users do
  users[i] = load_account(user_at(7 + (i - 1) * USER_KEYS, ARGV[3 + i], bucket))
end
local expired, dropped = 0, 0
local touched = {}
for j = 4 + n_users, #ARGV, 2 do
  local i, hold_id = tonumber(ARGV[j]), ARGV[j + 1]
  local u = users[i]
  local rec = load_hold(u, hold_id)
  if not u.created then
    -- a damaged user (log without account): left alone until rebuild_balance
  elseif rec and rec.s == 'open' then
    if tonumber(rec.e) <= NOW_MS then
      expire_hold(u, hold_id, rec)
      expired = expired + 1
      touched[i] = true
    end
  else
    -- A due member whose hold is not open would be read by every sweep; nothing
    -- writes one, but a sweep must not spin on damaged data.
    dropped = dropped + redis.call('ZREM', u.due, due_member(u, hold_id))
  end
end
for i in pairs(touched) do
  local u = users[i]
  u.next_expiry = first_score(u.open) or FAR_FUTURE_MS
  u.hints_changed = true
  save_hints(u)
end
return { 'ok', expired, dropped }
