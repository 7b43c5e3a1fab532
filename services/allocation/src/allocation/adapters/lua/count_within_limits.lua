-- Count one request against several limits, atomically: every counter or none.
-- KEYS: the counters (n). ARGV: each counter's limit (n), then each counter's period in seconds
-- (n), counted from the first request of a period.
-- Returns {1, 0} if counted, {0, seconds until the full counter resets} if refused.
local n = #KEYS
for i = 1, n do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = tonumber(ARGV[n + i]) end
    return {0, ttl}
  end
end
for i = 1, n do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[n + i], 'NX')
end
return {1, 0}
