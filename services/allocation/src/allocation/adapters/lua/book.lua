-- One booking decision, atomic: every rule of the double-limit scheme is checked and, if all
-- hold, the booking, its indexes, its idempotency record and its outbox event are written.
--
-- Every key comes in KEYS (all share the {alloc} hash tag, so a cluster keeps them in one slot),
-- in the order of BOOK_KEYS in ledger.py:
local idem, vendor, stall, window, suspended = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local claim, counts, active, vbookings, vweek = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local booking, wbookings, outbox, draw = KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local attempts = KEYS[15]
-- ARGV[1] is one JSON object of named inputs (BookingAttempt.inputs in ledger.py). The event
-- is rendered and validated in Python twice, for a priority and a standard vendor; the script
-- picks one and appends it as it is (never re-encoded).
local a = cjson.decode(ARGV[1])
local now = a.now

-- 1. idempotent replay
local prior = redis.call('HMGET', idem, 'hash', 'booking')
if prior[1] then
  if prior[1] == a.body_hash then return {'replay', prior[2]} end
  return {'err', 'idempotency_key_reused'}
end

-- 2. the vendor: its verified eligibility (unverified claims are not in these fields), and when
-- a verification that expires stops counting ('' or absent: never); dates compare as text
local v = redis.call('HMGET', vendor, 'priority', 'categories', 'health_until', 'suspended_until')
if not v[1] then return {'err', 'vendor_not_found'} end
local last = redis.call('HMGET', vendor, 'priority_until', 'cat_until:' .. a.category)
local priority = v[1] == '1' and (not last[1] or last[1] == '' or last[1] >= a.date)
if tonumber(v[4] or '0') > now then return {'err', 'vendor_suspended', v[4]} end

-- 3. the catalogue still says what the caller decided on
local s = redis.call('HMGET', stall, 'market', 'category', 'active')
if not s[1] then return {'err', 'stale'} end
if s[1] ~= a.market_id or s[2] ~= a.category then return {'err', 'stale'} end
if s[3] ~= '1' then return {'err', 'stall_unavailable'} end
if redis.call('HGET', window, 'sig') ~= a.window_signature then return {'err', 'stale'} end

-- 3b. the vendor's attempts in this minute of the service clock, counted whatever the outcome
-- (a replay is not an attempt, nor is a try the catalogue sent back to be retried): past the
-- limit, refused until the next minute, which the caller is told
if a.attempt_limit > 0 then
  local minute = tostring(math.floor(now / 60))
  local seen = redis.call('HMGET', attempts, 'minute', 'n')
  local n = 1
  if seen[1] == minute then n = tonumber(seen[2]) + 1 end
  redis.call('HSET', attempts, 'minute', minute, 'n', n)
  redis.call('EXPIRE', attempts, 3600)
  if n > a.attempt_limit then
    return {'err', 'too_many_bookings', tostring((math.floor(now / 60) + 1) * 60)}
  end
end

-- 4. market suspension on that date
local reason = redis.call('GET', suspended)
if reason then return {'err', 'market_suspended', reason} end

-- 5. time limit: booking horizon, and not after the window
if now >= a.ends_at then return {'err', 'window_passed'} end
if now < (priority and a.opens_priority or a.opens_standard) then
  return {'err', 'outside_booking_horizon'}
end

-- 5b. the lottery: until the draw the window is applied for; first come once it is drawn
if a.lottery and not a.from_draw then
  if now < a.draw_at then return {'err', 'applications_only', tostring(a.draw_at)} end
  if redis.call('HGET', draw, 'state') ~= 'done' then return {'err', 'draw_pending'} end
end

-- 6. category permit and health certificate (each valid through its expiry date)
if not string.find(',' .. (v[2] or '') .. ',', ',' .. a.category .. ',', 1, true)
  or (last[2] and last[2] ~= '' and last[2] < a.date) then
  return {'err', 'category_not_permitted'}
end
if a.category == 'cooked_food' and (v[3] == false or v[3] == '' or v[3] < a.date) then
  return {'err', 'health_certificate_required'}
end

-- 7. place limit: one active booking per stall per window
if redis.call('EXISTS', claim) == 1 then return {'err', 'stall_taken'} end

-- 8. the priority hold
if not priority and now < a.hold_until then
  local standard = tonumber(redis.call('HGET', counts, 'standard') or '0')
  if standard >= a.total - a.held then return {'err', 'held_for_priority'} end
end

-- 9. one body, one place: no overlapping active booking in any market. The vendor's active
-- bookings are kept with their span in one hash, so no key is learnt inside the script. A
-- window is shorter than a day and this one is not over (rule 5), so a booking that ended more
-- than a day ago cannot overlap it: such entries (checked in, never released) are dropped.
local spans = redis.call('HGETALL', active)
local over = {}
for i = 1, #spans, 2 do
  local comma = string.find(spans[i + 1], ',', 1, true)
  local o_start = tonumber(string.sub(spans[i + 1], 1, comma - 1))
  local o_end = tonumber(string.sub(spans[i + 1], comma + 1))
  if o_start < a.ends_at and o_end > a.starts_at then
    return {'err', 'overlapping_booking', spans[i]}
  end
  if o_end <= now - 86400 then over[#over + 1] = spans[i] end
end

-- 10. weekly cap
if redis.call('SCARD', vweek) >= a.weekly_cap then return {'err', 'weekly_cap_reached'} end

-- all rules hold: write the booking, its indexes and its event together
local bid = a.booking_id
redis.call('HSET', booking,
  'id', bid, 'vendor', a.vendor_id, 'stall', a.stall_id, 'market', a.market_id,
  'date', a.date, 'window', a.window_id, 'category', a.category,
  'priority', priority and '1' or '0', 'state', 'booked',
  'start_ts', a.starts_at, 'end_ts', a.ends_at, 'created_ts', now, 'week', a.week)
redis.call('SET', claim, bid)
redis.call('ZADD', vbookings, a.starts_at, bid)
if #over > 0 then redis.call('HDEL', active, unpack(over)) end
redis.call('HSET', active, bid, a.span)
redis.call('SADD', vweek, bid)
redis.call('EXPIRE', vweek, 60 * 86400)
redis.call('HINCRBY', counts, priority and 'priority' or 'standard', 1)
redis.call('SADD', wbookings, bid)
redis.call('HSET', idem, 'hash', a.body_hash, 'booking', bid)
redis.call('EXPIRE', idem, a.idempotency_ttl)
local e = priority and a.created.priority or a.created.standard
redis.call('XADD', outbox, '*', 'topic', e.topic, 'key', e.key, 'event_id', e.event_id,
  'type', e.type, 'value', e.value)
return {'ok', bid, priority and '1' or '0'}
