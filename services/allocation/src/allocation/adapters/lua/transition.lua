-- One booking transition, atomic: state check against the transition table's allowed source
-- states, state change, stall release, no-show accounting and the outbox events together.
--
-- Every key comes in KEYS (all share the {alloc} hash tag), in the order of TRANSITION_KEYS in
-- ledger.py. The caller names the keys from the booking it read; the fields they derive from
-- never change after booking, and the script checks them against the stored booking.
local booking, stall, claim, counts, vweek = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local active, noshows, vendor, outbox = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
-- ARGV[1] is one JSON object of named inputs (see Ledger.transition). Optional parts (owner,
-- code, no_show, no_show.suspend_until) are absent, never null.
local a = cjson.decode(ARGV[1])
local bid = a.booking_id

local b = redis.call('HMGET', booking, 'state', 'vendor', 'stall', 'market', 'date', 'window',
  'priority', 'week')
local state = b[1]
if not state or (a.owner and b[2] ~= a.owner) then return {'err', 'booking_not_found'} end
local x = a.expect
if b[2] ~= x.vendor or b[3] ~= x.stall or b[4] ~= x.market or b[5] ~= x.date
    or b[6] ~= x.window or b[8] ~= x.week then
  return {'retry', 'booking'}
end
local allowed = false
for _, from in ipairs(a.allowed_from) do
  if from == state then allowed = true end
end
if not allowed then return {'err', 'illegal_transition', state} end
if a.code then
  if a.code.stall ~= b[3] then return {'err', 'wrong_stall'} end
  if redis.call('HGET', stall, 'code_version') ~= a.code.version then
    return {'err', 'stall_code_revoked'}
  end
end
-- The caller counted the vendor's no-shows in the period and decided on a suspension (and
-- wrote the event) from that count: it must still hold.
if a.no_show and redis.call('ZCOUNT', noshows, a.no_show.since, '+inf') ~= a.no_show.prior then
  return {'retry', 'no_shows'}
end

redis.call('HSET', booking, 'state', a.to_state)
for k, v in pairs(a.fields) do redis.call('HSET', booking, k, v) end

if a.release and (state == 'booked' or state == 'checked_in') then
  if redis.call('GET', claim) == bid then redis.call('DEL', claim) end
  redis.call('HINCRBY', counts, b[7] == '1' and 'priority' or 'standard', -1)
  if not a.no_show then redis.call('SREM', vweek, bid) end
  redis.call('HDEL', active, bid)
end

if a.no_show then
  redis.call('ZADD', noshows, a.now, bid)
  redis.call('ZREMRANGEBYSCORE', noshows, '-inf', '(' .. a.no_show.since)
  local until_ts = a.no_show.suspend_until
  if until_ts and tonumber(redis.call('HGET', vendor, 'suspended_until') or '0') < until_ts then
    redis.call('HSET', vendor, 'suspended_until', until_ts)
  end
end

for _, e in ipairs(a.events) do
  redis.call('XADD', outbox, '*', 'topic', e.topic, 'key', e.key, 'event_id', e.event_id,
    'type', e.type, 'value', e.value)
end
return {'ok', state}
