-- One booking decision, atomic: every rule of the double-limit scheme is checked and, if all
-- hold, the booking, its indexes, its idempotency record and its outbox event are written.
-- All keys share the {alloc} hash tag (one slot), built from the prefix in ARGV[1].
-- ARGV[2] is a JSON array of the decision's inputs (one argument is cheaper to send than
-- twenty), ARGV[3] the BookingCreated envelope.
local p = ARGV[1]
local a = cjson.decode(ARGV[2])
local now = a[1]
local vid, sid, mid, wid, day = a[2], a[3], a[4], a[5], a[6]
local start_ts, end_ts = a[7], a[8]
local week = a[9]
local idem_key, body_hash, bid = a[10], a[11], a[12]
local category, win_sig = a[13], a[14]
local cap = a[15]
local open_priority, open_standard = a[16], a[17]
local hold_until, held = a[18], a[19]
local total = a[20]
local idem_ttl = a[21]
local booking_json = ARGV[3]
local outbox = p .. 'outbox'

-- 1. idempotent replay
local idem = p .. 'idem:' .. vid .. ':' .. idem_key
local prior = redis.call('HMGET', idem, 'hash', 'booking')
if prior[1] then
  if prior[1] == body_hash then return {'replay', prior[2]} end
  return {'err', 'idempotency_key_reused'}
end

-- 2. the vendor
local vendor = p .. 'vendor:' .. vid
local v = redis.call('HMGET', vendor, 'priority', 'categories', 'health_until', 'suspended_until')
if not v[1] then return {'err', 'vendor_not_found'} end
local priority = v[1] == '1'
if tonumber(v[4] or '0') > now then return {'err', 'vendor_suspended', v[4]} end

-- 3. the catalogue still says what the caller decided on
local s = redis.call('HMGET', p .. 'stall:' .. sid, 'market', 'category', 'active')
if not s[1] then return {'err', 'stale'} end
if s[1] ~= mid or s[2] ~= category then return {'err', 'stale'} end
if s[3] ~= '1' then return {'err', 'stall_unavailable'} end
if redis.call('HGET', p .. 'window:' .. mid .. ':' .. wid, 'sig') ~= win_sig then
  return {'err', 'stale'}
end

-- 4. market suspension on that date
local reason = redis.call('GET', p .. 'suspended:' .. mid .. ':' .. day)
if reason then return {'err', 'market_suspended', reason} end

-- 5. time limit: booking horizon, and not after the window
if now >= end_ts then return {'err', 'window_passed'} end
if now < (priority and open_priority or open_standard) then
  return {'err', 'outside_booking_horizon'}
end

-- 6. category permit and health certificate
if not string.find(',' .. (v[2] or '') .. ',', ',' .. category .. ',', 1, true) then
  return {'err', 'category_not_permitted'}
end
if category == 'cooked_food' and (v[3] == false or v[3] == '' or v[3] < day) then
  return {'err', 'health_certificate_required'}
end

-- 7. place limit: one active booking per stall per window
local claim = p .. 'claim:' .. sid .. ':' .. day .. ':' .. wid
if redis.call('EXISTS', claim) == 1 then return {'err', 'stall_taken'} end

-- 8. the priority hold
local counts = p .. 'wcount:' .. mid .. ':' .. day .. ':' .. wid
if not priority and now < hold_until then
  local standard = tonumber(redis.call('HGET', counts, 'standard') or '0')
  if standard >= total - held then return {'err', 'held_for_priority'} end
end

-- 9. one body, one place: no overlapping active booking in any market
local vbookings = p .. 'vbookings:' .. vid
local nearby = redis.call('ZRANGEBYSCORE', vbookings, start_ts - 86400, '(' .. end_ts)
for _, other in ipairs(nearby) do
  local o = redis.call('HMGET', p .. 'booking:' .. other, 'state', 'start_ts', 'end_ts')
  if (o[1] == 'booked' or o[1] == 'checked_in')
      and tonumber(o[2]) < end_ts and tonumber(o[3]) > start_ts then
    return {'err', 'overlapping_booking', other}
  end
end

-- 10. weekly cap
local vweek = p .. 'vweek:' .. vid .. ':' .. week
if redis.call('SCARD', vweek) >= cap then return {'err', 'weekly_cap_reached'} end

-- all rules hold: write the booking, its indexes and its event together
local booking = p .. 'booking:' .. bid
redis.call('HSET', booking,
  'id', bid, 'vendor', vid, 'stall', sid, 'market', mid, 'date', day, 'window', wid,
  'category', category, 'priority', priority and '1' or '0', 'state', 'booked',
  'start_ts', start_ts, 'end_ts', end_ts, 'created_ts', now, 'week', week)
redis.call('SET', claim, bid)
redis.call('ZADD', vbookings, start_ts, bid)
redis.call('SADD', vweek, bid)
redis.call('EXPIRE', vweek, 60 * 86400)
redis.call('HINCRBY', counts, priority and 'priority' or 'standard', 1)
redis.call('SADD', p .. 'wbookings:' .. mid .. ':' .. day .. ':' .. wid, bid)
redis.call('HSET', idem, 'hash', body_hash, 'booking', bid)
redis.call('EXPIRE', idem, idem_ttl)
local event = cjson.decode(booking_json)
event['data']['priority'] = priority
redis.call('XADD', outbox, '*', 'topic', 'bookings', 'key', mid, 'event_id', event['id'],
  'type', event['type'], 'value', cjson.encode(event))
return {'ok', bid, priority and '1' or '0'}
