-- lot_sweep.lua: renew allowances and start and expire lots of users who never come
-- back, for the beat (expire_lots walks the bucket's lot index, renew_allowances its
-- renewal index). Each user's due upkeep is applied whichever index found it, in the
-- order it fell due (include/upkeep.lua), as the user's own next call would.
-- due.lua read the index (users whose next lot transition or allowance period is due);
-- the client passes each user's keys, so every key is declared and all share the
-- bucket's slot. One call applies at most LOT_UPKEEP_PER_CALL_MAX transitions in
-- all; a user with more left stays due and is picked up by the next round.
-- KEYS[1..6]: the bucket's, then the seven own keys of each user (see account.lua)
-- ARGV: now_ms, config, n_users, escaped id of each user
-- returns {"ok", transitions_applied}
--- @include "upkeep"
local n_users = tonumber(ARGV[3])
local bucket = bucket_at(1)
local budget, applied = LOT_UPKEEP_MAX, 0
for i = 1, n_users do
  local u = load_account(user_at(7 + (i - 1) * USER_KEYS, ARGV[3 + i], bucket))
  if not u.created then
    -- gone, or damaged (a log without its account): rebuild_balance re-indexes it
    redis.call('ZREM', u.lot_due, u.escaped)
    redis.call('ZREM', u.renew_due, u.escaped)
  elseif budget > 0 then
    local _, used = upkeep_in_order(u, budget)
    budget, applied = budget - used, applied + used
    -- the index entries that brought the sweep here are now exact
    index_next_lot(u)
    set_next_allowance(u, u.next_allowance)
    save_hints(u)
  end
end
return { 'ok', applied }
