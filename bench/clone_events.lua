-- clone_events.lua: append copies of one real log event, for seeding long logs fast.
-- Bench-only. The template is an event the ledger's deduct script wrote, passed
-- field by field in its order; only the balance-after value and the id change.
-- KEYS[1]: log stream   KEYS[2]: account hash
-- ARGV: first_ms, spacing_ms, count, balance_after_of_first, balance_step,
--       index (in the pairs) of the balance-after value, then field, value, ...
-- returns {last_id, last_balance}
local ms, spacing, count = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local balance, step, slot = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local pairs_ = {}
for i = 7, #ARGV do
  pairs_[#pairs_ + 1] = ARGV[i]
end
local id
for _ = 1, count do
  id = string.format('%d', ms) .. '-0'
  pairs_[slot] = string.format('%d', balance)
  redis.call('XADD', KEYS[1], id, unpack(pairs_))
  ms = ms + spacing
  balance = balance + step
end
balance = balance - step
redis.call('HSET', KEYS[2], 'bal', string.format('%d', balance), 'lid', id)
return { id, balance }
