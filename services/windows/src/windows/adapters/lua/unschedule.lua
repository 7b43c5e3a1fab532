-- Withdraw the pending boundaries of one market dated on or after a local date.
-- KEYS (the market's {m:<id>} slot): timers, boundaries.
local timers, boundaries = KEYS[1], KEYS[2]
-- ARGV[1]: {"from_date": "YYYY-MM-DD"}; ISO dates compare as strings.
local a = cjson.decode(ARGV[1])
local all = redis.call('HGETALL', boundaries)
local removed = {}
for i = 1, #all, 2 do
  local b = cjson.decode(all[i + 1])
  if b.date >= a.from_date then
    redis.call('ZREM', timers, all[i])
    redis.call('HDEL', boundaries, all[i])
    removed[#removed + 1] = all[i]
  end
end
local first = redis.call('ZRANGE', timers, 0, 0, 'WITHSCORES')
return {removed, first[2] or ''}
