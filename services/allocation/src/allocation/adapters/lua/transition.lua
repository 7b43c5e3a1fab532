-- One booking transition, atomic: state check against the transition table's allowed source
-- states, state change, stall release, no-show accounting and the outbox events together.
local p = ARGV[1]
local now = tonumber(ARGV[2])
local bid, owner = ARGV[3], ARGV[4]
local allowed_from, to_state = ARGV[5], ARGV[6]
local release, noshow = ARGV[7] == '1', ARGV[8] == '1'
local noshow_since, limit = tonumber(ARGV[9]), tonumber(ARGV[10])
local suspend_until, suspend_until_iso = tonumber(ARGV[11]), ARGV[12]
local code_stall, code_version = ARGV[13], ARGV[14]
local fields = cjson.decode(ARGV[15])
local n_events = tonumber(ARGV[16])

local booking = p .. 'booking:' .. bid
local b = redis.call('HMGET', booking, 'state', 'vendor', 'stall', 'market', 'date', 'window',
  'priority', 'week')
if not b[1] or (owner ~= '' and b[2] ~= owner) then return {'err', 'booking_not_found'} end
local state = b[1]
if not string.find(allowed_from, ',' .. state .. ',', 1, true) then
  return {'err', 'illegal_transition', state}
end
if code_stall ~= '' then
  if code_stall ~= b[3] then return {'err', 'wrong_stall'} end
  if redis.call('HGET', p .. 'stall:' .. b[3], 'code_version') ~= code_version then
    return {'err', 'stall_code_revoked'}
  end
end

redis.call('HSET', booking, 'state', to_state)
for k, v in pairs(fields) do redis.call('HSET', booking, k, v) end

if release and (state == 'booked' or state == 'checked_in') then
  local claim = p .. 'claim:' .. b[3] .. ':' .. b[5] .. ':' .. b[6]
  if redis.call('GET', claim) == bid then redis.call('DEL', claim) end
  local counts = p .. 'wcount:' .. b[4] .. ':' .. b[5] .. ':' .. b[6]
  redis.call('HINCRBY', counts, b[7] == '1' and 'priority' or 'standard', -1)
  if not noshow then redis.call('SREM', p .. 'vweek:' .. b[2] .. ':' .. b[8], bid) end
end

local count, suspended = 0, false
if noshow then
  local key = p .. 'noshows:' .. b[2]
  redis.call('ZADD', key, now, bid)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. noshow_since)
  count = redis.call('ZCARD', key)
  if count >= limit then
    local vendor = p .. 'vendor:' .. b[2]
    if tonumber(redis.call('HGET', vendor, 'suspended_until') or '0') < suspend_until then
      redis.call('HSET', vendor, 'suspended_until', suspend_until)
    end
    suspended = true
  end
end

for i = 0, n_events - 1 do
  local base = 17 + i * 5
  local value = ARGV[base + 4]
  value = string.gsub(value, '"__NOSHOWS__"', tostring(math.max(count, 1)))
  value = string.gsub(value, '"__SUSPENDED_UNTIL__"', suspended and ('"' .. suspend_until_iso .. '"') or 'null')
  redis.call('XADD', p .. 'outbox', '*', 'topic', ARGV[base], 'key', ARGV[base + 1],
    'event_id', ARGV[base + 2], 'type', ARGV[base + 3], 'value', value)
end
return {'ok', state, tostring(count), suspended and '1' or '0'}
