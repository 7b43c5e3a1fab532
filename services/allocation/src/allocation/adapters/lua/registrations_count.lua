-- Count one registration for its client address and its phone number, both or neither.
-- KEYS: the address's counter, the phone number's counter. ARGV: the address's limit, the phone
-- number's limit, the period in seconds (counted from the first registration of a period).
-- Returns {1, 0} if counted, {0, seconds until the full counter resets} if refused.
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = tonumber(ARGV[3]) end
    return {0, ttl}
  end
end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[3], 'NX')
end
return {1, 0}
