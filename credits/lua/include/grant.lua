-- grant: making a lot, for every script that brings credits in (add, initialize,
-- allowances, rollovers, top-ups). The creating event carries the lot's terms
-- (T), so the log alone can rebuild it (credits/lots/replay.py).
--- @include "lot_index"

-- A new lot in the active set: pending (outside the balance) if it takes effect
-- later, else active with its amount in the balance. Returns the lot, its terms
-- (JSON) and the balance delta the creating event must carry. `quiet` lots get no
-- lot.expiring notice (an allowance's own event already says when its lot ends).
local function new_lot(u, id, category, priority, amount, effective_ms, expires_ms, scope, action,
                       quiet)
  u.lot_seq = u.lot_seq + 1
  local pending = effective_ms > NOW_MS
  local lot = {
    i = id, c = category, p = fmt(tonumber(priority)), a = fmt(amount),
    r = pending and fmt(amount) or '0', h = '0', f = fmt(effective_ms),
    e = expires_ms and fmt(expires_ms) or '', n = fmt(u.lot_seq),
    st = pending and 'pending' or 'active', x = action, s = scope, w = quiet and '1' or nil,
  }
  insert_lot(u, lot)
  set_next_lot(u, next_lot_time(u))
  local delta = 0
  if not pending then
    lot_delta(u, lot, amount)
    delta = amount
  end
  if category ~= 'rollover' then
    note_stat(u, 'granted', category, action, amount)
  end
  local terms = cjson.encode({
    i = lot.i, c = lot.c, p = lot.p, a = lot.a, f = lot.f, e = lot.e, s = lot.s, st = lot.st,
    w = lot.w,
  })
  return lot, terms, delta
end

-- A lot's details (metadata, creation, creating event), written after that event.
local function write_lot_details(u, lot_id, meta, tx_id)
  redis.call('HSET', u.lots_hash, lot_id, cjson.encode({ m = meta, t = NOW, k = tx_id }))
end

-- A lot id the ledger derives (allowance periods, rollovers): the same inputs give
-- the same id, so a period's lot can never be made twice.
local function derived_lot_id(...)
  return string.sub(redis.sha1hex(table.concat({ ... }, ':')), 1, 10)
end
