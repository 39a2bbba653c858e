-- minimal_deduct.lua: the baseline of the deduct targets, what a careful team writes in an afternoon.
-- Check the balance, decrement it and append one log entry, atomically; no
-- idempotency, no holds, no invariant checks beyond the balance.
-- KEYS[1]: balance hash   KEYS[2]: log stream
-- ARGV: amount, action
-- returns {"ok", entry_id, balance} | {"insufficient", balance}
local amount = tonumber(ARGV[1])
local balance = tonumber(redis.call('HGET', KEYS[1], 'bal') or '0')
if balance < amount then
  return { 'insufficient', balance }
end
balance = balance - amount
redis.call('HSET', KEYS[1], 'bal', balance)
local id = redis.call('XADD', KEYS[2], '*', 'a', ARGV[1], 'c', ARGV[2], 'B', balance)
return { 'ok', id, balance }
